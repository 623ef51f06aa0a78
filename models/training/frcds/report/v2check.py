"""Independent check that a v2 predictions file holds what the shipped artefact gives: model.onnx (run in
onnxruntime-node) + manifest.json, evaluated by the contract's formulas written here from the contract alone (not
from the training code), compared row by row with the file.

The predictive distribution (contract + amendments 2 and 3): per member m the T-score is Normal(mean_m, sd_m) with
mean_m = a + b * raw_mean_m, sd_m = s * raw_sd_m (manifest tscore_head.calibration), or Normal(DXA, dxa_precision_sd)
for every member when a measured DXA replaced the estimate; eta_mk(T) = base_log_hazard_mk + gamma_mk * T;
H_k = H0_k(10) exp(eta_mk); MOF includes hip: H_mof = max(H_mof, H_hip) at the same (member, T); risk = 1 - exp(-H).
- point estimate: the mixture mean of the risk, Gauss-Hermite (probabilists', manifest node count) per member,
  members equally weighted;
- interval: 2.5 / 97.5 percentiles of the EXACT mixture CDF. Each H_mk is monotone in T, so {risk <= r} is, per
  member, the T-interval where every hazard involved is <= -log(1 - r): its normal probability in closed form; the
  percentile by bisection on r;
- pthr_k = P(risk_k >= threshold) from the same CDF (hip 3 %, MOF 20 %);
- low confidence: for hip or MOF, sd(eta over the mixture) - (intercept + slope * mean eta) > max_log_hazard_sd
  (sd_reference optional; eta the outcome's own, before the MOF max); tier by the service's rule on the served values.
- unmeasured determinants (uncertainty.unmeasured_log_hazard_sd = sigma, absent = 0): a log-hazard offset
  u ~ N(-sigma^2/2, sigma) shared by both heads and all members, independent of T. The mean adds u's Gauss-Hermite
  nodes; the eta mean moves by -sigma^2/2 and its variance grows by sigma^2; the CDF stays exact: per member each
  head's log H is normal, so P(every head <= h) is a normal CDF (hip) or a bivariate normal CDF (MOF with hip),
  computed here with Owen's T function (the service uses a different method, Drezner-Wesolowsky/Genz).

Usage: sh models/training/run -m frcds.report.v2check --model-dir models/hip-xray-v2 --cohort-a DIR_A
       --cohort-b DIR_B --pred-dir models/hip-xray-v2/predictions [--sample N]
writes <pred-dir>/v2_recomputed_check.json, which report_v2.py includes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np
from scipy.stats import norm

from frcds.model.data import load_cohort
from frcds.report import decision
from frcds.report.predictions import read_predictions
from frcds.report.v1 import THRESHOLDS, baseline_at, run_onnx

log = logging.getLogger("frcds.report")
CHECK_FILE = "v2_recomputed_check.json"


class V2Model:
    """The manifest's numbers a v2 prediction needs."""

    def __init__(self, manifest: dict):
        rm, th, u = manifest["risk_model"], manifest["tscore_head"], manifest["uncertainty"]
        bch = rm["baseline_cumulative_hazard"]
        self.idx = {o["id"]: o["index"] for o in manifest["outcomes"]}
        self.h0 = {k: baseline_at(bch["grid_years"], bch[k], 10.0) for k in ("hip", "mof")}
        self.gamma = {k: np.asarray(rm["tscore_coefficient_per_member"][k], np.float64) for k in ("hip", "mof")}
        c = th["calibration"]
        self.a, self.b, self.s = float(c["intercept"]), float(c["slope"]), float(c["sd_scale"])
        self.dxa_sd = float(th["dxa_precision_sd"])
        self.nodes = int(u["gauss_hermite_nodes"])
        self.sigma_u = float(u.get("unmeasured_log_hazard_sd") or 0.0)
        lc = u["low_confidence"]
        self.max_sd = float(lc["max_log_hazard_sd"])
        self.sd_ref = lc.get("sd_reference") or {k: {"intercept": 0.0, "slope": 0.0} for k in ("hip", "mof")}
        self.ood_threshold = float(manifest["ood"]["threshold"])


