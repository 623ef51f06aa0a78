"""report.json and report.md from a predictions directory: every figure the v2 model must show, v2 beside v1 on the
same patients, each with its target and whether it is met.

Inputs (``pred_dir``): ``site_a_test.csv.gz`` and ``site_b_test.csv.gz`` (v2, required);
``v1_site_a_test.csv.gz`` and ``v1_site_b_test.csv.gz`` (v1 on the same patients; without them the v1 column is
empty and the v2-vs-v1 targets are not assessed). Optionally training's evaluation.json, only for a non-hip OOD
AUROC when the predictions files hold no non-hip rows (marked "reported by training").

Conventions, stated once:
- Risk figures use the rows with ``image_kind == 'clean'`` (artefact and non-hip rows serve the OOD figures only),
  whatever their OOD flag: the model's own output is evaluated on every clean test patient.
- The contract's risk columns are v2 as served (a recent measured DXA replaces the image's T-score). When the file
  also has the image-only columns (``*_image``), each risk figure is shown for them too ("v2 image-only", point
  estimate only); targets are judged on the served columns.
- v1 is joined to v2 by patient_id; v2-vs-v1 figures use the patients present in both files.
- "met" compares the point estimate with the target (the 95 % CI is shown beside it); None = no target or no data.
- Bootstrap: percentile intervals from ``n_boot`` resamples of patients; each figure has its own seeded stream
  (seed + CRC32 of the figure id), so adding a figure never changes another's interval. Differences between models
  are paired (same resampled patients); the site-A-to-B drop resamples the two sites independently.
- Risks are fractions in report.json; the markdown shows percentages / percentage points where natural.
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Callable

import numpy as np

from frcds.model.evaluate import clean
from frcds.model.export import sha256
from frcds.report import stats
from frcds.report.v2check import CHECK_FILE
from frcds.report.predictions import (IMAGE_ONLY, PredictionsFormatError, Table, image_only, outside_interval,
                                      read_predictions)

TAU = 10.0
THRESHOLD = {"hip": 0.03, "mof": 0.20}
V2_FILES = {"A": "site_a_test.csv.gz", "B": "site_b_test.csv.gz"}
V1_FILES = {"A": "v1_site_a_test.csv.gz", "B": "v1_site_b_test.csv.gz"}
CHECKED = ("pred10_hip", "lo10_hip", "hi10_hip", "pthr_hip", "pred10_mof", "lo10_mof", "hi10_mof", "pthr_mof")


def _take(t: Table, rows: np.ndarray) -> Table:
    return {k: v[rows] for k, v in t.items()}


def _clean_rows(t: Table) -> Table:
    return _take(t, np.flatnonzero(t["image_kind"] == "clean"))


def pair(v2: Table, v1: Table | None) -> tuple[Table, Table | None, int, int]:
    """Clean v2 rows that v1 also has, and v1's rows for them in the same order; counts of unpaired clean rows."""
    a = _clean_rows(v2)
    if v1 is None:
        return a, None, 0, 0
    pos = {p: i for i, p in enumerate(v1["patient_id"])}
    both = np.array([p in pos for p in a["patient_id"]], bool)
    rows1 = np.array([pos[p] for p in a["patient_id"][both]], dtype=np.int64)
    v1_clean = set(v1["patient_id"][v1["image_kind"] == "clean"].tolist())
    return (_take(a, np.flatnonzero(both)), _take(v1, rows1), int((~both).sum()),
            len(v1_clean - set(a["patient_id"].tolist())))


# ---- figures: each a function of (v2 table) or (v2, v1) tables of the same patients ------------------------------
def c_hip(t: Table, score: str = "pred10_hip") -> float:
    return stats.harrell_c(t["time_hip"], t["event_hip"], t[score], TAU)


def c_gain(t: Table) -> float:
    return c_hip(t) - c_hip(t, "qf10_hip")


def cal_slope(t: Table) -> float:
    return stats.km_decile_calibration(t["time_hip"], t["event_hip"], t["pred10_hip"])["slope"]


def top_rel(t: Table) -> float:
    return stats.top_decile(t["time_hip"], t["event_hip"], t["pred10_hip"])["relative_difference"]


