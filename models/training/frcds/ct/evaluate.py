"""Evaluation of ct-spine-v1 in two steps, so every figure can be recomputed from saved files:

``predict``: the served numbers for every patient of a cohort from the MANIFEST and the cohort's observables only
(T-score as the service uses it, Gauss-Hermite mixture over members, exact percentiles and threshold
probabilities, :mod:`frcds.model2.mixture`), written to ``predictions/<name>.csv.gz`` with the chart QFracture-2012
risks (the clinical-only comparator) and the outcomes.

``report``: reads the saved predictions and the cohorts' truth files and writes ``evaluation.json`` and
``report.md``: Harrell's C (10 y) of the CT-fused model and of clinical-only QFracture with a paired bootstrap of
the difference, KM-decile calibration slope, coverage of the true 10-year risk and interval score,
threshold-probability Brier score against the true risk being over the threshold, and subgroups (sex, age band,
true contrast phase, slice thickness, measurement source, site B).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import sys

import numpy as np

from ..model.survival import cum_hazard_at
from ..model2 import mixture
from ..model2.observables import OUTCOMES
from ..report.stats import brier, coverage, harrell_c, interval_score, km_decile_calibration
from .cohort import load_observables, load_truth
from .train import adjusted_hu, base_eta, clinical, ct_tscore, gammas, load_manifest_model, served_tscore

PRED_COLUMNS = ("patient_id", "site", "sex", "age", "protocol", "slice_thickness", "kernel", "ct_source",
                "ct_status", "ct_phase", "ct_hu", "ct_grade", "t_source", "t_mean", "t_sd", "qf_risk10_hip",
                "qf_risk10_mof", "pred_hip", "lo_hip", "hi_hip", "pthr_hip", "pred_mof", "lo_mof", "hi_mof",
                "pthr_mof", "time_hip", "event_hip", "time_mof", "event_mof")


def predict(man: dict, cohort_dir: str) -> dict[str, np.ndarray]:
    md = load_manifest_model(man)
    tab = load_observables(cohort_dir)
    adj = adjusted_hu(tab, md["offsets"])
    t_ct, sd_ct = ct_tscore(tab, adj, md["tscore"], md["prior"])
    sm, ss, use = served_tscore(tab, t_ct, sd_ct, md["dxa_sd"], md["dxa_max_age"])
    clin = clinical(tab)
    grade = np.asarray(tab["ct_grade"], int)
    m = len(md["members"])
    h10 = {o: float(cum_hazard_at(md["h0"][o], 10.0, md["grid"])) for o in OUTCOMES}
    summ = mixture.risk_summary(base_eta(md["members"], clin, grade), gammas(md["members"]),
                                np.repeat(sm[:, None], m, 1), np.repeat(ss[:, None], m, 1), md["nodes"], h10)
    out = {k: np.asarray(tab[k]) for k in PRED_COLUMNS if k in tab}
    out["t_source"] = np.where(use, "dxa", np.where(np.isfinite(adj), "ct", "prior"))
    out["t_mean"], out["t_sd"] = sm, ss
    for o in OUTCOMES:
        for q in ("pred", "lo", "hi", "pthr"):
            out[f"{q}_{o}"] = summ[o][q]
    return out


def write_predictions(path: str, cols: dict[str, np.ndarray]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PRED_COLUMNS)
        for i in range(len(cols["patient_id"])):
            row = []
            for k in PRED_COLUMNS:
                v = cols[k][i]
                row.append(f"{float(v):.6g}" if isinstance(v, (float, np.floating)) else str(v))
            w.writerow(row)


NUMERIC = {"sex", "age", "slice_thickness", "ct_hu", "ct_grade", "t_mean", "t_sd", "qf_risk10_hip", "qf_risk10_mof",
           "time_hip", "event_hip", "time_mof", "event_mof"} | {f"{q}_{o}" for q in ("pred", "lo", "hi", "pthr")
                                                                 for o in OUTCOMES}


def read_predictions(path: str) -> dict[str, np.ndarray]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) if k in NUMERIC else np.array([r[k] for r in rows])
            for k in PRED_COLUMNS}


# ------------------------------------------------------------------------------------------------ metrics

def _boot_c(p: dict, idx: np.ndarray, o: str, b: int, seed: int) -> dict:
    t, e = p[f"time_{o}"][idx], p[f"event_{o}"][idx].astype(bool)
    fused, clin = p[f"pred_{o}"][idx], p[f"qf_risk10_{o}"][idx]
    cf, cc = harrell_c(t, e, fused), harrell_c(t, e, clin)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(b):
        s = rng.integers(0, len(idx), len(idx))
        diffs.append(harrell_c(t[s], e[s], fused[s]) - harrell_c(t[s], e[s], clin[s]))
    lo, hi = (np.quantile(diffs, [0.025, 0.975]).tolist() if b else [math.nan, math.nan])
    return {"c_fused": cf, "c_clinical": cc, "difference": cf - cc, "difference_ci95": [lo, hi]}


def metrics(p: dict, truth: dict, idx: np.ndarray, b: int, seed: int) -> dict:
    out: dict = {"n": int(len(idx))}
    for o in OUTCOMES:
        t, e = p[f"time_{o}"][idx], p[f"event_{o}"][idx].astype(bool)
        tr = truth[f"true_risk10_{o}"][idx]
        r: dict = {"events": int(e.sum())}
        if e.sum() >= 5:
            r.update(_boot_c(p, idx, o, b, seed))
            r["c_oracle_true_risk"] = harrell_c(t, e, tr)
            cal = km_decile_calibration(t, e, p[f"pred_{o}"][idx])
            r["km_decile_slope"], r["km_decile_intercept"] = cal["slope"], cal["intercept"]
            r["km_decile_table"] = cal["table"]
            r["km_decile_slope_clinical"] = km_decile_calibration(t, e, p[f"qf_risk10_{o}"][idx] / 100.0)["slope"]
        lo, hi = p[f"lo_{o}"][idx], p[f"hi_{o}"][idx]
        r["coverage_true_risk"] = coverage(lo, hi, tr)
        r["interval_score"] = float(np.mean(interval_score(lo, hi, tr)))
        r["median_interval_width"] = float(np.median(hi - lo))
        over = (tr >= mixture.THRESHOLDS[o]).astype(float)
        r["threshold"] = mixture.THRESHOLDS[o]
        r["threshold_brier"] = brier(p[f"pthr_{o}"][idx], over)
        r["threshold_brier_reference_prevalence"] = brier(np.full(len(idx), over.mean()), over)
        r["mean_pred"], r["mean_true_risk"] = float(p[f"pred_{o}"][idx].mean()), float(tr.mean())
        r["mean_clinical"] = float(p[f"qf_risk10_{o}"][idx].mean() / 100.0)
        out[o] = r
    return out


def subgroups(p: dict, truth: dict) -> dict[str, np.ndarray]:
    age = p["age"]
    g = {"female": p["sex"] == 0, "male": p["sex"] == 1, "age<65": age < 65, "age65-74": (age >= 65) & (age < 75),
         "age75+": age >= 75, "true-phase non-contrast": truth["true_phase"] == "non-contrast",
         "true-phase portal-venous": truth["true_phase"] == "portal-venous",
         "slices<=2.5mm": p["slice_thickness"] <= 2.5, "slices>2.5mm": p["slice_thickness"] > 2.5,
         "ct measured by the service's analysis": p["ct_source"] == "measured",
         "ct from the analyser error model": p["ct_source"] == "error-model",
         "ct refused": p["ct_status"] != "ok", "measured grade>=2": p["ct_grade"] >= 2}
    return {k: np.flatnonzero(v) for k, v in g.items()}


def tscore_check(p: dict, cohort_dir: str) -> dict:
    """CT T-score estimate against the charted DXA (observable check a site can run)."""
    tab = load_observables(cohort_dir)
    dxa = np.asarray(tab["dxa_t"], float)
    ct = p["t_source"] == "ct"
    sel = ct & np.isfinite(dxa)
    # t_mean is the served T; for a patient with an OLD DXA (> max age) the CT estimate is served, so compare those
    if sel.sum() < 5:
        return {"pairs": int(sel.sum())}
    z = (dxa[sel] - p["t_mean"][sel]) / p["t_sd"][sel]
    return {"pairs": int(sel.sum()), "mean_dxa_minus_ct_t": float(np.mean(dxa[sel] - p["t_mean"][sel])),
            "coverage95": float(np.mean(np.abs(z) <= 1.96)), "corr": float(np.corrcoef(dxa[sel], p["t_mean"][sel])[0, 1])}


def report(model_dir: str, sets: dict[str, str], b: int, seed: int) -> dict:
    ev: dict = {"model": json.load(open(os.path.join(model_dir, "manifest.json"), encoding="utf-8"))["version"],
                "bootstrap": b, "sets": {}}
    for name, cdir in sets.items():
        p = read_predictions(os.path.join(model_dir, "predictions", f"{name}.csv.gz"))
        truth = load_truth(cdir)
        if not np.array_equal(truth["patient_id"].astype(str), p["patient_id"]):
            raise ValueError(f"{name}: predictions and truth are not the same patients in the same order")
        s = {"overall": metrics(p, truth, np.arange(len(p["patient_id"])), b, seed),
             "subgroups": {k: metrics(p, truth, idx, max(b // 4, 0), seed) for k, idx in subgroups(p, truth).items()
                           if len(idx) >= 50},
             "tscore_vs_dxa": tscore_check(p, cdir),
             "t_source": {k: int(v) for k, v in zip(*np.unique(p["t_source"], return_counts=True))},
             "ct_status": {k: int(v) for k, v in zip(*np.unique(p["ct_status"], return_counts=True))},
             "grades_measured": np.bincount(p["ct_grade"].astype(int), minlength=4).tolist(),
             "grades_true_in_field": np.bincount(truth["true_grade_field"].astype(int), minlength=4).tolist()}
        ev["sets"][name] = s
    a = ev["sets"].get("test-site-a", {}).get("overall", {})
    if a:
        ev["targets"] = {
            "mof_c_gain_ge_0.03": {"value": a["mof"]["difference"], "met": bool(a["mof"]["difference"] >= 0.03)},
            "mof_calibration_slope_0.85_1.15": {"value": a["mof"]["km_decile_slope"],
                                                "met": bool(0.85 <= a["mof"]["km_decile_slope"] <= 1.15)},
            "hip_calibration_slope_0.85_1.15": {"value": a["hip"]["km_decile_slope"],
                                                "met": bool(0.85 <= a["hip"]["km_decile_slope"] <= 1.15)}}
    return ev


def _f(x, d=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"


def report_md(ev: dict) -> str:
    lines = [f"# ct-spine-v1 {ev['model']}: evaluation report", "",
             "Recomputed from `predictions/*.csv.gz` and the cohorts' truth by "
             "`sh models/training/run -m frcds.ct.evaluate report ...` (see MODEL_CARD.md). Synthetic data only.", ""]
    if "targets" in ev:
        lines += ["## Targets (site-A test)", "", "| target | value | met |", "| --- | --- | --- |"]
        lines += [f"| {k} | {_f(v['value'])} | {'yes' if v['met'] else 'NO'} |" for k, v in ev["targets"].items()]
        lines.append("")
    for name, s in ev["sets"].items():
        lines += [f"## {name}", "", f"T used: {s['t_source']}; CT status: {s['ct_status']}; measured worst grade 0–3: "
                  f"{s['grades_measured']} (true in field {s['grades_true_in_field']}); CT T vs DXA: "
                  f"{json.dumps(s['tscore_vs_dxa'])}", "",
                  "| group | n | outcome | events | C fused | C QFracture | diff (95 % CI) | C oracle | KM slope | "
                  "coverage | interval score | thr. Brier |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for g, m in [("all", s["overall"])] + list(s["subgroups"].items()):
            for o in OUTCOMES:
                r = m[o]
                ci = r.get("difference_ci95", [None, None])
                lines.append(f"| {g} | {m['n']} | {o} | {r['events']} | {_f(r.get('c_fused'))} | "
                             f"{_f(r.get('c_clinical'))} | {_f(r.get('difference'))} ({_f(ci[0])}, {_f(ci[1])}) | "
                             f"{_f(r.get('c_oracle_true_risk'))} | {_f(r.get('km_decile_slope'), 2)} | "
                             f"{_f(r['coverage_true_risk'])} | {_f(r['interval_score'], 4)} | "
                             f"{_f(r['threshold_brier'], 4)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="frcds.ct.evaluate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("predict")
    rp = sub.add_parser("report")
    for x in (pr, rp):
        x.add_argument("--model", required=True, help="model directory with manifest.json")
        x.add_argument("--set", nargs=2, action="append", metavar=("NAME", "COHORT_DIR"), required=True)
    rp.add_argument("--bootstrap", type=int, default=200)
    rp.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    if a.cmd == "predict":
        with open(os.path.join(a.model, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
        for name, cdir in a.set:
            write_predictions(os.path.join(a.model, "predictions", f"{name}.csv.gz"), predict(man, cdir))
    else:
        ev = report(a.model, dict(a.set), a.bootstrap, a.seed)
        with open(os.path.join(a.model, "evaluation.json"), "w", encoding="utf-8") as f:
            json.dump(ev, f, indent=1, default=float)
            f.write("\n")
        with open(os.path.join(a.model, "report.md"), "w", encoding="utf-8") as f:
            f.write(report_md(ev))
        print(json.dumps(ev.get("targets", {}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
