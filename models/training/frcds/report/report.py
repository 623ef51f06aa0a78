"""report.json and report.md from a predictions directory: every figure the v2 model must show, v2 beside v1 on the
same patients, each with its target and whether it is met.

Inputs (``pred_dir``): ``site_a_test.csv.gz`` and ``site_b_test.csv.gz`` (v2, required);
``v1_site_a_test.csv.gz`` and ``v1_site_b_test.csv.gz`` (v1 on the same patients; without them the v1 column is
empty and the v2-vs-v1 targets are not assessed). Optionally training's evaluation.json, only for a non-hip OOD
AUROC when the predictions files hold no non-hip rows (marked "reported by training").

Conventions, stated once:
- Risk figures use the rows with ``image_kind == 'clean'`` (artefact and non-hip rows serve the OOD figures only),
  whatever their OOD flag: the model's own output is evaluated on every clean test patient.
- v1 is joined to v2 by patient_id; v2-vs-v1 figures use the patients present in both files.
- "met" compares the point estimate with the target (the 95 % CI is shown beside it); None = no target or no data.
- Bootstrap: percentile intervals from ``n_boot`` resamples of patients; each figure has its own seeded stream
  (seed + CRC32 of the figure id), so adding a figure never changes another's interval. Differences between models
  are paired (same resampled patients); the site-A-to-B drop resamples the two sites independently.
- Risks are fractions in report.json; the markdown shows percentages / percentage points where natural.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass

import numpy as np

from frcds.model.evaluate import clean
from frcds.report import stats
from frcds.report.predictions import PredictionsFormatError, Table, read_predictions

TAU = 10.0
THRESHOLD = {"hip": 0.03, "mof": 0.20}
V2_FILES = {"A": "site_a_test.csv.gz", "B": "site_b_test.csv.gz"}
V1_FILES = {"A": "v1_site_a_test.csv.gz", "B": "v1_site_b_test.csv.gz"}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _take(t: Table, rows: np.ndarray) -> Table:
    return {k: v[rows] for k, v in t.items()}


@dataclass
class Paired:
    """Clean rows of one site: v2 and (when available) v1 on the same patients, in the same order."""
    v2: Table
    v1: Table | None
    n_v2_only: int = 0
    n_v1_only: int = 0


def pair(v2: Table, v1: Table | None) -> Paired:
    clean = v2["image_kind"] == "clean"
    a = _take(v2, np.flatnonzero(clean))
    if v1 is None:
        return Paired(a, None)
    pos = {p: i for i, p in enumerate(v1["patient_id"])}
    both = np.array([p in pos for p in a["patient_id"]], bool)
    rows1 = np.array([pos[p] for p in a["patient_id"][both]], dtype=np.int64)
    ids2 = set(a["patient_id"].tolist())
    v1_clean_ids = set(v1["patient_id"][v1["image_kind"] == "clean"].tolist())
    return Paired(_take(a, np.flatnonzero(both)), _take(v1, rows1), int((~both).sum()), len(v1_clean_ids - ids2))


def _fig(fid: str, section: str, label: str, value, *, ci=None, v1=None, v1_ci=None, target: str | None = None,
         met: bool | None = None, n: int | None = None, note: str | None = None, unit: str = "") -> dict:
    return {"id": fid, "section": section, "label": label, "value": value, "ci95": ci, "v1": v1, "v1_ci95": v1_ci,
            "target": target, "met": met, "n": n, "note": note, "unit": unit}


def _within(v, lo, hi) -> bool | None:
    return None if v is None or not np.isfinite(v) else bool(lo <= v <= hi)


def _at_least(v, lo) -> bool | None:
    return None if v is None or not np.isfinite(v) else bool(v >= lo)


def _at_most(v, hi) -> bool | None:
    return None if v is None or not np.isfinite(v) else bool(v <= hi)


class Builder:
    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.seed = n_boot, seed

    def boot(self, fid: str, stat, *sizes: int) -> list[float] | None:
        if self.n_boot <= 0:
            return None
        return stats.percentile_ci(stats.bootstrap(stat, sizes, self.n_boot, (self.seed + zlib.crc32(fid.encode())) % 2**32))

    # -- site A risk figures ---------------------------------------------------------------------------------------
    def c_index(self, t: Table, score: np.ndarray, k: str = "hip") -> float:
        return stats.harrell_c(t[f"time_{k}"], t[f"event_{k}"], score, TAU)

    def calib_slope(self, fid: str, t: Table, k: str = "hip"):
        tm, ev, p = t[f"time_{k}"], t[f"event_{k}"], t[f"pred10_{k}"]
        res = stats.km_decile_calibration(tm, ev, p)
        ci = self.boot(fid, lambda i: stats.km_decile_calibration(tm[i], ev[i], p[i])["slope"], len(p))
        return res, ci

    def top_decile(self, fid: str, t: Table, k: str = "hip"):
        tm, ev, p = t[f"time_{k}"], t[f"event_{k}"], t[f"pred10_{k}"]
        res = stats.top_decile(tm, ev, p)
        ci = self.boot(fid, lambda i: stats.top_decile(tm[i], ev[i], p[i])["relative_difference"], len(p))
        return res, ci


def _training_nonhip_auroc(path: str | None) -> tuple[float | None, str | None]:
    """A non-hip OOD AUROC from training's evaluation.json: the first numeric leaf whose key path mentions both
    non-hip and AUROC (v1's layout: ood.non_hip.auroc)."""
    if not path or not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        ev = json.load(f)
    stack = [((), ev)]
    while stack:
        keys, node = stack.pop(0)
        if isinstance(node, dict):
            stack.extend(((*keys, k), v) for k, v in node.items())
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            p = ".".join(keys).lower().replace("-", "_")
            if ("non_hip" in p or "nonhip" in p) and p.endswith("auroc"):
                return float(node), ".".join(keys)
    return None, None


def build(pred_dir: str, n_boot: int = 1000, seed: int = 20261203, training_eval: str | None = None) -> dict:
    """The report as a dict (see module docstring). Raises PredictionsFormatError on a malformed or missing v2 file."""
    b = Builder(n_boot, seed)
    files, v2, v1 = {}, {}, {}
    for site in ("A", "B"):
        p = os.path.join(pred_dir, V2_FILES[site])
        if not os.path.exists(p):
            raise PredictionsFormatError(f"missing {p}")
        v2[site] = read_predictions(p)
        files[V2_FILES[site]] = {"sha256": _sha256(p), "rows": len(v2[site]["patient_id"])}
        p1 = os.path.join(pred_dir, V1_FILES[site])
        v1[site] = read_predictions(p1) if os.path.exists(p1) else None
        if v1[site] is not None:
            files[V1_FILES[site]] = {"sha256": _sha256(p1), "rows": len(v1[site]["patient_id"])}
    for site in ("A", "B"):
        bad = sorted(set(v2[site]["site"].tolist()) - {site})
        if bad:
            raise PredictionsFormatError(f"{V2_FILES[site]}: site column has {bad}, expected only '{site}'")
    warnings: list[str] = []
    pa, pb = pair(v2["A"], v1["A"]), pair(v2["B"], v1["B"])
    for site, p in (("A", pa), ("B", pb)):
        if p.v1 is None:
            warnings.append(f"site {site}: no v1 predictions file; v1 figures and v2-vs-v1 targets not assessed")
            continue
        if p.n_v2_only or p.n_v1_only:
            warnings.append(f"site {site}: {p.n_v2_only} clean v2 patients have no v1 row and {p.n_v1_only} clean v1 "
                            f"patients no v2 row; v2-vs-v1 figures use the {len(p.v2['patient_id'])} in both")
        for col in ("time_hip", "event_hip", "true_risk10_hip", "qf10_hip"):
            d = np.abs(p.v2[col].astype(np.float64) - p.v1[col].astype(np.float64))
            if (d > 1e-6).any():
                warnings.append(f"site {site}: v1 and v2 files disagree on '{col}' for {int((d > 1e-6).sum())} patients")
    a_all = _take(v2["A"], np.flatnonzero(v2["A"]["image_kind"] == "clean"))
    b_all = _take(v2["B"], np.flatnonzero(v2["B"]["image_kind"] == "clean"))
    figs: list[dict] = []
    details: dict = {}
    A, A1 = pa.v2, pa.v1
    has_v1 = A1 is not None

    # ---- Site A: discrimination ----------------------------------------------------------------------------------
    th, eh = A["time_hip"], A["event_hip"]
    c2, cq = b.c_index(A, A["pred10_hip"]), b.c_index(A, A["qf10_hip"])
    c1 = b.c_index(A, A1["pred10_hip"]) if has_v1 else None
    s2, sq = A["pred10_hip"], A["qf10_hip"]
    ci_c2 = b.boot("a_hip_c_v2", lambda i: stats.harrell_c(th[i], eh[i], s2[i]), len(th))
    ci_c1 = b.boot("a_hip_c_v1", lambda i: stats.harrell_c(th[i], eh[i], A1["pred10_hip"][i]), len(th)) if has_v1 else None
    figs.append(_fig("a_hip_c", "Site A", "Hip C (Harrell, 10 y)", c2, ci=ci_c2, v1=c1, v1_ci=ci_c1,
                     n=len(th), note=f"QFracture-2012 alone: {cq:.3f}"))
    diff = c2 - cq
    ci_d = b.boot("a_hip_c_gain", lambda i: stats.harrell_c(th[i], eh[i], s2[i]) - stats.harrell_c(th[i], eh[i], sq[i]),
                  len(th))
    ci_d1 = b.boot("a_hip_c_gain_v1", lambda i: stats.harrell_c(th[i], eh[i], A1["pred10_hip"][i])
                   - stats.harrell_c(th[i], eh[i], sq[i]), len(th)) if has_v1 else None
    figs.append(_fig("a_hip_c_gain", "Site A", "Hip C gain over QFracture-2012", diff, ci=ci_d,
                     v1=(c1 - cq) if has_v1 else None, v1_ci=ci_d1, target=">= +0.05", met=_at_least(diff, 0.05),
                     n=len(th), note="paired bootstrap of the difference"))
    details["site_a_mof_c"] = {"v2": b.c_index(A, A["pred10_mof"], "mof"), "qfracture": b.c_index(A, A["qf10_mof"], "mof"),
                               "v1": b.c_index(A, A1["pred10_mof"], "mof") if has_v1 else None}

    # ---- Site A: calibration -------------------------------------------------------------------------------------
    cal2, ci_cal2 = b.calib_slope("a_cal_slope_v2", A)
    cal1, ci_cal1 = b.calib_slope("a_cal_slope_v1", A1) if has_v1 else (None, None)
    figs.append(_fig("a_cal_slope", "Site A", "KM-decile calibration slope (hip, 10 y)", cal2["slope"], ci=ci_cal2,
                     v1=cal1["slope"] if cal1 else None, v1_ci=ci_cal1, target="0.85-1.15",
                     met=_within(cal2["slope"], 0.85, 1.15), n=len(th),
                     note="OLS slope of KM observed on mean predicted over deciles of predicted risk"))
    details["site_a_calibration_deciles_hip"] = {"v2": cal2["table"], "v1": cal1["table"] if cal1 else None,
                                                 "v2_intercept": cal2["intercept"]}
    top2, ci_top2 = b.top_decile("a_top_decile_v2", A)
    top1, ci_top1 = b.top_decile("a_top_decile_v1", A1) if has_v1 else (None, None)
    figs.append(_fig("a_top_decile", "Site A", "Top decile: (mean predicted - KM observed) / observed (hip)",
                     top2["relative_difference"], ci=ci_top2, v1=top1["relative_difference"] if top1 else None,
                     v1_ci=ci_top1, target="within +/-20 %", met=_within(top2["relative_difference"], -0.2, 0.2),
                     n=top2["n"], unit="relative",
                     note=f"v2 predicted {top2['predicted']:.4f} vs observed {top2['observed_km']:.4f}"
                          + (f"; v1 predicted {top1['predicted']:.4f} vs observed {top1['observed_km']:.4f}" if top1 else "")))

    # ---- Site A: intervals ---------------------------------------------------------------------------------------
    x = A["true_risk10_hip"]
    cov2 = stats.coverage(A["lo10_hip"], A["hi10_hip"], x)
    cov1 = stats.coverage(A1["lo10_hip"], A1["hi10_hip"], x) if has_v1 else None
    figs.append(_fig("a_coverage", "Site A", "Coverage of the true 10-y hip risk by the 95 % interval", cov2,
                     ci=b.boot("a_coverage_v2", lambda i: stats.coverage(A["lo10_hip"][i], A["hi10_hip"][i], x[i]), len(x)),
                     v1=cov1, target="0.90-0.98", met=_within(cov2, 0.90, 0.98), n=len(x)))
    details["site_a_coverage_mof"] = {"v2": stats.coverage(A["lo10_mof"], A["hi10_mof"], A["true_risk10_mof"]),
                                      "v1": stats.coverage(A1["lo10_mof"], A1["hi10_mof"], A["true_risk10_mof"]) if has_v1 else None}
    is2 = stats.interval_score(A["lo10_hip"], A["hi10_hip"], x)
    if has_v1:
        is1 = stats.interval_score(A1["lo10_hip"], A1["hi10_hip"], x)
        red = 1.0 - is2.mean() / is1.mean()
        ci_red = b.boot("a_interval_score", lambda i: 1.0 - is2[i].mean() / is1[i].mean(), len(x))
        figs.append(_fig("a_interval_score", "Site A", "Interval score reduction v2 vs v1 (hip, alpha 0.05, true risk)",
                         red, ci=ci_red, target=">= 30 % lower than v1", met=_at_least(red, 0.30), n=len(x),
                         unit="relative",
                         note=f"mean interval score v2 {is2.mean():.4f}, v1 {is1.mean():.4f} (risk fraction)"))
    else:
        figs.append(_fig("a_interval_score", "Site A", "Interval score reduction v2 vs v1 (hip, alpha 0.05, true risk)",
                         None, target=">= 30 % lower than v1", n=len(x), note=f"v1 file missing; v2 mean {is2.mean():.4f}"))
    details["site_a_interval_score_hip"] = {"v2": float(is2.mean()), "v1": float(is1.mean()) if has_v1 else None}

    def top_width(t: Table) -> float:
        top = t["pred10_hip"] >= np.quantile(t["pred10_hip"], 0.9)
        return float(np.median((t["hi10_hip"] - t["lo10_hip"])[top]))
    w2 = top_width(A)
    w1 = top_width(A1) if has_v1 else None
    figs.append(_fig("a_top_width", "Site A", "Median hip 95 % interval width, top decile of predicted risk", w2,
                     v1=w1, target="v2 beside v1 (narrower is better)", met=None if w1 is None else bool(w2 < w1),
                     n=int((A["pred10_hip"] >= np.quantile(A["pred10_hip"], 0.9)).sum()), unit="risk",
                     note="each model's own top decile"))

    # ---- T-score vs measured DXA ---------------------------------------------------------------------------------
    for site, t in (("A", a_all), ("B", b_all)):
        m = np.isfinite(t["dxa_tscore"]) & np.isfinite(t["tscore_mean"])
        if site == "B":
            if m.any():
                details["site_b_tscore_vs_dxa"] = {"n": int(m.sum()), "r": stats.pearson(t["tscore_mean"][m], t["dxa_tscore"][m]),
                                                   "coverage": stats.coverage(t["tscore_lo"][m], t["tscore_hi"][m], t["dxa_tscore"][m]),
                                                   "bias": float(np.mean(t["tscore_mean"][m] - t["dxa_tscore"][m]))}
            continue
        if not m.any():
            for fid, label, tgt in (("t_r", "T-score estimate vs measured DXA: Pearson r", ">= 0.75"),
                                    ("t_coverage", "T-score 95 % interval coverage of measured DXA", "0.93-0.97"),
                                    ("t_bias", "T-score bias (estimate - measured DXA)", None)):
                figs.append(_fig(fid, "T-score", label, None, target=tgt, n=0, note="no rows with both dxa_tscore and tscore_mean"))
            continue
        te, td, tl, tu = t["tscore_mean"][m], t["dxa_tscore"][m], t["tscore_lo"][m], t["tscore_hi"][m]
        r = stats.pearson(te, td)
        figs.append(_fig("t_r", "T-score", "T-score estimate vs measured DXA: Pearson r", r,
                         ci=b.boot("t_r", lambda i: stats.pearson(te[i], td[i]), len(te)), target=">= 0.75",
                         met=_at_least(r, 0.75), n=len(te), note="site A clean test patients with a DXA result"))
        cv = stats.coverage(tl, tu, td)
        figs.append(_fig("t_coverage", "T-score", "T-score 95 % interval coverage of measured DXA", cv,
                         ci=b.boot("t_coverage", lambda i: stats.coverage(tl[i], tu[i], td[i]), len(te)),
                         target="0.93-0.97", met=_within(cv, 0.93, 0.97), n=len(te)))
        bias = float(np.mean(te - td))
        figs.append(_fig("t_bias", "T-score", "T-score bias (estimate - measured DXA)", bias,
                         ci=b.boot("t_bias", lambda i: float(np.mean(te[i] - td[i])), len(te)), n=len(te), unit="T"))
        tt = np.isfinite(t["tscore_mean"])
        details["site_a_tscore_vs_true"] = {"n": int(tt.sum()), "r": stats.pearson(t["tscore_mean"][tt], t["bmd_t_true"][tt]),
                                            "coverage": stats.coverage(t["tscore_lo"][tt], t["tscore_hi"][tt], t["bmd_t_true"][tt]),
                                            "bias": float(np.mean(t["tscore_mean"][tt] - t["bmd_t_true"][tt]))}

    # ---- Low confidence and threshold probabilities ------------------------------------------------------------
    def lowconf_share(t: Table) -> tuple[float | None, int]:
        hi = t["tier"] == "high"
        return (float(t["low_confidence"][hi].mean()) if hi.any() else None), int(hi.sum())
    lc2, nh2 = lowconf_share(a_all)
    lc1, nh1 = lowconf_share(A1) if has_v1 else (None, 0)
    figs.append(_fig("lowconf_high", "Decision", "'Low confidence' share among high-tier patients (site A)", lc2,
                     v1=lc1, target="<= 10 %", met=_at_most(lc2, 0.10), n=nh2,
                     note=f"high tier: v2 {nh2} patients" + (f", v1 {nh1}" if has_v1 else "")))
    details["pthr_reliability"] = {}
    for k in ("hip", "mof"):
        y = (a_all[f"true_risk10_{k}"] >= THRESHOLD[k]).astype(float)
        p = a_all[f"pthr_{k}"]
        ok = np.isfinite(p)
        br2 = stats.brier(p[ok], y[ok]) if ok.any() else None
        br1 = rel1 = None
        if has_v1 and np.isfinite(A1[f"pthr_{k}"]).all():
            y1 = (A[f"true_risk10_{k}"] >= THRESHOLD[k]).astype(float)
            br1, rel1 = stats.brier(A1[f"pthr_{k}"], y1), stats.reliability(A1[f"pthr_{k}"], y1)
        figs.append(_fig(f"pthr_brier_{k}", "Decision",
                         f"Brier score of P({k} 10-y risk >= {THRESHOLD[k]:.0%}) vs the true risk", br2,
                         ci=b.boot(f"pthr_brier_{k}", lambda i: stats.brier(p[ok][i], y[ok][i]), int(ok.sum())) if ok.any() else None,
                         v1=br1, n=int(ok.sum()),
                         note=f"prevalence of true risk >= threshold {y.mean():.3f}; reliability table in details"))
        details["pthr_reliability"][k] = {"v2": stats.reliability(p[ok], y[ok]) if ok.any() else None, "v1": rel1}

    # ---- Site B ----------------------------------------------------------------------------------------------------
    B2 = v2["B"]
    share = float(B2["ood_flag"][B2["image_kind"] == "clean"].mean())
    B1 = v1["B"]
    share1 = float(B1["ood_flag"][B1["image_kind"] == "clean"].mean()) if B1 is not None else None
    figs.append(_fig("b_ood_clean", "Site B", "Clean site-B images flagged out of distribution", share, v1=share1,
                     target="<= 10 %", met=_at_most(share, 0.10), n=int((B2["image_kind"] == "clean").sum())))

    def ood_auroc(t: Table | None, kind: str) -> tuple[float | None, int]:
        if t is None:
            return None, 0
        pos = t["image_kind"] == kind
        neg = t["image_kind"] == "clean"
        return (stats.auroc(t["ood_distance"][neg], t["ood_distance"][pos]) if pos.any() and neg.any() else None), int(pos.sum())
    au2, na2 = ood_auroc(B2, "artefact")
    au1, _ = ood_auroc(B1, "artefact")
    figs.append(_fig("b_artefact_auroc", "Site B", "OOD AUROC: artefact vs clean images (site B)", au2, v1=au1,
                     target=">= 0.95", met=_at_least(au2, 0.95), n=na2,
                     note=None if na2 else "no artefact rows in the site-B file"))
    details["site_a_artefact_auroc"] = {"v2": ood_auroc(v2["A"], "artefact")[0], "v1": ood_auroc(v1["A"], "artefact")[0],
                                        "n_artefact": ood_auroc(v2["A"], "artefact")[1]}
    nh = [(s, *ood_auroc(v2[s], "nonhip")) for s in ("A", "B")]
    nh_rows = [(s, a, n) for s, a, n in nh if n > 0]
    if nh_rows:
        allv = {k: np.concatenate([v2[s][k] for s in ("A", "B")]) for k in ("image_kind", "ood_distance")}
        au_nh, n_nh = ood_auroc(allv, "nonhip")
        figs.append(_fig("nonhip_auroc", "Site B", "OOD AUROC: non-hip vs clean images", au_nh, target=">= 0.99",
                         met=_at_least(au_nh, 0.99), n=n_nh, note="non-hip rows of the predictions files, clean rows of both sites"))
    else:
        val, key = _training_nonhip_auroc(training_eval)
        figs.append(_fig("nonhip_auroc", "Site B", "OOD AUROC: non-hip vs clean images", val, target=">= 0.99",
                         met=_at_least(val, 0.99),
                         note=("no non-hip rows in the predictions files; value reported by training "
                               f"(evaluation.json '{key}'), not recomputed") if val is not None else
                              "no non-hip rows in the predictions files and no training figure found: not assessed"))
    B, Bv1 = pb.v2, pb.v1
    cb2 = b.c_index(b_all, b_all["pred10_hip"])
    ta, ea, sa = A["time_hip"], A["event_hip"], A["pred10_hip"]
    tb, eb, sb = b_all["time_hip"], b_all["event_hip"], b_all["pred10_hip"]
    drop = c2 - cb2
    ci_drop = b.boot("b_c_drop", lambda i, j: stats.harrell_c(ta[i], ea[i], sa[i]) - stats.harrell_c(tb[j], eb[j], sb[j]),
                     len(ta), len(tb))
    drop1 = ci_drop1 = None
    if has_v1 and Bv1 is not None:
        cb1 = b.c_index(B, Bv1["pred10_hip"])
        drop1 = c1 - cb1
        s1a, s1b = A1["pred10_hip"], Bv1["pred10_hip"]
        tb1, eb1 = B["time_hip"], B["event_hip"]
        ci_drop1 = b.boot("b_c_drop_v1", lambda i, j: stats.harrell_c(ta[i], ea[i], s1a[i]) - stats.harrell_c(tb1[j], eb1[j], s1b[j]),
                          len(ta), len(tb1))
    figs.append(_fig("b_c_drop", "Site B", "Hip C drop site A -> site B", drop, ci=ci_drop, v1=drop1, v1_ci=ci_drop1,
                     target="<= 0.03", met=_at_most(drop, 0.03), n=len(tb),
                     note=f"site B hip C v2 {cb2:.3f}, QFracture {b.c_index(b_all, b_all['qf10_hip']):.3f}"))
    for site, t in (("A", a_all), ("B", b_all)):
        figs.append(_fig(f"events_{site.lower()}", "Events", f"Hip fractures by 10 y, site {site} test (clean)",
                         stats.events_by(t["time_hip"], t["event_hip"]), n=len(t["patient_id"]), unit="count",
                         note=f"MOF {stats.events_by(t['time_mof'], t['event_mof'])}"))
    return {
        "kind": "frcds-v2-report",
        "inputs": {"files": files, "rows_clean": {"A": len(a_all["patient_id"]), "B": len(b_all["patient_id"])},
                   "paired_with_v1": {"A": len(A["patient_id"]) if has_v1 else 0,
                                      "B": len(B["patient_id"]) if Bv1 is not None else 0}},
        "bootstrap": {"resamples": n_boot, "seed": seed, "interval": "percentile 2.5-97.5"},
        "figures": clean(figs),
        "details": clean(details),
        "warnings": warnings,
        "summary": {"targets": sum(f["met"] is not None for f in figs), "met": sum(f["met"] is True for f in figs),
                    "missed": [f["id"] for f in figs if f["met"] is False]},
    }


def _num(v, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "count":
        return str(int(v))
    if unit in ("relative",):
        return f"{v * 100:+.1f} %"
    if unit == "risk":
        return f"{v * 100:.2f} pp"
    return f"{v:.3f}"


def markdown(r: dict) -> str:
    """The report's table (and the decile/reliability details) as markdown."""
    ci = lambda c, u: "" if not c else f"{_num(c[0], u)} to {_num(c[1], u)}"
    met = {True: "met", False: "**MISSED**", None: "–"}
    lines = ["# hip-xray-v2 — figures recomputed from the saved predictions", "",
             "Generated by `models/training/report_v2.py` from the predictions files "
             + ", ".join(f"`{k}` ({v['rows']} rows)" for k, v in r["inputs"]["files"].items())
             + f". Bootstrap: {r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']}, percentile 95 % CI. "
             "Risk figures use the clean test images; v1 was run on the same patients. 'met' compares the point "
             "estimate with the target.", "",
             "| Section | Figure | v2 | v2 95 % CI | v1 | v1 95 % CI | Target | v2 | n | Note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in r["figures"]:
        u = f["unit"]
        lines.append(f"| {f['section']} | {f['label']} | {_num(f['value'], u)} | {ci(f['ci95'], u)} | {_num(f['v1'], u)} | "
                     f"{ci(f['v1_ci95'], u)} | {f['target'] or '–'} | {met[f['met']]} | {f['n'] if f['n'] is not None else '–'} | "
                     f"{f['note'] or ''} |")
    s = r["summary"]
    lines += ["", f"Targets assessed: {s['targets']}; met: {s['met']}; missed: {', '.join(s['missed']) or 'none'}.", ""]
    if r["warnings"]:
        lines += ["**Input warnings**", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    d = r["details"]
    cal = d.get("site_a_calibration_deciles_hip", {})
    if cal.get("v2"):
        lines += ["## Site A hip calibration by decile of predicted 10-y risk (KM observed)", "",
                  "| Decile | n | v2 predicted | v2 observed | v1 predicted | v1 observed |", "|---|---|---|---|---|---|"]
        for i, g in enumerate(cal["v2"]):
            g1 = cal["v1"][i] if cal.get("v1") else None
            lines.append(f"| {i + 1} | {g['n']} | {g['predicted'] * 100:.2f} % | {g['observed_km'] * 100:.2f} % | "
                         + (f"{g1['predicted'] * 100:.2f} % | {g1['observed_km'] * 100:.2f} % |" if g1 else "– | – |"))
        lines.append("")
    for k, rel in d.get("pthr_reliability", {}).items():
        lines += [f"## Reliability of P({k} 10-y risk >= threshold), site A (observed = share with TRUE risk >= threshold)", "",
                  "| Bin | v2 n | v2 mean p | v2 observed | v1 n | v1 mean p | v1 observed |", "|---|---|---|---|---|---|---|"]
        v1b = {tuple(x["bin"]): x for x in (rel.get("v1") or [])}
        for x in rel.get("v2") or []:
            y = v1b.get(tuple(x["bin"]))
            lines.append(f"| {x['bin'][0]:.1f}–{x['bin'][1]:.1f} | {x['n']} | {x['mean_p']:.3f} | {x['observed']:.3f} | "
                         + (f"{y['n']} | {y['mean_p']:.3f} | {y['observed']:.3f} |" if y else "– | – | – |"))
        lines.append("")
    other = {k: v for k, v in d.items() if k not in ("site_a_calibration_deciles_hip", "pthr_reliability")}
    if other:
        lines += ["## Other figures", "", "```json", json.dumps(other, indent=1), "```", ""]
    return "\n".join(lines)