def cover_hip(t: Table) -> float:
    return stats.coverage(t["lo10_hip"], t["hi10_hip"], t["true_risk10_hip"])


def mean_is(t: Table) -> float:
    return float(stats.interval_score(t["lo10_hip"], t["hi10_hip"], t["true_risk10_hip"]).mean())


def is_reduction(t: Table, t1: Table) -> float:
    """1 - mean interval score of v2 / that of v1 (truth from the v2 rows: both are the same patients)."""
    return 1.0 - mean_is(t) / float(stats.interval_score(t1["lo10_hip"], t1["hi10_hip"], t["true_risk10_hip"]).mean())


def top_width(t: Table) -> float:
    """Median hip interval width among the model's own top tenth of predicted hip risk."""
    top = t["pred10_hip"] >= np.quantile(t["pred10_hip"], 0.9)
    return float(np.median((t["hi10_hip"] - t["lo10_hip"])[top]))


def straddle(t: Table) -> float:
    """Among patients at or above the 3 % hip threshold, the share whose 95 % interval also reaches below it."""
    over = t["pred10_hip"] >= THRESHOLD["hip"]
    return float((t["lo10_hip"][over] < THRESHOLD["hip"]).mean()) if over.any() else float("nan")


def lowconf_high(t: Table) -> float:
    """Share flagged low confidence among in-distribution high-tier patients (an out-of-distribution image gets no
    image-derived risk, so neither its tier nor its flag is the model's)."""
    hi = (t["tier"] == "high") & ~t["ood_flag"]
    return float(t["low_confidence"][hi].mean()) if hi.any() else float("nan")


def pthr_brier(k: str) -> Callable[[Table], float]:
    def f(t: Table) -> float:
        ok = np.isfinite(t[f"pthr_{k}"])
        if not ok.any():
            return float("nan")
        return stats.brier(t[f"pthr_{k}"][ok], (t[f"true_risk10_{k}"][ok] >= THRESHOLD[k]).astype(float))
    return f


def _fig(fid: str, section: str, label: str, value, *, ci=None, v1=None, v1_ci=None, image_only_value=None,
         target: str | None = None, met: bool | None = None, n: int | None = None, note: str | None = None,
         unit: str = "") -> dict:
    return {"id": fid, "section": section, "label": label, "value": value, "ci95": ci, "v1": v1, "v1_ci95": v1_ci,
            "v2_image_only": image_only_value, "target": target, "met": met, "n": n, "note": note, "unit": unit}


def _finite(v) -> bool:
    return v is not None and bool(np.isfinite(v))


def _within(v, lo, hi) -> bool | None:
    return bool(lo <= v <= hi) if _finite(v) else None


def _at_least(v, lo) -> bool | None:
    return bool(v >= lo) if _finite(v) else None


def _at_most(v, hi) -> bool | None:
    return bool(v <= hi) if _finite(v) else None


def _training_nonhip_auroc(path: str | None) -> tuple[float | None, str | None]:
    """A non-hip OOD AUROC from training's evaluation.json: the first numeric leaf (breadth first) whose key path
    mentions non-hip and ends in 'auroc' (v1's layout: ood.non_hip.auroc)."""
    if not path or not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        ev = json.load(f)
    queue = [((), ev)]
    while queue:
        keys, node = queue.pop(0)
        if isinstance(node, dict):
            queue.extend(((*keys, k), v) for k, v in node.items())
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            p = ".".join(keys).lower().replace("-", "_")
            if ("non_hip" in p or "nonhip" in p) and p.endswith("auroc"):
                return float(node), ".".join(keys)
    return None, None


def _ood_auroc(t: Table | None, kind: str) -> tuple[float | None, int]:
    if t is None:
        return None, 0
    pos, neg = t["image_kind"] == kind, t["image_kind"] == "clean"
    if not (pos.any() and neg.any()):
        return None, int(pos.sum())
    return stats.auroc(t["ood_distance"][neg], t["ood_distance"][pos]), int(pos.sum())