def _hazard_terms(k: str) -> tuple[str, ...]:
    return ("mof", "hip") if k == "mof" else ("hip",)


def mixture_mean(m: V2Model, base: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> dict[str, np.ndarray]:
    """Gauss-Hermite mixture mean of the 10-year risk per outcome; base [N, M, 2], mu/sd [N, M]."""
    x, w = np.polynomial.hermite_e.hermegauss(m.nodes)
    w = w / w.sum()
    t = mu[..., None] + sd[..., None] * x                                      # [N, M, J]
    out = {}
    for k in ("hip", "mof"):
        h = np.max([m.h0[j] * np.exp(base[:, :, m.idx[j], None] + m.gamma[j][None, :, None] * t)
                    for j in _hazard_terms(k)], axis=0)
        if m.sigma_u > 0:                                                      # u shared by the heads: after the max
            eu = np.exp(-0.5 * m.sigma_u ** 2 + m.sigma_u * x)
            out[k] = ((1.0 - np.exp(-h[..., None] * eu)) * w[:, None] * w[None, :]).sum(axis=(2, 3)).mean(axis=1)
            continue
        out[k] = ((1.0 - np.exp(-h)) * w).sum(axis=2).mean(axis=1)
    return out


def _bvn_lower(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(X <= h, Y <= k), standard bivariate normal with correlation rho, by Owen's T function (Owen 1956):
    Phi2 = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - beta; rho = 1: Phi(min(h, k))."""
    from scipy.special import owens_t
    h = np.where(h == 0, 1e-12, h)
    k = np.where(k == 0, 1e-12, k)
    one = rho >= 1 - 1e-13
    q = np.sqrt(np.maximum(1 - rho * rho, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = 0.5 * (norm.cdf(h) + norm.cdf(k)) - owens_t(h, (k - rho * h) / (h * q)) - owens_t(k, (h - rho * k) / (k * q)) \
            - np.where(h * k < 0, 0.5, 0.0)
    return np.clip(np.where(one, norm.cdf(np.minimum(h, k)), p), 0.0, 1.0)


def _cdf_u(m: V2Model, k: str, h_r: np.ndarray, base: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """sigma_u > 0: P(every hazard of outcome k <= h_r) per member, averaged; each head's log H ~ N(c, s) exactly."""
    s2 = m.sigma_u ** 2
    z, s, g = [], [], []
    for j in _hazard_terms(k):
        gj = np.broadcast_to(m.gamma[j][None, :], mu.shape)
        sj = np.sqrt(gj ** 2 * sd ** 2 + s2)
        c = np.log(m.h0[j]) + base[:, :, m.idx[j]] + gj * mu - 0.5 * s2
        z.append((np.log(h_r)[:, None] - c) / sj)
        s.append(sj)
        g.append(gj)
    if len(z) == 1:
        return norm.cdf(z[0]).mean(axis=1)
    rho = np.clip((g[0] * g[1] * sd ** 2 + s2) / (s[0] * s[1]), -1.0, 1.0)
    return _bvn_lower(z[0], z[1], rho).mean(axis=1)


def cdf(m: V2Model, k: str, r: np.ndarray, base: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(risk_k <= r) under the exact mixture, r [N]."""
    h_r = -np.log1p(-np.clip(r, 1e-300, 1 - 1e-16))
    if m.sigma_u > 0:
        return np.clip(_cdf_u(m, k, h_r, base, mu, sd), 0.0, 1.0)
    lo = np.full(mu.shape, -np.inf)
    hi = np.full(mu.shape, np.inf)
    for j in _hazard_terms(k):
        g = m.gamma[j][None, :]
        eta_r = np.log(h_r / m.h0[j])[:, None]
        excess = eta_r - base[:, :, m.idx[j]]                                  # condition: gamma*T <= excess
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = excess / g
        lo = np.where(g < 0, np.maximum(lo, t_star), lo)
        hi = np.where(g > 0, np.minimum(hi, t_star), hi)
        never = (g == 0) & (excess < 0)
        lo = np.where(never, np.inf, lo)
    p = norm.cdf((hi - mu) / sd) - norm.cdf((lo - mu) / sd)
    return np.clip(np.where(lo < hi, p, 0.0), 0.0, 1.0).mean(axis=1)


def percentile(m: V2Model, k: str, q: float, base, mu, sd, iters: int = 60) -> np.ndarray:
    """Smallest r with CDF(r) >= q, by bisection on log(-log(1 - r))."""
    lo = np.full(len(mu), -30.0)
    hi = np.full(len(mu), 4.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = cdf(m, k, -np.expm1(-np.exp(mid)), base, mu, sd) >= q
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return -np.expm1(-np.exp(hi))


def tscore_quantile(mu: np.ndarray, sd: np.ndarray, q: float, iters: int = 80) -> np.ndarray:
    """q-quantile of the equal-weight normal mixture over members (mu, sd [N, M]), by bisection."""
    lo = (mu - 10 * sd).min(axis=1) - 1.0
    hi = (mu + 10 * sd).max(axis=1) + 1.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = norm.cdf((mid[:, None] - mu) / sd).mean(axis=1) >= q
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return (lo + hi) / 2


def eta_moments(m: V2Model, k: str, base, mu, sd) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of the outcome's own eta over the mixture (exact: eta is linear in T within a member)."""
    e_m = base[:, :, m.idx[k]] + m.gamma[k][None] * mu
    v_m = (m.gamma[k][None] * sd) ** 2
    mean = e_m.mean(axis=1)
    var = np.maximum((v_m + e_m ** 2).mean(axis=1) - mean ** 2, 0.0)
    if m.sigma_u > 0:                                                          # u: independent, mean -sigma^2/2
        return mean - 0.5 * m.sigma_u ** 2, np.sqrt(var + m.sigma_u ** 2)
    return mean, np.sqrt(var)


def predict(m: V2Model, base: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> dict[str, np.ndarray]:
    """pred/lo/hi/pthr per outcome, low confidence and tier from one T-score distribution per (patient, member)."""
    out = {}
    mean = mixture_mean(m, base, mu, sd)
    lc = np.zeros(len(mu), bool)
    for k in ("hip", "mof"):
        out[f"pred10_{k}"] = mean[k]
        out[f"lo10_{k}"] = percentile(m, k, 0.025, base, mu, sd)
        out[f"hi10_{k}"] = percentile(m, k, 0.975, base, mu, sd)
        out[f"pthr_{k}"] = 1.0 - cdf(m, k, np.full(len(mu), THRESHOLDS[k]), base, mu, sd)
        em, es = eta_moments(m, k, base, mu, sd)
        ref = m.sd_ref[k]
        lc |= es - (float(ref["intercept"]) + float(ref["slope"]) * em) > m.max_sd
    out["low_confidence"] = lc
    out["tier"] = decision.tier(out["pred10_hip"], out["pthr_hip"], out["pred10_mof"], out["pthr_mof"])
    return out


def recompute(model_dir: str, images: np.ndarray, clinical: np.ndarray, dxa: np.ndarray | None = None) -> dict:
    """Image-only and (where ``dxa`` is finite) DXA-served predictions of the artefact for these patients."""
    with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    m = V2Model(manifest)
    raw = run_onnx(os.path.join(model_dir, manifest["onnx"]["file"]), {"image": images[:, None], "clinical": clinical})
    base = raw["base_log_hazard"].astype(np.float64)
    ts = raw["tscore"].astype(np.float64)
    mu, sd = m.a + m.b * ts[..., 0], m.s * ts[..., 1]
    res = {"image": predict(m, base, mu, sd), "ood_distance": raw["ood_distance"].astype(np.float64)}
    res["ood_flag"] = ~(res["ood_distance"] <= m.ood_threshold)
    res["tscore_mean"] = mu.mean(axis=1)
    res["tscore_lo"], res["tscore_hi"] = tscore_quantile(mu, sd, 0.025), tscore_quantile(mu, sd, 0.975)
    if dxa is not None and np.isfinite(dxa).any():
        rows = np.flatnonzero(np.isfinite(dxa))
        mu_d = np.repeat(dxa[rows, None], base.shape[1], axis=1)
        res["dxa_rows"] = rows
        res["dxa"] = predict(m, base[rows], mu_d, np.full(mu_d.shape, m.dxa_sd))
    return res


def compare(file: dict, rec: dict) -> dict:
    """Largest differences between the file's columns and the recomputed values, and agreement of flags/tiers."""
    out = {}
    for col, v in rec.items():
        f = file[col]
        if v.dtype.kind in "fc":
            d = np.abs(f - v)
            out[col] = {"max_abs": float(np.nanmax(d)), "p99_abs": float(np.nanquantile(d, 0.99)),
                        "max_rel": float(np.nanmax(d / np.maximum(np.abs(v), 1e-12)))}
        else:
            out[col] = {"agree": float(np.mean(f == v)), "n_differ": int((f != v).sum())}
    return out


def check(model_dir: str, cohort_dirs: dict[str, str], pred_dir: str, sample: int | None, seed: int = 0) -> dict:
    result = {"kind": "frcds-v2-recomputed-check", "sites": {}}
    for site, name in (("A", "site_a_test.csv.gz"), ("B", "site_b_test.csv.gz")):
        t = read_predictions(os.path.join(pred_dir, name))
        rows = np.arange(len(t["patient_id"]))
        if sample and sample < len(rows):
            rows = np.sort(np.random.default_rng(seed).choice(rows, sample, replace=False))
        c = load_cohort(cohort_dirs[site])
        pos = {p: i for i, p in enumerate(c.tab["patient_id"].astype(str))}
        ci = np.array([pos[p] for p in t["patient_id"][rows]])
        used = t["dxa_used"][rows] if "dxa_used" in t else None
        dxa = np.where(used, t["dxa_tscore"][rows], np.nan) if used is not None else None
        rec = recompute(model_dir, c.images[ci], c.clinical()[ci], dxa)
        sel = {k: v[rows] for k, v in t.items()}
        res = {"rows_checked": int(len(rows)),
               "ood": compare(sel, {"ood_distance": rec["ood_distance"], "ood_flag": rec["ood_flag"]}),
               "tscore": compare(sel, {k: rec[k] for k in ("tscore_mean", "tscore_lo", "tscore_hi")})}
        cols = ("pred10_hip", "lo10_hip", "hi10_hip", "pthr_hip", "pred10_mof", "lo10_mof", "hi10_mof", "pthr_mof",
                "low_confidence", "tier")
        if all(f"{col}_image" in sel for col in cols):
            res["image_only"] = compare({col: sel[f"{col}_image"] for col in cols}, rec["image"])
        # served = image-only where no DXA replaced the estimate, the DXA prediction where one did
        served = {col: rec["image"][col].copy() for col in cols}
        if "dxa_rows" in rec:
            for col in cols:
                served[col][rec["dxa_rows"]] = rec["dxa"][col]
        res["served"] = compare(sel, served)
        res["dxa_used_rows"] = int(len(rec.get("dxa_rows", [])))
        result["sites"][site] = res
        log.info("site %s: %s", site, json.dumps(res))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="v2 predictions file vs model.onnx + manifest (contract formulas)")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--cohort-a", required=True)
    ap.add_argument("--cohort-b", required=True)
    ap.add_argument("--pred-dir", required=True)
    ap.add_argument("--sample", type=int, default=None, help="check this many random rows per site (default all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    res = check(args.model_dir, {"A": args.cohort_a, "B": args.cohort_b}, args.pred_dir, args.sample)
    with open(os.path.join(args.pred_dir, CHECK_FILE), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
