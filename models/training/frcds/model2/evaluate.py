"""Evaluation of hip-xray-v2 (site-A test, site B, non-hip images). The only module of the v2 pipeline that reads the
hidden simulator variables (true risks, true T-score, artefact kind, truth masks), and only after training: every
factor and threshold it applies was fixed by ``train.train_stage`` on train/validation observables.

Risk metrics are reported twice: as served (a measured DXA no older than ``dxa_max_age_years`` replaces the image
T-score) and image-only (the image T-score for everyone)."""
from __future__ import annotations

import logging

import numpy as np

from frcds.model import metrics, ood
from frcds.model.evaluate import cam_mass
from frcds.model.survival import cum_hazard_at

from . import mixture
from .observables import OUTCOMES, ObservableCohort
from .train import Trained2, run_graph, served_tscore

log = logging.getLogger("frcds.model2")
ALPHA = 0.05


def predict(t: Trained2, g, obs: ObservableCohort) -> dict:
    """Everything the predictions file and the metrics need for one cohort (observables only)."""
    clin = obs.clinical()
    base, ts, cam, dist = run_graph(g, obs.images, clin)
    base, ts = base.astype(np.float64), ts.astype(np.float64)
    tm, tsd = mixture.calibrate(ts[..., 0], ts[..., 1], t.calibration)
    h0 = {o: t.h0[o][-1] for o in OUTCOMES}
    image = mixture.risk_summary(base, t.gamma, tm, tsd, t.nodes, h0, sigma_u=t.sigma_u)
    sm, ss, used = served_tscore(tm, tsd, np.asarray(obs.tab["dxa_t"], float),
                                 np.asarray(obs.tab["dxa_years"], float), t.dxa_sd, t.dxa_max_age)
    served = mixture.risk_summary(base, t.gamma, sm, ss, t.nodes, h0, sigma_u=t.sigma_u)
    out = {"image": image, "served": served, "dxa_used": used, "ood_distance": dist.astype(np.float64),
           "ood_flag": dist > t.ood_threshold, "cam": cam}
    mix_mean = tm.mean(1)
    out["tscore"] = {"mean": mix_mean, "sd": np.sqrt(np.maximum((tsd ** 2 + tm ** 2).mean(1) - mix_mean ** 2, 0)),
                     "lo": mixture.normal_mixture_quantile(tm, tsd, 0.025),
                     "hi": mixture.normal_mixture_quantile(tm, tsd, 0.975)}
    for mode in ("image", "served"):
        s = out[mode]
        lc = np.zeros(len(obs), bool)
        for o in OUTCOMES:
            r = t.low_conf["sd_reference"][o]
            lc |= s[o]["eta_sd"] - (r["intercept"] + r["slope"] * s[o]["eta_mean"]) > t.low_conf["max_log_hazard_sd"]
        s["low_confidence"] = lc
        s["tier"] = mixture.tier(s["hip"]["pred"], s["hip"]["pthr"], s["mof"]["pred"], s["mof"]["pthr"])
    return out


def interval_score(lo, hi, y, alpha: float = ALPHA) -> np.ndarray:
    """Gneiting & Raftery (2007) interval score of central (1 - alpha) intervals; lower is better."""
    return (hi - lo) + 2 / alpha * (lo - y) * (y < lo) + 2 / alpha * (y - hi) * (y > hi)