class Report:
    """Collects figures; ``boot`` gives each figure its own seeded bootstrap stream."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed = n_boot, seed
        self.figs: list[dict] = []

    def boot(self, fid: str, stat, *sizes: int) -> list[float] | None:
        if self.n_boot <= 0 or min(sizes, default=0) == 0:
            return None
        return stats.percentile_ci(stats.bootstrap(stat, sizes, self.n_boot, (self.seed + zlib.crc32(fid.encode())) % 2**32))

    def model_figure(self, fid: str, section: str, label: str, f: Callable[[Table], float], A: Table, A1: Table | None,
                     Ai: Table | None, *, target: str | None = None, judge=None, v1_ci: bool = True, **kw) -> dict:
        """A figure of one model's predictions: v2 with CI, v1 (same patients) with CI, v2 image-only (point)."""
        v = f(A)
        fig = _fig(fid, section, label, v, ci=self.boot(fid, lambda i: f(_take(A, i)), len(A["patient_id"])),
                   v1=f(A1) if A1 is not None else None,
                   v1_ci=self.boot(fid + "/v1", lambda i: f(_take(A1, i)), len(A1["patient_id"])) if A1 is not None and v1_ci else None,
                   image_only_value=f(Ai) if Ai is not None else None, target=target,
                   met=judge(v) if judge else None, n=len(A["patient_id"]), **kw)
        self.figs.append(fig)
        return fig


