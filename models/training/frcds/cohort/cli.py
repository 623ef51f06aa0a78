"""Command line: ``npm run cohort -- --patients N --seed S --site A|B --out DIR [--dicom all|none|N] [--demo]
[--workers K] [--no-images]``. Writes every output of contract 4 (see models/training/README.md, "Cohort").

Parallel over patients with multiprocessing; each patient draws only from its own ``SeedSequence`` streams, so the
outputs are identical for any ``--workers``. The npz files are written with a fixed zip timestamp so the same seed
gives byte-identical arrays (``np.savez`` stamps the current time).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing as mp
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from ..qfracture import ATTRIBUTION, BOOLEANS
from .outcomes import TRUE_EFFECTS, calibration
from .patient import CohortConfig, simulate_patient

GENERATOR_VERSION = "0.1.0"
REPO_ROOT = Path(__file__).resolve().parents[4]


class CohortError(Exception):
    """Bad arguments or an output directory that cannot be written."""


# ---------------------------------------------------------------------------------------------- parallel run

_CFG: CohortConfig | None = None
_OUT: str | None = None


def _init(cfg: CohortConfig, out: str | None) -> None:
    global _CFG, _OUT
    _CFG, _OUT = cfg, out
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _work(i: int) -> dict:
    assert _CFG is not None
    return simulate_patient(_CFG, i, _OUT)


class Progress:
    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.label, self.stream = total, label, stream
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.done = 0

    def step(self, k: int = 1) -> None:
        self.done += k
        now = time.perf_counter()
        if now - self.last < 0.5 and self.done < self.total:
            return
        self.last = now
        el = now - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.stream.write(f"\r[cohort] {self.label} {self.done}/{self.total} patients  {rate:5.1f}/s  "
                          f"elapsed {el:6.1f}s  eta {eta:6.1f}s ")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def run_part(cfg: CohortConfig, out: str | None, workers: int, label: str = "") -> list[dict]:
    prog = Progress(cfg.n, label or f"site {cfg.site}")
    rows: list[dict] = []
    if workers <= 1 or cfg.n < 4:
        _init(cfg, out)
        for i in range(cfg.n):
            rows.append(_work(i))
            prog.step()
        return rows
    ctx = mp.get_context("fork")
    chunk = max(1, min(16, cfg.n // (workers * 8)))
    with ctx.Pool(workers, initializer=_init, initargs=(cfg, out)) as pool:
        for r in pool.imap(_work, range(cfg.n), chunksize=chunk):
            rows.append(r)
            prog.step()
    return rows


# ---------------------------------------------------------------------------------------------- writers

def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez-compatible file with a fixed timestamp and order, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in arrays:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def _str_array(xs: list[str]) -> np.ndarray:
    width = max([1] + [len(x) for x in xs])
    return np.array(xs, dtype=f"<U{width}")


def tabular_arrays(truths: list[dict]) -> dict[str, np.ndarray]:
    """Contract-4 tabular.npz: per patient, same order as the truth file."""
    def col(f, dtype):
        return np.array([f(t) for t in truths], dtype=dtype)

    def nan(x):
        return np.nan if x is None else x

    d: dict[str, np.ndarray] = {
        "patient_id": _str_array([t["patient_id"] for t in truths]),
        "site": _str_array([t["site"] for t in truths]),
        "sex": col(lambda t: 1 if t["sex"] == "male" else 0, np.int8),
        "age": col(lambda t: t["age_years"], np.float64),
        "age_exact": col(lambda t: t["age"], np.float64),
        # QFracture inputs as the EHR knows them (missing = NaN / -1; the qf_* columns use the documented defaults)
        "ethrisk": col(lambda t: _ethrisk(t["ehr"]["nhs_ethnic"]), np.int8),
        "ethnicity_recorded": col(lambda t: t["ehr"]["nhs_ethnic"] != "Z", np.bool_),
        "bmi": col(lambda t: nan(t["ehr"]["bmi"]), np.float64),
        "bmi_recorded": col(lambda t: t["ehr"]["bmi"] is not None, np.bool_),
        "smoke_cat": col(lambda t: -1 if t["ehr"]["smoke_cat"] is None else t["ehr"]["smoke_cat"], np.int8),
        "alcohol_cat6": col(lambda t: -1 if t["ehr"]["alcohol_cat6"] is None else t["ehr"]["alcohol_cat6"], np.int8),
    }
    for b in BOOLEANS:
        d[b] = col(lambda t, b=b: t["ehr"]["flags"][b], np.int8)
    for k in ("qf_lp_hip", "qf_lp_mof", "qf_risk10_hip", "qf_risk10_mof"):
        d[k] = col(lambda t, k=k: t["ehr"][k], np.float64)
    d.update({
        "time_hip": col(lambda t: t["time_hip"], np.float64), "event_hip": col(lambda t: t["event_hip"], np.int8),
        "time_mof": col(lambda t: t["time_mof"], np.float64), "event_mof": col(lambda t: t["event_mof"], np.int8),
        "true_lp_hip": col(lambda t: t["true_lp_hip"], np.float64),
        "true_lp_mof": col(lambda t: t["true_lp_mof"], np.float64),
        "true_risk_hip": np.array([t["true_risk_hip"] for t in truths], dtype=np.float64).reshape(len(truths), 10),
        "true_risk_mof": np.array([t["true_risk_mof"] for t in truths], dtype=np.float64).reshape(len(truths), 10),
        "bmd_t": col(lambda t: t["bmd_t"], np.float64),
        "bmd_resid_z": col(lambda t: t["bmd_resid_z"], np.float64),
        "micro_z": col(lambda t: t["micro_z"], np.float64),
        "artefact": _str_array([(t["image"].get("artefact") or "") for t in truths]),
        "should_exclude": col(lambda t: bool(t["image"].get("should_exclude", False)), np.bool_),
        "has_dicom": col(lambda t: t["dicom"]["written"], np.bool_),
    })
    return d


def _ethrisk(letter: str) -> int:
    from .population import NHS_ETHNIC_TO_ETHRISK
    return NHS_ETHNIC_TO_ETHRISK.get(letter, 1)


CSV_COLUMNS = ("patient_id", "mrn", "site", "sex", "age", "age_years", "index_datetime", "birth_date", "nhs_ethnic",
               "ethrisk", "height_cm", "weight_kg", "bmi", "smoke_cat", "alcohol_cat6", "frailty", "bmd_t",
               "bmd_expected", "bmd_resid_z", "micro_z", "qf_lp_hip_truth_inputs", "qf_lp_mof_truth_inputs",
               "true_lp_hip", "true_lp_mof", "latent_t_hip", "latent_t_mof", "t_death", "t_ltfu", "t_admin",
               "time_hip", "event_hip", "time_mof", "event_mof", "censor_reason", "mof_floor_years")


# Appended after the original columns, so readers of the earlier layout keep working.
DXA_CSV_COLUMNS = ("dxa_date", "dxa_years_before_index", "dxa_laterality", "dxa_true_t_at_scan", "dxa_bmd_g_cm2",
                   "dxa_t_score")


def _dxa_row(d: dict | None) -> list:
    if d is None:
        return [None] * len(DXA_CSV_COLUMNS)
    return [d["date"], d["years_before_index"], d["laterality"], d["true_t_at_scan"], d["bmd_g_cm2"], d["t_score"]]


def write_truth_csv(path: str, truths: list[dict]) -> None:
    cols = list(CSV_COLUMNS) + [f"true_risk_hip_{k}y" for k in range(1, 11)] + \
        [f"true_risk_mof_{k}y" for k in range(1, 11)] + [f"true_{b}" for b in BOOLEANS] + \
        ["n_prior_fractures", "qf_lp_hip_ehr", "qf_lp_mof_ehr", "qf_risk10_hip_ehr", "qf_risk10_mof_ehr",
         "artefact", "should_exclude", "laterality", "photometric", "manufacturer", "dicom_written", "dicom_syntax",
         "study_uid"] + list(DXA_CSV_COLUMNS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for t in truths:
            row = [t[c] for c in CSV_COLUMNS] + t["true_risk_hip"] + t["true_risk_mof"] + \
                [t["flags"][b] for b in BOOLEANS] + \
                [len(t["prior_fractures"]), t["ehr"]["qf_lp_hip"], t["ehr"]["qf_lp_mof"], t["ehr"]["qf_risk10_hip"],
                 t["ehr"]["qf_risk10_mof"], t["image"].get("artefact") or "", t["image"].get("should_exclude", ""),
                 t["image"].get("laterality", ""), t["image"].get("photometric", ""),
                 t["image"].get("manufacturer", ""), t["dicom"]["written"], t["dicom"].get("syntax", ""),
                 t["dicom"]["study_uid"]] + _dxa_row(t.get("dxa"))
            w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])


# ---------------------------------------------------------------------------------------------- summaries

def km_cuminc(time_: np.ndarray, event: np.ndarray, at: float) -> float:
    """1 − Kaplan–Meier survival at ``at`` (death and loss to follow-up treated as censoring)."""
    order = np.lexsort((-event, time_))
    t, e = time_[order], event[order]
    n = len(t)
    s = 1.0
    at_risk = n
    i = 0
    while i < n and t[i] <= at:
        j = i
        d = 0
        while j < n and t[j] == t[i]:
            d += int(e[j])
            j += 1
        if d:
            s *= 1.0 - d / at_risk
        at_risk -= (j - i)
        i = j
    return 1.0 - s


def summarise(truths: list[dict], timings: dict, config: dict) -> dict:
    n = len(truths)
    tab = tabular_arrays(truths) if n else {}
    out: dict = {"generator": f"frcds cohort {GENERATOR_VERSION}", "qfracture": ATTRIBUTION, "config": config,
                 "true_effects": TRUE_EFFECTS.__dict__,
                 "calibration": {k: v for k, v in calibration().items() if not k.startswith("_")},
                 "counts": {"patients": n}}
    if not n:
        return out
    sex = tab["sex"]
    out["counts"].update({
        "female": int((sex == 0).sum()), "male": int((sex == 1).sum()),
        "by_site": {s: int((tab["site"] == s).sum()) for s in sorted(set(tab["site"].tolist()))},
        "dicom_written": int(tab["has_dicom"].sum()),
        "dicom_by_syntax": _counter([t["dicom"].get("syntax") for t in truths if t["dicom"]["written"]]),
        "artefacts": _counter([t["image"].get("artefact") for t in truths if t["image"].get("artefact")]),
        "should_exclude": int(tab["should_exclude"].sum()),
        "censoring": _counter([t["censor_reason"] for t in truths]),
        "mof_floor_patients": int(sum(t["mof_floor_years"] > 0 for t in truths)),
        "dxa_results": int(sum(t.get("dxa") is not None for t in truths)),
    })
    inc = {}
    for o in ("hip", "mof"):
        tm, ev = tab[f"time_{o}"], tab[f"event_{o}"].astype(np.int64)
        py = float(tm.sum())
        exp_events = float(sum(t[f"cumhaz_{o}_at_time"] for t in truths))
        inc[o] = {"events": int(ev.sum()), "person_years": py,
                  "rate_per_1000py": 1000.0 * ev.sum() / py if py > 0 else None,
                  "km_cuminc_10y": km_cuminc(tm, ev, 10.0) if py > 0 else None,
                  "expected_events_from_true_hazard": exp_events,
                  "mean_true_risk_10y": float(tab[f"true_risk_{o}"][:, 9].mean()),
                  "mean_qf_risk_10y_ehr": float(tab[f"qf_risk10_{o}"].mean() / 100.0),
                  "by_sex": {s: {"events": int(ev[sex == k].sum()),
                                 "mean_true_risk_10y": float(tab[f"true_risk_{o}"][sex == k, 9].mean())
                                 if (sex == k).any() else None,
                                 "mean_qf_risk_10y_ehr": float(tab[f"qf_risk10_{o}"][sex == k].mean() / 100.0)
                                 if (sex == k).any() else None}
                             for s, k in (("female", 0), ("male", 1))}}
    out["incidence"] = inc
    prev = {}
    for b in BOOLEANS:
        prev[b] = {"true": float(np.mean([t["flags"][b] for t in truths])), "recorded": float(tab[b].mean())}
    prev["bmi_recorded"] = float(tab["bmi_recorded"].mean())
    prev["ethnicity_recorded"] = float(tab["ethnicity_recorded"].mean())
    prev["smoking_recorded"] = float((tab["smoke_cat"] >= 0).mean())
    prev["alcohol_recorded"] = float((tab["alcohol_cat6"] >= 0).mean())
    out["prevalence"] = prev
    bmd = tab["bmd_t"]
    out["bone"] = {"bmd_t_mean": float(bmd.mean()), "bmd_t_sd": float(bmd.std()),
                   "osteoporosis_t_le_-2.5": float((bmd <= -2.5).mean()),
                   "corr_bmd_resid_micro": float(np.corrcoef(tab["bmd_resid_z"], tab["micro_z"])[0, 1]) if n > 2 else None}
    out["dxa"] = _dxa_summary(truths)
    out["demographics"] = {"age_mean": float(tab["age_exact"].mean()), "age_sd": float(tab["age_exact"].std()),
                           "bmi_true_mean": float(np.mean([t["bmi"] for t in truths])),
                           "ethrisk_true": _counter([str(t["ethrisk"]) for t in truths])}
    out["timings_s"] = timings
    return out


def _dxa_summary(truths: list[dict]) -> dict:
    """The charted DXA results: how many, by sex, years before the index date, and measured − true T-score."""
    ds = [(t["sex"], t["dxa"]) for t in truths if t.get("dxa") is not None]
    out: dict = {"patients": len(ds), "share": len(ds) / len(truths),
                 "by_sex": {s: int(sum(x == s for x, _ in ds)) for s in ("female", "male")}}
    if ds:
        yrs = np.array([d["years_before_index"] for _, d in ds])
        err = np.array([d["t_score"] - d["true_t_at_scan"] for _, d in ds])
        out.update({"years_before_index_median": float(np.median(yrs)), "years_before_index_max": float(yrs.max()),
                    "t_measured_minus_true_mean": float(err.mean()),
                    "t_measured_minus_true_sd": float(err.std()) if len(ds) > 1 else None,
                    "t_score_le_-2.5": int(sum(d["t_score"] <= -2.5 for _, d in ds))})
    return out


def _counter(xs) -> dict:
    d: dict = {}
    for x in xs:
        d[str(x)] = d.get(str(x), 0) + 1
    return dict(sorted(d.items()))


def _json_default(o):
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o))


def _clean(o):
    """inf/nan → None so the truth is strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


