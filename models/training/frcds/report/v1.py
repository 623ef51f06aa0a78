"""Predictions of the v1 model (models/hip-xray-v1) on the v2 test patients, in the contract's predictions format,
so v2 and v1 are compared on the same people.

Usage (from the repository root):
    sh models/training/run -m frcds.report.v1 --cohort-a DIR_A --cohort-b DIR_B --split SPLIT.json \
        --out models/hip-xray-v2/predictions [--model-dir models/hip-xray-v1]

``SPLIT.json`` names the test patients by id, as training wrote it:
``{"site_a": {"test": [ids]}, "site_b": {"test": [ids]}}``.

The ONNX model runs in onnxruntime-node (``run_onnx.mjs``, the runtime the service uses) on the cohort's
preprocessed images and the clinical input its manifest names (log(-log(1 - QFracture-2012 10-year risk from the
chart))). Every number is then derived as the service derives it (server/risk/assess.ts, survival.ts, decision.ts):

- eta_mean and sd (ddof 1) over members per outcome; interval eta_mean -/+ f_k * z * sd with the manifest's
  ``uncertainty.interval_factor``; risk = 1 - exp(-H0_k(10) exp(eta)), H0 from ``risk_model.baseline_cumulative_hazard``
  (value at the last grid point <= 10 y).
- MOF includes hip: MOF cumulative hazard = max(MOF head, hip head) at the point estimate and at each bound.
- pthr_k = P(10-year risk >= threshold) from the normal predictive distribution of eta (sd f_k * sd), MOF from the
  larger of both heads (decision.ts); hip 3 %, MOF 20 %.
- ood_flag = not (distance <= manifest threshold). A flagged image's risk is withheld by the service, so its tier is
  the clinical-only one (QFracture-2012, MOF raised to hip, no probability); pred/lo/hi still hold the model's output
  so discrimination can be measured on every patient.
- low_confidence (in-distribution only): an outcome's member sd above 0.9 (RISK_MAX_LOG_HAZARD_SD default) or the
  distance above 0.95 x threshold (RISK_NEAR_OOD_FRACTION default).
v1 has no T-score output: the tscore_* columns are empty; dxa_tscore is left empty too (v1 does not read DXA).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

import numpy as np

from frcds.model.data import Cohort, load_cohort
from frcds.report import decision
from frcds.report.predictions import TIERS, write_predictions

log = logging.getLogger("frcds.report")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
RUN_ONNX = os.path.join(HERE, "run_onnx.mjs")
THRESHOLDS = {"hip": decision.TIERS["hipHigh"] / 100.0, "mof": decision.TIERS["mofHigh"] / 100.0}
MAX_LOG_HAZARD_SD = 0.9
NEAR_OOD_FRACTION = 0.95


def load_split(path: str) -> dict[str, list[str] | None]:
    """Test patient ids per site ('A', 'B') from the split file training wrote; a site without an entry is tested
    on all its patients (None), as site B, the external set, is."""
    with open(path, encoding="utf-8") as f:
        s = json.load(f)
    out: dict[str, list[str] | None] = {}
    for site, key in (("A", "site_a"), ("B", "site_b")):
        if key not in s and site == "B":
            out[site] = None
            continue
        ids = s[key].get("test") if isinstance(s.get(key), dict) else None
        if not isinstance(ids, list) or not ids:
            raise ValueError(f"{path}: '{key}.test' must be a non-empty list of patient ids")
        out[site] = [str(x) for x in ids]
    return out


def run_onnx(model_path: str, inputs: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
    """Runs ``model_path`` in onnxruntime-node on float32 inputs (batch axis first); outputs as float32 arrays."""
    n = {len(v) for v in inputs.values()}
    if len(n) != 1:
        raise ValueError("inputs differ in batch size")
    with tempfile.TemporaryDirectory(prefix="frcds-onnx-") as d:
        spec = {"n": n.pop(), "inputs": {}}
        for name, arr in inputs.items():
            a = np.ascontiguousarray(arr, dtype=np.float32)
            a.tofile(os.path.join(d, f"{name}.f32"))
            spec["inputs"][name] = {"file": f"{name}.f32", "shape": list(a.shape)}
        with open(os.path.join(d, "inputs.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        node = os.environ.get("NODE", "node")
        r = subprocess.run([node, RUN_ONNX, model_path, d, str(batch)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"onnxruntime-node failed: {r.stderr[-2000:]}")
        with open(os.path.join(d, "outputs.json"), encoding="utf-8") as f:
            meta = json.load(f)
        return {name: np.fromfile(os.path.join(d, m["file"]), dtype=np.float32).reshape(m["shape"])
                for name, m in meta.items()}


def baseline_at(grid: list[float], h0: list[float], t: float) -> float:
    """H0(t): value at the last grid point <= t (survival.ts baselineAt, with its 1e-9 tolerance)."""
    g = np.asarray(grid, np.float64)
    if t < g[0]:
        return 0.0
    return float(np.asarray(h0, np.float64)[np.flatnonzero(g <= t + 1e-9)[-1]])


def v1_outputs(manifest: dict, log_hazard: np.ndarray, ood_distance: np.ndarray, qf10_hip: np.ndarray,
               qf10_mof: np.ndarray) -> dict[str, np.ndarray]:
    """Model-derived columns from v1's raw outputs (``log_hazard`` [N, M, 2], ``ood_distance`` [N]) as the service
    derives them (module docstring). ``qf10_*``: the chart's QFracture-2012 10-year risks (fractions), used for the
    clinical-only tier of an out-of-distribution image."""
    u, rm = manifest["uncertainty"], manifest["risk_model"]
    bch = rm["baseline_cumulative_hazard"]
    idx = {o["id"]: o["index"] for o in manifest["outcomes"]}
    lh = np.asarray(log_hazard, np.float64)
    heads = {}
    for k in ("hip", "mof"):
        e = lh[:, :, idx[k]]
        mean = e.mean(axis=1)
        sd = e.std(axis=1, ddof=int(u["sd_ddof"]))
        f = float(u["interval_factor"][k])
        heads[k] = {"h0": baseline_at(bch["grid_years"], bch[k], 10.0), "eta": mean, "sd": sd, "f": f,
                    "half": f * float(u["z"]) * sd}

    def hazard(k: str, sign: int) -> np.ndarray:
        h = heads[k]
        return h["h0"] * np.exp(h["eta"] + sign * h["half"])

    out: dict[str, np.ndarray] = {}
    for k in ("hip", "mof"):
        ks = ("mof", "hip") if k == "mof" else ("hip",)
        for col, sign in (("pred10", 0), ("lo10", -1), ("hi10", 1)):
            out[f"{col}_{k}"] = 1.0 - np.exp(-np.max([hazard(j, sign) for j in ks], axis=0))
        comps = [(heads[j]["h0"], heads[j]["eta"], heads[j]["f"] * heads[j]["sd"]) for j in ks]
        out[f"pthr_{k}"] = decision.probability_above(comps, THRESHOLDS[k])
    dist = np.asarray(ood_distance, np.float64)
    thr = float(manifest["ood"]["threshold"])
    flag = ~(dist <= thr)
    out["ood_distance"], out["ood_flag"] = dist, flag
    out["low_confidence"] = ~flag & ((heads["hip"]["sd"] > MAX_LOG_HAZARD_SD) | (heads["mof"]["sd"] > MAX_LOG_HAZARD_SD)
                                     | (dist > NEAR_OOD_FRACTION * thr))
    qh, qm = np.asarray(qf10_hip, np.float64), np.maximum(np.asarray(qf10_mof, np.float64), qf10_hip)
    nan = np.full(len(dist), np.nan)
    out["tier"] = np.where(
        flag, decision.tier(qh, nan, qm, nan),
        decision.tier(out["pred10_hip"], out["pthr_hip"], out["pred10_mof"], out["pthr_mof"]))
    return out


def truth_columns(c: Cohort, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Identity, outcomes and (for evaluation only) the truth of the selected cohort rows."""
    t = c.tab
    n = len(rows)
    art = t["artefact"][rows].astype(str)
    return {
        "patient_id": t["patient_id"][rows], "site": t["site"][rows], "split": np.full(n, "test"),
        "time_hip": t["time_hip"][rows].astype(np.float64), "event_hip": t["event_hip"][rows].astype(bool),
        "time_mof": t["time_mof"][rows].astype(np.float64), "event_mof": t["event_mof"][rows].astype(bool),
        "true_risk10_hip": t["true_risk_hip"][rows, 9].astype(np.float64),
        "true_risk10_mof": t["true_risk_mof"][rows, 9].astype(np.float64),
        "bmd_t_true": t["bmd_t"][rows].astype(np.float64),
        "qf10_hip": t["qf_risk10_hip"][rows] / 100.0, "qf10_mof": t["qf_risk10_mof"][rows] / 100.0,
        "image_kind": np.where(art == "", "clean", "artefact"),
    }