def _boot(fn, n: int, b: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([fn(rng.integers(0, n, n)) for _ in range(b)])


def _ci(x: np.ndarray) -> list[float]:
    return [float(np.nanquantile(x, 0.025)), float(np.nanquantile(x, 0.975))]


def risk_metrics(p: dict, obs: ObservableCohort, truth: dict, idx: np.ndarray, h0: dict, n_boot: int,
                 seed: int) -> dict:
    """Metrics of one prediction mode on rows ``idx`` of a cohort (h0: the model's baselines, for the expected
    cumulative hazard to each patient's follow-up time in the Poisson calibration)."""
    res = {}
    for o in OUTCOMES:
        tt, ee = obs.time(o)[idx], obs.event(o)[idx]
        pred, lo, hi = p[o]["pred"][idx], p[o]["lo"][idx], p[o]["hi"][idx]
        qf = np.asarray(obs.tab[f"qf_risk10_{o}"], float)[idx] / 100.0
        true10 = truth[f"true_risk_{o}"][idx, 9]
        c_m = metrics.harrell_c(tt, ee, pred)
        c_q = metrics.harrell_c(tt, ee, qf)
        diff = _boot(lambda s: metrics.harrell_c(tt[s], ee[s], pred[s]) - metrics.harrell_c(tt[s], ee[s], qf[s]),
                     len(idx), n_boot, seed)
        dec = metrics.calibration_deciles(tt, ee, pred)
        xs, ys = np.array([d["predicted"] for d in dec]), np.array([d["observed_km"] for d in dec])
        km_slope = float(np.polyfit(xs, ys, 1)[0])
        cum = p[o]["cumhaz_mean"][idx]
        top = np.argsort(pred)[-max(len(idx) // 10, 1):]
        obs_top = 1.0 - metrics.km(tt[top], ee[top], np.array([10.0]))[0]
        thr = mixture.THRESHOLDS[o]
        isc = interval_score(lo, hi, true10)
        res[o] = {
            "n": int(len(idx)), "events_10y": int((ee & (tt <= 10)).sum()),
            "harrell_c10": c_m, "qfracture_harrell_c10": c_q, "c_minus_qfracture": c_m - c_q,
            "c_minus_qfracture_ci95": _ci(diff),
            "oracle_harrell_c10": metrics.harrell_c(tt, ee, true10),
            "km_deciles": dec, "km_decile_slope": km_slope,
            "calibration_poisson": metrics.calibration(tt, ee, np.log(np.maximum(cum, 1e-12)),
                                                      cum_hazard_at(h0[o], np.minimum(tt, 10.0)) * cum / h0[o][-1]),
            "top_decile": {"predicted": float(pred[top].mean()), "observed_km": float(obs_top),
                           "ratio_predicted_to_observed": float(pred[top].mean() / obs_top) if obs_top > 0 else None},
            "coverage_true_risk10": float(np.mean((true10 >= lo) & (true10 <= hi))),
            "interval_score_alpha05": float(isc.mean()),
            "median_interval_width": float(np.median(hi - lo)),
            "median_top_decile_interval": {"width": float(np.median(hi[top] - lo[top])),
                                           "lo": float(np.median(lo[top])), "hi": float(np.median(hi[top]))},
            "threshold_probability_brier": float(np.mean((p[o]["pthr"][idx] - (true10 >= thr)) ** 2)),
            "threshold_probability_brier_reference_prevalence": float(np.mean(true10 >= thr) *
                                                                      (1 - np.mean(true10 >= thr))),
            "mean_predicted": float(pred.mean()), "mean_true_risk10": float(true10.mean()),
        }
    tier = p["tier"][idx]
    high = tier == "high"
    res["tiers"] = {k: int((tier == k).sum()) for k in ("low", "moderate", "high")}
    res["low_confidence"] = {"all": float(p["low_confidence"][idx].mean()),
                             "high_tier": float(p["low_confidence"][idx][high].mean()) if high.any() else None}
    return res


def evaluate(cfg: dict, t: Trained2, g, a: ObservableCohort, b: ObservableCohort, truth_a: dict, truth_b: dict,
             split: dict, nonhip: np.ndarray | None) -> tuple[dict, dict, dict]:
    ev_cfg = cfg["evaluation"]
    n_boot, seed = int(ev_cfg["bootstrap"]), int(ev_cfg["seed"])
    te = split["test"]
    pa = predict(t, g, a.subset(te))
    pb = predict(t, g, b)
    ta = {k: v[te] for k, v in truth_a.items()}
    obs_te = a.subset(te)
    clean_a = np.flatnonzero(~np.asarray(obs_te.tab["should_exclude"], bool))
    clean_b = np.flatnonzero(~np.asarray(b.tab["should_exclude"], bool))
    ev: dict = {"sets": {"test_site_a": int(len(te)), "test_site_a_clean": int(len(clean_a)),
                         "site_b": int(len(b)), "site_b_clean": int(len(clean_b))}}
    for mode in ("served", "image"):
        ev[f"site_a_{mode}"] = risk_metrics(pa[mode], obs_te, ta, clean_a, t.h0, n_boot, seed)
        ev[f"site_b_{mode}"] = risk_metrics(pb[mode], b, truth_b, clean_b, t.h0, n_boot, seed + 1)
        ev[f"site_a_{mode}"]["dxa_used_fraction"] = float(pa["dxa_used"][clean_a].mean())
    # site-B C drop with a bootstrap CI (independent resamples of the two sites)
    for mode in ("served", "image"):
        drops = {}
        for o in OUTCOMES:
            ra, rb = pa[mode][o]["pred"][clean_a], pb[mode][o]["pred"][clean_b]
            tA, eA = obs_te.time(o)[clean_a], obs_te.event(o)[clean_a]
            tB, eB = b.time(o)[clean_b], b.event(o)[clean_b]
            rng = np.random.default_rng(seed + 2)
            bs = []
            for _ in range(n_boot):
                sa, sb = rng.integers(0, len(ra), len(ra)), rng.integers(0, len(rb), len(rb))
                bs.append(metrics.harrell_c(tA[sa], eA[sa], ra[sa]) - metrics.harrell_c(tB[sb], eB[sb], rb[sb]))
            d = ev[f"site_a_{mode}"][o]["harrell_c10"] - ev[f"site_b_{mode}"][o]["harrell_c10"]
            drops[o] = {"drop": d, "ci95": _ci(np.array(bs)),
                        "oracle_drop": ev[f"site_a_{mode}"][o]["oracle_harrell_c10"] -
                        ev[f"site_b_{mode}"][o]["oracle_harrell_c10"]}
        ev[f"site_b_c_drop_{mode}"] = drops
    # T-score head
    tsa = pa["tscore"]
    bt = ta["bmd_t"][clean_a]
    dxa = np.asarray(obs_te.tab["dxa_t"], float)[clean_a]
    hd = np.isfinite(dxa)
    lo, hi, mu = tsa["lo"][clean_a], tsa["hi"][clean_a], tsa["mean"][clean_a]
    ev["tscore"] = {
        "site_a_r_true_t": float(np.corrcoef(mu, bt)[0, 1]),
        "site_a_r_measured_dxa": float(np.corrcoef(mu[hd], dxa[hd])[0, 1]),
        "site_a_coverage_measured_dxa": float(np.mean((dxa[hd] >= lo[hd]) & (dxa[hd] <= hi[hd]))),
        "site_a_coverage_true_t": float(np.mean((bt >= lo) & (bt <= hi))),
        "site_a_bias_vs_measured_dxa": float(np.mean(mu[hd] - dxa[hd])), "site_a_dxa_pairs": int(hd.sum()),
        "site_a_median_interval_width": float(np.median(hi - lo)),
    }
    tsb = pb["tscore"]
    dxb = np.asarray(b.tab["dxa_t"], float)[clean_b]
    hb = np.isfinite(dxb)
    ev["tscore"].update({
        "site_b_r_true_t": float(np.corrcoef(tsb["mean"][clean_b], truth_b["bmd_t"][clean_b])[0, 1]),
        "site_b_r_measured_dxa": float(np.corrcoef(tsb["mean"][clean_b][hb], dxb[hb])[0, 1]),
        "site_b_coverage_measured_dxa": float(np.mean((dxb[hb] >= tsb["lo"][clean_b][hb]) &
                                                      (dxb[hb] <= tsb["hi"][clean_b][hb]))),
        "site_b_bias_vs_measured_dxa": float(np.mean(tsb["mean"][clean_b][hb] - dxb[hb]))})
    # OOD
    d_a = pa["ood_distance"]
    art_a = np.flatnonzero(np.asarray(obs_te.tab["should_exclude"], bool))
    art_b = np.flatnonzero(np.asarray(b.tab["should_exclude"], bool))
    ev["ood"] = {"threshold": t.ood_threshold, "threshold_rule": f"{cfg['ood']['val_quantile']} quantile of the "
                 "distances of site-A validation images, clean and vendor-augmented (one draw each, at the chosen "
                 f"OOD augmentation strength {t.ood_choice.get('aug_strength')})",
                 "site_a_test_clean_flagged": float(pa["ood_flag"][clean_a].mean()),
                 "site_b_clean_flagged": float(pb["ood_flag"][clean_b].mean()),
                 "artefact_auroc_site_a": ood.auroc(d_a[clean_a], d_a[art_a]) if len(art_a) else None,
                 "artefact_auroc_site_b": ood.auroc(pb["ood_distance"][clean_b], pb["ood_distance"][art_b])
                 if len(art_b) else None,
                 "artefacts_flagged_site_a": float(pa["ood_flag"][art_a].mean()) if len(art_a) else None,
                 "n_artefacts": {"site_a_test": int(len(art_a)), "site_b": int(len(art_b))},
                 "choice": t.ood_choice}
    by_kind = {}
    for kind in sorted(set(ta["artefact"][art_a])):
        sel = art_a[ta["artefact"][art_a] == kind]
        by_kind[kind] = {"n": int(len(sel)), "auroc": ood.auroc(d_a[clean_a], d_a[sel]),
                         "flagged": float(pa["ood_flag"][sel].mean())}
    ev["ood"]["artefact_by_kind_site_a"] = by_kind
    if nonhip is not None and len(nonhip):
        import torch
        with torch.no_grad():
            dn = run_graph(g, nonhip, np.zeros((len(nonhip), 2), np.float32))[3].astype(np.float64)
        ev["ood"]["non_hip_auroc"] = ood.auroc(d_a[clean_a], dn)
        ev["ood"]["non_hip_flagged"] = float(np.mean(dn > t.ood_threshold))
        ev["ood"]["n_non_hip"] = int(len(dn))
    # heatmap: share of the positive hip CAM mass inside the truth mask (evaluation only)
    if "masks" in ta:
        share = cam_mass(pa["cam"][clean_a][:, 0], ta["masks"][clean_a])
        ev["cam"] = {"hip_median_share_in_mask": float(np.nanmedian(share))}
    return ev, pa, pb