# ---------------------------------------------------------------------------------------------- driver

def generate(parts: list[CohortConfig], out: str, workers: int, config: dict) -> dict:
    t_start = time.perf_counter()
    os.makedirs(os.path.join(out, "fhir"), exist_ok=True)
    if all(p.write_arrays for p in parts):
        os.makedirs(os.path.join(out, "arrays"), exist_ok=True)
    if any(p.n_dicom for p in parts):
        os.makedirs(os.path.join(out, "dicom"), exist_ok=True)
    rows: list[dict] = []
    for cfg in parts:
        rows.extend(run_part(cfg, out, workers, label=f"site {cfg.site}"))
    t_sim = time.perf_counter() - t_start
    truths = [r["truth"] for r in rows]
    t0 = time.perf_counter()
    with open(os.path.join(out, "truth.json"), "w", encoding="utf-8") as f:
        json.dump({"about": "Simulation truth (latent variables, true linear predictors and risks, event and "
                            "censoring times, artefact flags, acquisition). NEVER read by the service.",
                   "generator": f"frcds cohort {GENERATOR_VERSION}", "config": config,
                   "true_effects": TRUE_EFFECTS.__dict__, "patients": _clean(truths)},
                  f, indent=1, default=_json_default, allow_nan=False)
        f.write("\n")
    write_truth_csv(os.path.join(out, "truth.csv"), truths)
    if all(p.write_arrays for p in parts):
        save_npz(os.path.join(out, "arrays", "tabular.npz"), tabular_arrays(truths))
    if all(p.images and p.write_arrays for p in parts):
        imgs = np.stack([r["image"][0] for r in rows]).astype(np.float32)
        msks = np.stack([r["image"][1] for r in rows]).astype(np.float32)
        save_npz(os.path.join(out, "arrays", "images.npz"),
                 {"images": imgs, "masks": msks, "patient_index": np.arange(len(rows), dtype=np.int32)})
    t_write = time.perf_counter() - t0
    part_sums: dict = {}
    for r in rows:
        for k, v in r["timing"].items():
            part_sums[k] = part_sums.get(k, 0.0) + v
    timings = {"simulate_wall": t_sim, "write_outputs_wall": t_write, "total_wall": time.perf_counter() - t_start,
               "workers": workers, "per_part_cpu_sum": part_sums,
               "per_patient_mean": {k: v / max(len(rows), 1) for k, v in part_sums.items()}}
    summary = summarise(truths, timings, config)
    with open(os.path.join(out, "cohort.json"), "w", encoding="utf-8") as f:
        json.dump(_clean(summary), f, indent=2, default=_json_default, allow_nan=False)
        f.write("\n")
    return summary