def predict_site(c: Cohort, ids: list[str] | None, model_dir: str, batch: int = 64) -> dict[str, np.ndarray]:
    """Predictions file columns for the patients ``ids`` (None: every patient), in that order."""
    pos = {p: i for i, p in enumerate(c.tab["patient_id"].astype(str))}
    ids = list(pos) if ids is None else ids
    missing = [p for p in ids if p not in pos]
    if missing:
        raise ValueError(f"{len(missing)} split patients are not in cohort {c.source} (e.g. {missing[:3]})")
    rows = np.array([pos[p] for p in ids], dtype=np.int64)
    with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    clin = c.clinical()[rows]
    images = c.images[rows][:, None]
    log.info("v1 on %d patients of %s", len(rows), c.source)
    raw = run_onnx(os.path.join(model_dir, manifest["onnx"]["file"]), {"image": images, "clinical": clin}, batch)
    cols = truth_columns(c, rows)
    cols.update(v1_outputs(manifest, raw["log_hazard"], raw["ood_distance"], cols["qf10_hip"], cols["qf10_mof"]))
    nan = np.full(len(rows), np.nan)
    for k in ("tscore_mean", "tscore_sd", "tscore_lo", "tscore_hi", "dxa_tscore"):
        cols[k] = nan
    return cols


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="v1 predictions on the v2 test patients (contract format)")
    ap.add_argument("--cohort-a", required=True, help="site-A cohort directory (arrays/images.npz, tabular.npz)")
    ap.add_argument("--cohort-b", required=True, help="site-B cohort directory")
    ap.add_argument("--split", required=True, help="split file written by training (test patient ids per site)")
    ap.add_argument("--out", required=True, help="predictions directory (writes v1_site_{a,b}_test.csv.gz)")
    ap.add_argument("--model-dir", default=os.path.join(REPO, "models", "hip-xray-v1"))
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    split = load_split(args.split)
    os.makedirs(args.out, exist_ok=True)
    for site, directory in (("A", args.cohort_a), ("B", args.cohort_b)):
        cols = predict_site(load_cohort(directory), split[site], args.model_dir, args.batch)
        path = os.path.join(args.out, f"v1_site_{site.lower()}_test.csv.gz")
        write_predictions(path, cols)
        log.info("wrote %s (%d rows, %d OOD-flagged, tiers %s)", path, len(cols["patient_id"]), int(cols["ood_flag"].sum()),
                 {t: int((cols["tier"] == t).sum()) for t in TIERS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