def build(pred_dir: str, n_boot: int = 1000, seed: int = 20261203, training_eval: str | None = None) -> dict:
    """The report as a dict (see module docstring). Raises PredictionsFormatError on a malformed or missing v2 file."""
    files, v2, v1 = {}, {}, {}
    for site in ("A", "B"):
        p = os.path.join(pred_dir, V2_FILES[site])
        if not os.path.exists(p):
            raise PredictionsFormatError(f"missing {p}")
        v2[site] = read_predictions(p)
        files[V2_FILES[site]] = {"sha256": sha256(p), "rows": len(v2[site]["patient_id"])}
        bad = sorted(set(v2[site]["site"].tolist()) - {site})
        if bad:
            raise PredictionsFormatError(f"{V2_FILES[site]}: site column has {bad}, expected only '{site}'")
        p1 = os.path.join(pred_dir, V1_FILES[site])
        v1[site] = read_predictions(p1) if os.path.exists(p1) else None
        if v1[site] is not None:
            files[V1_FILES[site]] = {"sha256": sha256(p1), "rows": len(v1[site]["patient_id"])}
    warnings: list[str] = []
    for site in ("A", "B"):
        for name, t in ((V2_FILES[site], v2[site]), (V1_FILES[site], v1[site])):
            for k in ("hip", "mof"):
                n_out = outside_interval(t, k) if t is not None else 0
                if n_out:
                    warnings.append(f"{name}: {n_out} rows with pred10_{k} outside [lo10_{k}, hi10_{k}]")
    paired = {}
    for site in ("A", "B"):
        a, a1, only2, only1 = pair(v2[site], v1[site])
        paired[site] = (a, a1)
        if a1 is None:
            warnings.append(f"site {site}: no v1 predictions file; v1 figures and v2-vs-v1 targets not assessed")
            continue
        if only2 or only1:
            warnings.append(f"site {site}: {only2} clean v2 patients have no v1 row and {only1} clean v1 patients no "
                            f"v2 row; v2-vs-v1 figures use the {len(a['patient_id'])} in both")
        for col in ("time_hip", "event_hip", "true_risk10_hip", "qf10_hip"):
            d = np.abs(a[col].astype(np.float64) - a1[col].astype(np.float64))
            tol = 1e-6 * np.maximum(1.0, np.abs(a[col].astype(np.float64)))
            if (d > tol).any():
                warnings.append(f"site {site}: v1 and v2 files disagree on '{col}' for {int((d > tol).sum())} patients")
    A, A1 = paired["A"]
    Bp, B1 = paired["B"]
    a_all, b_all = _clean_rows(v2["A"]), _clean_rows(v2["B"])
    has_image_only = all(c in A for c in IMAGE_ONLY)
    Ai = image_only(A) if has_image_only else None
    r = Report(n_boot, seed)
    details: dict = {}
    nA = len(A["patient_id"])

    # ---- Site A: discrimination ----------------------------------------------------------------------------------
    r.model_figure("a_hip_c", "Site A", "Hip C (Harrell, 10 y)", c_hip, A, A1, Ai,
                   note=f"QFracture-2012 alone: {c_hip(A, 'qf10_hip'):.3f}; the true risk (oracle, simulation only): "
                        f"{c_hip(A, 'true_risk10_hip'):.3f}")
    r.model_figure("a_hip_c_gain", "Site A", "Hip C gain over QFracture-2012", c_gain, A, A1, Ai,
                   target=">= +0.05", judge=lambda v: _at_least(v, 0.05), note="paired bootstrap of the difference")
    details["site_a_mof_c"] = {
        "v2": stats.harrell_c(A["time_mof"], A["event_mof"], A["pred10_mof"], TAU),
        "qfracture": stats.harrell_c(A["time_mof"], A["event_mof"], A["qf10_mof"], TAU),
        "v1": stats.harrell_c(A["time_mof"], A["event_mof"], A1["pred10_mof"], TAU) if A1 is not None else None}

    # ---- Site A: calibration -------------------------------------------------------------------------------------
    r.model_figure("a_cal_slope", "Site A", "KM-decile calibration slope (hip, 10 y)", cal_slope, A, A1, Ai,
                   target="0.85-1.15", judge=lambda v: _within(v, 0.85, 1.15),
                   note="OLS slope of KM observed on mean predicted over deciles of predicted risk")
    tops = {}
    for m_, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)):
        if t is not None:
            tops[m_] = stats.top_decile(t["time_hip"], t["event_hip"], t["pred10_hip"], truth=A["true_risk10_hip"])
    r.model_figure("a_top_decile", "Site A", "Top decile: (mean predicted - KM observed) / observed (hip)", top_rel,
                   A, A1, Ai, target="within +/-20 %", judge=lambda v: _within(v, -0.2, 0.2), unit="relative",
                   note="; ".join(f"{m} predicted {x['predicted'] * 100:.2f} % vs observed {x['observed_km'] * 100:.2f} %"
                                  f" (true {x['true'] * 100:.2f} %)" for m, x in tops.items()))
    details["site_a_calibration_deciles_hip"] = {
        m: stats.km_decile_calibration(t["time_hip"], t["event_hip"], t["pred10_hip"])
        for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)) if t is not None}

    # ---- Site A: intervals ---------------------------------------------------------------------------------------
    r.model_figure("a_coverage", "Site A", "Coverage of the true 10-y hip risk by the 95 % interval", cover_hip, A, A1,
                   Ai, target="0.90-0.98", judge=lambda v: _within(v, 0.90, 0.98))
    details["site_a_coverage_mof"] = {
        m: stats.coverage(t["lo10_mof"], t["hi10_mof"], A["true_risk10_mof"])
        for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)) if t is not None}
    details["site_a_mean_interval_score_hip"] = {m: mean_is(t) for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai))
                                                 if t is not None}
    if A1 is not None:
        red = is_reduction(A, A1)
        r.figs.append(_fig("a_interval_score", "Site A", "Interval score v2 vs v1: reduction (hip, alpha 0.05, true risk)",
                           red, ci=r.boot("a_interval_score", lambda i: is_reduction(_take(A, i), _take(A1, i)), nA),
                           image_only_value=is_reduction(Ai, A1) if Ai is not None else None,
                           target=">= 30 % lower than v1", met=_at_least(red, 0.30), n=nA, unit="relative",
                           note="mean interval score (risk fraction): " + ", ".join(
                               f"{m} {v:.4f}" for m, v in details["site_a_mean_interval_score_hip"].items())))
    else:
        r.figs.append(_fig("a_interval_score", "Site A", "Interval score v2 vs v1: reduction (hip, alpha 0.05, true risk)",
                           None, target=">= 30 % lower than v1", n=nA,
                           note=f"v1 file missing; v2 mean interval score {mean_is(A):.4f}"))
    f = r.model_figure("a_top_width", "Site A", "Median hip 95 % interval width, top decile of predicted risk",
                       top_width, A, A1, Ai, target="v2 beside v1 (narrower is better)", unit="risk",
                       note="each model's own top decile")
    f["met"] = None if f["v1"] is None else bool(f["value"] < f["v1"])
    r.model_figure("a_straddle", "Site A", "Patients at hip >= 3 % whose interval reaches below 3 %", straddle, A, A1,
                   Ai, note="a decision the interval leaves open; no target")

    # ---- T-score vs measured DXA ---------------------------------------------------------------------------------
    m = np.isfinite(a_all["dxa_tscore"]) & np.isfinite(a_all["tscore_mean"])
    te, td, tl, tu = (a_all[c][m] for c in ("tscore_mean", "dxa_tscore", "tscore_lo", "tscore_hi"))
    tfig = [("t_r", "T-score estimate vs measured DXA: Pearson r", lambda i: stats.pearson(te[i], td[i]), ">= 0.75",
             lambda v: _at_least(v, 0.75), ""),
            ("t_coverage", "T-score 95 % interval coverage of measured DXA", lambda i: stats.coverage(tl[i], tu[i], td[i]),
             "0.93-0.97", lambda v: _within(v, 0.93, 0.97), ""),
            ("t_bias", "T-score bias (estimate - measured DXA)", lambda i: float(np.mean(te[i] - td[i])), None, None, "T")]
    allrows = np.arange(int(m.sum()))
    for fid, label, stat, tgt, judge, unit in tfig:
        v = stat(allrows) if m.any() else None
        r.figs.append(_fig(fid, "T-score", label, v, ci=r.boot(fid, stat, int(m.sum())), target=tgt,
                           met=judge(v) if judge else None, n=int(m.sum()), unit=unit,
                           note=("site A clean test patients with a DXA result in the chart (any age of DXA); the "
                                 "image estimate, before any DXA replacement" if fid == "t_r" else None) if m.any() else
                                "no rows with both dxa_tscore and tscore_mean"))
    for site, t in (("A", a_all), ("B", b_all)):
        tt = np.isfinite(t["tscore_mean"])
        md = tt & np.isfinite(t["dxa_tscore"])
        if tt.any():
            details[f"site_{site.lower()}_tscore"] = {
                "vs_true_t": {"n": int(tt.sum()), "r": stats.pearson(t["tscore_mean"][tt], t["bmd_t_true"][tt]),
                              "coverage": stats.coverage(t["tscore_lo"][tt], t["tscore_hi"][tt], t["bmd_t_true"][tt]),
                              "bias": float(np.mean(t["tscore_mean"][tt] - t["bmd_t_true"][tt]))},
                "vs_measured_dxa": {"n": int(md.sum()),
                                    "r": stats.pearson(t["tscore_mean"][md], t["dxa_tscore"][md]) if md.any() else None,
                                    "coverage": stats.coverage(t["tscore_lo"][md], t["tscore_hi"][md], t["dxa_tscore"][md]) if md.any() else None,
                                    "bias": float(np.mean(t["tscore_mean"][md] - t["dxa_tscore"][md])) if md.any() else None}}
    if "dxa_used" in a_all:
        details["site_a_dxa_used_fraction"] = float(a_all["dxa_used"].mean())

    # ---- Low confidence and threshold probabilities ------------------------------------------------------------
    nh = {m: int(((t["tier"] == "high") & ~t["ood_flag"]).sum())
          for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)) if t is not None}
    r.model_figure("lowconf_high", "Decision", "'Low confidence' share among high-tier patients (site A, in distribution)", lowconf_high,
                   A, A1, Ai, target="<= 10 %", judge=lambda v: _at_most(v, 0.10),
                   note="high-tier patients: " + ", ".join(f"{k} {v}" for k, v in nh.items()))
    r.figs[-1]["n"] = nh["v2"]
    details["tiers_site_a"] = {m: {k: int((t["tier"] == k).sum()) for k in ("low", "moderate", "high")}
                               for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)) if t is not None}
    details["pthr_reliability"] = {}
    for k in ("hip", "mof"):
        y = (A[f"true_risk10_{k}"] >= THRESHOLD[k]).astype(float)
        r.model_figure(f"pthr_brier_{k}", "Decision",
                       f"Brier score of P({k} 10-y risk >= {THRESHOLD[k]:.0%}) against the true risk", pthr_brier(k),
                       A, A1, Ai, note=f"share with true risk >= threshold {y.mean():.3f} (a constant forecast of it "
                                       f"scores {y.mean() * (1 - y.mean()):.3f}); reliability table below")
        details["pthr_reliability"][k] = {
            m: stats.reliability(t[f"pthr_{k}"], y) if np.isfinite(t[f"pthr_{k}"]).all() else None
            for m, t in (("v2", A), ("v1", A1), ("v2_image_only", Ai)) if t is not None}

    # ---- Site B ----------------------------------------------------------------------------------------------------
    fl = b_all["ood_flag"]
    share = float(fl.mean())
    b1c = _clean_rows(v1["B"]) if v1["B"] is not None else None
    details["site_a_clean_ood_flagged"] = {m: float(t["ood_flag"].mean()) for m, t in (("v2", A), ("v1", A1)) if t is not None}
    r.figs.append(_fig("b_ood_clean", "Site B", "Clean site-B images flagged out of distribution", share,
                       ci=r.boot("b_ood_clean", lambda i: float(fl[i].mean()), len(fl)),
                       v1=float(b1c["ood_flag"].mean()) if b1c is not None else None, target="<= 10 %",
                       met=_at_most(share, 0.10), n=len(fl)))
    au2, na2 = _ood_auroc(v2["B"], "artefact")
    au1, _ = _ood_auroc(v1["B"], "artefact")
    kb = v2["B"]["image_kind"]
    dneg, dpos = v2["B"]["ood_distance"][kb == "clean"], v2["B"]["ood_distance"][kb == "artefact"]
    r.figs.append(_fig("b_artefact_auroc", "Site B", "OOD AUROC: artefact vs clean images (site B)", au2,
                       ci=r.boot("b_artefact_auroc", lambda i, j: stats.auroc(dneg[i], dpos[j]), len(dneg), len(dpos)),
                       v1=au1, target=">= 0.95", met=_at_least(au2, 0.95), n=na2,
                       note=None if na2 else "no artefact rows in the site-B file"))
    details["site_a_artefact_auroc"] = {"v2": _ood_auroc(v2["A"], "artefact")[0], "v1": _ood_auroc(v1["A"], "artefact")[0],
                                        "n_artefact": _ood_auroc(v2["A"], "artefact")[1]}
    n_nonhip = sum(int((v2[s]["image_kind"] == "nonhip").sum()) for s in ("A", "B"))
    if n_nonhip:
        both = {k: np.concatenate([v2[s][k] for s in ("A", "B")]) for k in ("image_kind", "ood_distance")}
        au_nh, _ = _ood_auroc(both, "nonhip")
        r.figs.append(_fig("nonhip_auroc", "Site B", "OOD AUROC: non-hip vs clean images", au_nh, target=">= 0.99",
                           met=_at_least(au_nh, 0.99), n=n_nonhip,
                           note="non-hip rows of the predictions files against the clean rows of both sites"))
    else:
        val, key = _training_nonhip_auroc(training_eval)
        r.figs.append(_fig("nonhip_auroc", "Site B", "OOD AUROC: non-hip vs clean images", val, target=">= 0.99",
                           met=_at_least(val, 0.99),
                           note=(f"no non-hip rows in the predictions files; value reported by training (evaluation.json "
                                 f"'{key}'), not recomputed") if val is not None else
                                "no non-hip rows in the predictions files and no training figure found: not assessed"))
    cb2 = c_hip(b_all)
    drop = c_hip(a_all) - cb2
    ci_drop = r.boot("b_c_drop", lambda i, j: c_hip(_take(a_all, i)) - c_hip(_take(b_all, j)),
                     len(a_all["patient_id"]), len(b_all["patient_id"]))
    drop1 = ci_drop1 = drop_img = None
    if A1 is not None and B1 is not None:
        drop1 = c_hip(A1) - c_hip(B1)
        ci_drop1 = r.boot("b_c_drop/v1", lambda i, j: c_hip(_take(A1, i)) - c_hip(_take(B1, j)),
                          len(A1["patient_id"]), len(B1["patient_id"]))
    if has_image_only and all(c in b_all for c in IMAGE_ONLY):
        drop_img = c_hip(image_only(a_all)) - c_hip(image_only(b_all))
    r.figs.append(_fig("b_c_drop", "Site B", "Hip C drop site A -> site B", drop, ci=ci_drop, v1=drop1, v1_ci=ci_drop1,
                       image_only_value=drop_img, target="<= 0.03", met=_at_most(drop, 0.03), n=len(b_all["patient_id"]),
                       note=f"site B hip C: v2 {cb2:.3f}, QFracture-2012 {c_hip(b_all, 'qf10_hip'):.3f}"
                            + (f", v1 {c_hip(B1):.3f}" if B1 is not None else "")
                            + f"; QFracture-2012 drop {c_hip(a_all, 'qf10_hip') - c_hip(b_all, 'qf10_hip'):+.3f}"))
    for site, t in (("A", a_all), ("B", b_all)):
        r.figs.append(_fig(f"events_{site.lower()}", "Events", f"Hip fractures by 10 y, site {site} test (clean images)",
                           stats.events_by(t["time_hip"], t["event_hip"]), n=len(t["patient_id"]), unit="count",
                           note=f"MOF {stats.events_by(t['time_mof'], t['event_mof'])}; "
                                f"artefact rows {int((v2[site]['image_kind'] == 'artefact').sum())}"))
    consistency = _consistency(pred_dir, warnings)
    figs = r.figs
    return clean({
        "kind": "frcds-v2-report",
        "inputs": {"files": files, "rows_clean": {"A": len(a_all["patient_id"]), "B": len(b_all["patient_id"])},
                   "paired_with_v1": {"A": nA if A1 is not None else 0,
                                      "B": len(Bp["patient_id"]) if B1 is not None else 0},
                   "image_only_columns": has_image_only},
        "bootstrap": {"resamples": n_boot, "seed": seed, "interval": "percentile 2.5-97.5"},
        "figures": figs,
        "details": details,
        "warnings": warnings,
        "consistency_with_artefact": consistency,
        "summary": {"targets": sum(f["met"] is not None for f in figs), "met": sum(f["met"] is True for f in figs),
                    "missed": [f["id"] for f in figs if f["met"] is False],
                    "not_assessed": [f["id"] for f in figs if f["target"] and f["met"] is None]},
    })