def parse_dicom(v: str, n: int) -> int:
    if v == "all":
        return n
    if v == "none":
        return 0
    try:
        k = int(v)
    except ValueError:
        raise CohortError(f"--dicom must be all, none or a number, got {v!r}") from None
    if k < 0:
        raise CohortError("--dicom must be >= 0")
    return min(k, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="npm run cohort --", description="Generate a synthetic fracture-risk cohort.")
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--site", choices=("A", "B"), default="A")
    ap.add_argument("--out", default=None, help="output directory (required unless --demo)")
    ap.add_argument("--dicom", default="none", help="all | none | N (first N patients get DICOM files)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--demo", action="store_true", help="the committed demo cohort (40 site-A + 10 site-B)")
    ap.add_argument("--no-images", action="store_true", help="tabular only: no radiographs, no images.npz")
    a = ap.parse_args(argv)
    try:
        if a.demo:
            from .demo import demo_parts
            out = a.out or str(REPO_ROOT / "server" / "sandbox" / "demo-cohort")
            parts = demo_parts(a.seed if "--seed" in (argv or sys.argv) else None)
            config = {"demo": True, "seed": parts[0].seed, "parts": [{"site": p.site, "n": p.n} for p in parts]}
            _clear_generated(out)
        else:
            if a.out is None:
                raise CohortError("--out DIR is required")
            if a.patients < 1:
                raise CohortError("--patients must be >= 1")
            out = a.out
            nd = parse_dicom(a.dicom, a.patients)
            if a.no_images and nd:
                raise CohortError("--no-images cannot write DICOM; use --dicom none")
            parts = [CohortConfig(seed=a.seed, site=a.site, n=a.patients, n_dicom=nd, images=not a.no_images)]
            config = {"demo": False, "seed": a.seed, "site": a.site, "patients": a.patients, "dicom": a.dicom,
                      "images": not a.no_images}
        if os.path.exists(out) and not os.path.isdir(out):
            raise CohortError(f"--out {out} exists and is not a directory")
        t0 = time.perf_counter()
        s = generate(parts, out, max(1, a.workers), config)
        el = time.perf_counter() - t0
        inc = s.get("incidence", {})
        print(f"[cohort] wrote {s['counts']['patients']} patients to {out} in {el:.1f} s "
              f"({a.workers} workers; simulate {s['timings_s']['simulate_wall']:.1f} s, "
              f"write {s['timings_s']['write_outputs_wall']:.1f} s)")
        pm = s["timings_s"]["per_patient_mean"]
        print("[cohort] per-patient mean (s): " + ", ".join(f"{k} {v:.3f}" for k, v in pm.items()))
        for o in ("hip", "mof"):
            if o in inc:
                i = inc[o]
                km = i["km_cuminc_10y"]
                print(f"[cohort] {o}: {i['events']} events; mean true 10-y risk {100 * i['mean_true_risk_10y']:.2f} %; "
                      f"QFracture (EHR) {100 * i['mean_qf_risk_10y_ehr']:.2f} %; KM 10-y "
                      f"{'n/a' if km is None else f'{100 * km:.2f} %'}; observed/expected "
                      f"{i['events']}/{i['expected_events_from_true_hazard']:.1f}")
        print(f"[cohort] DICOM: {s['counts'].get('dicom_written', 0)} studies {s['counts'].get('dicom_by_syntax', {})}")
        return 0
    except CohortError as e:
        print(f"cohort: error: {e}", file=sys.stderr)
        return 2


def _clear_generated(out: str) -> None:
    """The demo directory is regenerated wholesale: remove the previous generated files (only ours)."""
    import shutil
    for sub in ("fhir", "dicom", "arrays"):
        p = os.path.join(out, sub)
        if os.path.isdir(p):
            shutil.rmtree(p)
    for fn in ("truth.json", "truth.csv", "cohort.json"):
        p = os.path.join(out, fn)
        if os.path.exists(p):
            os.remove(p)


if __name__ == "__main__":
    raise SystemExit(main())