#: largest difference between the file and the recomputation still counted as agreement: float32 ONNX outputs,
#: 7-digit numbers in the file, the service's erfc (1.2e-7) and bisection tolerances
AGREE_ABS = 1e-4


def _consistency(pred_dir: str, warnings: list[str]) -> dict | None:
    """The v2check result beside the predictions (frcds/report/v2check.py), with a warning for each column whose
    recomputation from model.onnx + manifest disagrees with the file."""
    path = os.path.join(pred_dir, CHECK_FILE)
    if not os.path.exists(path):
        warnings.append("no v2_recomputed_check.json: the predictions were not checked against model.onnx + manifest")
        return None
    with open(path, encoding="utf-8") as f:
        chk = json.load(f)
    for site, res in chk.get("sites", {}).items():
        for part in ("served", "image_only", "ood", "tscore"):
            bad = [f"{col} (max |diff| {d['max_abs']:.2g})" if "max_abs" in d else f"{col} ({d['n_differ']} rows)"
                   for col, d in (res.get(part) or {}).items()
                   if ("max_abs" in d and d["max_abs"] > AGREE_ABS) or ("agree" in d and d["agree"] < 1.0)]
            if bad:
                warnings.append(f"site {site}, {part}: the file differs from model.onnx + manifest recomputed on "
                                f"{res['rows_checked']} rows in " + ", ".join(bad))
    return chk


def _num(v, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "count":
        return str(int(v))
    if unit == "relative":
        return f"{v * 100:+.1f} %"
    if unit == "risk":
        return f"{v * 100:.2f} pp"
    return f"{v:.3f}"


def markdown(r: dict) -> str:
    """The report's table (and the decile/reliability details) as markdown."""
    def ci(c, u):
        return "" if not c else f"{_num(c[0], u)} to {_num(c[1], u)}"
    met = {True: "met", False: "**MISSED**", None: "–"}
    img = r["inputs"].get("image_only_columns")
    lines = ["# hip-xray-v2 — figures recomputed from the saved predictions", "",
             "Generated by `models/training/report_v2.py` from "
             + ", ".join(f"`{k}` ({v['rows']} rows)" for k, v in r["inputs"]["files"].items())
             + f". Bootstrap: {r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']}, percentile 95 % CI. "
             "Risk figures use the clean test images (every one, OOD-flagged or not); v1 was run on the same patients. "
             "v2 = as served (a measured DXA no older than the manifest's limit replaces the image T-score)"
             + ("; 'v2 image-only' = the same model with the image T-score for everyone" if img else "")
             + ". 'met' compares the v2 point estimate with the target.", "",
             "| Section | Figure | v2 | v2 95 % CI | " + ("v2 image-only | " if img else "") + "v1 | v1 95 % CI | Target | v2 | n | Note |",
             "|---|---|---|---|" + ("---|" if img else "") + "---|---|---|---|---|---|"]
    for f in r["figures"]:
        u = f["unit"]
        lines.append(f"| {f['section']} | {f['label']} | {_num(f['value'], u)} | {ci(f['ci95'], u)} | "
                     + (f"{_num(f['v2_image_only'], u)} | " if img else "")
                     + f"{_num(f['v1'], u)} | {ci(f['v1_ci95'], u)} | {f['target'] or '–'} | {met[f['met']]} | "
                     f"{f['n'] if f['n'] is not None else '–'} | {f['note'] or ''} |")
    s = r["summary"]
    lines += ["", f"Targets assessed: {s['targets']}; met: {s['met']}; missed: {', '.join(s['missed']) or 'none'}"
              + (f"; not assessed: {', '.join(s['not_assessed'])}" if s["not_assessed"] else "") + ".", ""]
    if r["warnings"]:
        lines += ["**Input warnings**", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    d = r["details"]
    cal = d.get("site_a_calibration_deciles_hip", {})
    models = [m for m in ("v2", "v2_image_only", "v1") if cal.get(m)]
    if models:
        lines += ["## Site A hip calibration by decile of predicted 10-y risk (KM observed at 10 y)", "",
                  "| Decile | n | " + " | ".join(f"{m} predicted | {m} observed" for m in models) + " |",
                  "|---|---|" + "---|---|" * len(models)]
        for i, g in enumerate(cal["v2"]["table"]):
            cells = [f"{cal[m]['table'][i]['predicted'] * 100:.2f} % | {cal[m]['table'][i]['observed_km'] * 100:.2f} %" for m in models]
            lines.append(f"| {i + 1} | {g['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    for k, rel in d.get("pthr_reliability", {}).items():
        models = [m for m in ("v2", "v2_image_only", "v1") if rel.get(m)]
        if not models:
            continue
        lines += [f"## Reliability of P({k} 10-y risk >= {THRESHOLD[k]:.0%}), site A (observed = share whose TRUE risk is at or above it)", "",
                  "| Bin | " + " | ".join(f"{m} n | {m} mean p | {m} observed" for m in models) + " |",
                  "|---|" + "---|---|---|" * len(models)]
        by = {m: {tuple(x["bin"]): x for x in rel[m]} for m in models}
        for b in sorted({bb for m in models for bb in by[m]}):
            cells = [(f"{by[m][b]['n']} | {by[m][b]['mean_p']:.3f} | {by[m][b]['observed']:.3f}" if b in by[m] else "0 | – | –")
                     for m in models]
            lines.append(f"| {b[0]:.1f}–{b[1]:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
    chk = r.get("consistency_with_artefact")
    if chk:
        lines += ["## The predictions files against model.onnx + manifest (recomputed by frcds/report/v2check.py)", "",
                  "| Site | Variant | Rows | max abs diff: " + " | ".join(CHECKED) + " | tier agree | low-confidence agree |",
                  "|---|---|---|" + "---|" * len(CHECKED) + "---|---|"]
        for site, res in chk["sites"].items():
            for part in ("served", "image_only"):
                x = res.get(part)
                if not x:
                    continue
                lines.append(f"| {site} | {part} | {res['rows_checked']} | "
                             + " | ".join(f"{x[c]['max_abs']:.1e}" for c in CHECKED) + " | "
                             f"{x['tier']['agree']:.4f} | {x['low_confidence']['agree']:.4f} |")
        lines.append("")
    other = {k: v for k, v in d.items() if k not in ("site_a_calibration_deciles_hip", "pthr_reliability")}
    if other:
        lines += ["## Other figures", "", "```json", json.dumps(other, indent=1), "```", ""]
    return "\n".join(lines)
