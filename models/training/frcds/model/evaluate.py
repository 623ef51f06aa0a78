"""Evaluation written to evaluation.json (issue 3, item 5). Touches test and site B only here; every threshold or
factor it applies was fixed on train/validation by ``pipeline.train_all``."""
from __future__ import annotations

import logging
import math

import numpy as np

from . import intervals, metrics, ood
from .data import OUTCOMES, Cohort
from .survival import MONTHLY_GRID, cum_hazard_at

log = logging.getLogger("frcds.model")
TAU = 10.0
AUC_TIMES = (2.0, 5.0, 10.0)
AGE_BANDS = (("50-64", 0, 65), ("65-79", 65, 80), ("80+", 80, 200))
MODELS = ("fused", "image", "clinical", "oracle")


class Pred:
    """One model's predictions for one outcome on one set: linear predictor, cumulative hazard on the monthly grid,
    and (when the model has members) the 10-year risk interval."""

    def __init__(self, lp, cumhaz_grid, lo10=None, hi10=None):
        self.lp, self.H, self.lo10, self.hi10 = lp, cumhaz_grid, lo10, hi10

    def take(self, idx):
        return Pred(self.lp[idx], self.H[idx], None if self.lo10 is None else self.lo10[idx],
                    None if self.hi10 is None else self.hi10[idx])

    @property
    def risk10(self):
        return 1.0 - np.exp(-self.H[:, -1])


def oracle_cumhaz(true_risk_years: np.ndarray) -> np.ndarray:
    """True cumulative hazard on the monthly grid from the true 1..10-year risks (linear between whole years)."""
    hy = -np.log1p(-np.clip(true_risk_years, 0, 1 - 1e-12))
    hy = np.concatenate([np.zeros((len(hy), 1)), hy], axis=1)              # years 0..10
    years = np.arange(11.0)
    return np.stack([np.interp(MONTHLY_GRID, years, row) for row in hy])


def predictions(trained, z: np.ndarray, c: Cohort) -> dict[str, dict[str, Pred]]:
    from .pipeline import member_eta
    clin = c.clinical()
    out: dict[str, dict[str, Pred]] = {m: {} for m in MODELS}
    for kind in ("fused", "image"):
        e = member_eta(z, trained.heads[kind], clin)
        for k, o in enumerate(OUTCOMES):
            h0 = trained.h0[kind][o]
            em = e[:, :, k]
            _, lo, hi = intervals.interval(em, trained.k[kind][o], h0[-1])
            out[kind][o] = Pred(em.mean(1), h0[None] * np.exp(em.mean(1))[:, None], lo, hi)
    for k, o in enumerate(OUTCOMES):
        cm = trained.clinical[o]
        em = clin[:, k:k + 1] * cm[:, 0][None] + cm[:, 1][None]
        h0 = trained.h0["clinical"][o]
        _, lo, hi = intervals.interval(em, trained.k["clinical"][o], h0[-1])
        out["clinical"][o] = Pred(em.mean(1), h0[None] * np.exp(em.mean(1))[:, None], lo, hi)
        out["oracle"][o] = Pred(c.oracle_score(o), oracle_cumhaz(c.tab[f"true_risk_{o}"]))
    return out


def point_metrics(p: Pred, t: np.ndarray, e: np.ndarray, true10: np.ndarray) -> dict[str, float]:
    r = {"harrell_c10": metrics.harrell_c(t, e, p.lp, TAU), "uno_c10": metrics.uno_c(t, e, p.lp, TAU)}
    for s in AUC_TIMES:
        r[f"auc_{int(s)}y"] = metrics.td_auc(t, e, p.lp, s)
    r["ibs_10y"] = metrics.integrated_brier(t, e, p.H)
    try:
        cal = metrics.calibration(t, e, p.lp, cum_hazard_at_rows(p.H, np.minimum(t, TAU)), TAU)
        r["calibration_slope"], r["calibration_intercept"] = cal["slope"], cal["intercept"]
    except Exception as ex:                       # a tiny subgroup can make the GLM singular
        log.warning("calibration failed: %s", ex)
        r["calibration_slope"] = r["calibration_intercept"] = float("nan")
    r["coverage_95"] = intervals.coverage(p.lo10, p.hi10, true10) if p.lo10 is not None else float("nan")
    r["mean_risk10"] = float(np.mean(p.risk10))
    return r


def cum_hazard_at_rows(H: np.ndarray, t: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(MONTHLY_GRID, t, side="right") - 1, 0, len(MONTHLY_GRID) - 1)
    return H[np.arange(len(t)), idx]


def with_bootstrap(preds: dict[str, Pred], t, e, true10, n_boot: int, seed: int) -> dict:
    """Point values and percentile 95 % CIs for every model, on the same resamples (so differences get CIs too)."""
    pts = {m: point_metrics(p, t, e, true10) for m, p in preds.items()}
    rng = np.random.default_rng(seed)
    boots: dict[str, list[dict]] = {m: [] for m in preds}
    for _ in range(n_boot):
        idx = rng.integers(0, len(t), len(t))
        if e[idx].sum() < 2:
            continue
        for m, p in preds.items():
            boots[m].append(point_metrics(p.take(idx), t[idx], e[idx], true10[idx]))
    res = {}
    for m in preds:
        res[m] = {}
        for key, v in pts[m].items():
            vals = np.array([b[key] for b in boots[m]], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            ci = [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))] if len(vals) >= 10 else None
            res[m][key] = {"value": v, "ci95": ci}
    diffs = {}
    for other in ("clinical", "oracle", "image"):
        if other in preds and "fused" in preds:
            d = np.array([bf["harrell_c10"] - bo["harrell_c10"] for bf, bo in zip(boots["fused"], boots[other])])
            d = d[np.isfinite(d)]
            diffs[f"fused_minus_{other}_harrell_c10"] = {
                "value": pts["fused"]["harrell_c10"] - pts[other]["harrell_c10"],
                "ci95": [float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))] if len(d) >= 10 else None}
    res["differences"] = diffs
    res["n"] = int(len(t))
    res["events_10y"] = int((e & (t <= TAU)).sum())
    return res


def cam_mass(cam: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of positive CAM mass inside the truth mask: the mask (fraction per working-resolution pixel) is
    box-averaged onto the CAM grid, so a CAM cell half covered by the mask counts half."""
    n, h, w = cam.shape
    s = masks.shape[1]
    f = s // h
    m = masks.reshape(n, h, f, w, f).mean(axis=(2, 4))
    tot = cam.sum(axis=(1, 2))
    inside = (cam * m).sum(axis=(1, 2))
    return np.where(tot > 0, inside / np.where(tot > 0, tot, 1.0), np.nan)


def clean(obj):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def evaluate(cfg, trained, graph, a: Cohort, b: Cohort, split, nonhip_imgs, nonhip_kinds, out_dir) -> dict:
    from .pipeline import features_all, ood_vectors, run_graph
    ec = cfg["evaluation"]
    n_boot, seed = int(ec["bootstrap"]), int(ec["seed"])
    excl = a.tab["should_exclude"]
    te = a.subset(split["test"][~excl[split["test"]]])
    va = a.subset(split["val"][~excl[split["val"]]])
    bb = b.subset(np.flatnonzero(~b.tab["should_exclude"]))
    art = a.subset(np.flatnonzero(excl))
    members = trained.members
    z_te, z_b, z_art = features_all(members, te.images), features_all(members, bb.images), \
        features_all(members, art.images) if len(art) else None
    z_va = features_all(members, va.images)

    # the exported graph must give what the numpy evaluation uses
    lh, cam, d_te = run_graph(graph, te.images, te.clinical())
    from .pipeline import member_eta
    consistency = {
        "max_abs_log_hazard": float(np.abs(lh - member_eta(z_te, trained.heads["fused"], te.clinical())).max()),
        "max_abs_ood": float(np.abs(d_te - ood.distance(ood_vectors(z_te, te.images, trained.quality),
                                                         trained.ood)).max())}
    log.info("graph vs numpy: %s", consistency)

    res: dict = {"sets": {"test_site_a": len(te), "validation_site_a": len(va), "site_b": len(bb),
                          "artefact_cases_site_a": len(art),
                          "non_hip_images": 0 if nonhip_imgs is None else len(nonhip_imgs)},
                 "graph_consistency": consistency}
    pte, pb = predictions(trained, z_te, te), predictions(trained, z_b, bb)
    res["test"], res["site_b"], res["calibration_plot"] = {}, {}, {}
    for o in OUTCOMES:
        t, e, tr10 = te.time(o), te.event(o), te.tab[f"true_risk_{o}"][:, 9]
        res["test"][o] = with_bootstrap({m: pte[m][o] for m in MODELS}, t, e, tr10, n_boot, seed)
        res["calibration_plot"][o] = {m: metrics.calibration_deciles(t, e, pte[m][o].risk10, TAU) for m in MODELS}
        if f"qf_risk10_{o}" in te.tab:
            # QFracture-2012 as published (its own baseline survival), not refit: calibration-in-the-large only
            res["test"][o]["qfracture_published"] = {
                "mean_predicted_risk10": float(np.mean(te.tab[f"qf_risk10_{o}"]) / 100.0),
                "km_observed_risk10": float(1.0 - metrics.km(t, e, np.array([TAU]))[0]),
                "harrell_c10": metrics.harrell_c(t, e, te.tab[f"qf_risk10_{o}"], TAU)}
        tb, eb, trb = bb.time(o), bb.event(o), bb.tab[f"true_risk_{o}"][:, 9]
        res["site_b"][o] = with_bootstrap({m: pb[m][o] for m in MODELS}, tb, eb, trb, n_boot, seed + 1)
        res["site_b"][o]["c_drop_vs_site_a"] = {
            m: res["test"][o][m]["harrell_c10"]["value"] - res["site_b"][o][m]["harrell_c10"]["value"]
            for m in MODELS}

    # subgroups on the site-A test set
    sub_boot = max(n_boot // 4, 20)
    groups = {"sex=female": te.tab["sex"] == 0, "sex=male": te.tab["sex"] == 1}
    for name, lo, hi in AGE_BANDS:
        groups[f"age={name}"] = (te.tab["age"] >= lo) & (te.tab["age"] < hi)
    res["subgroups"] = {}
    for o in OUTCOMES:
        res["subgroups"][o] = {}
        for gname, gmask in groups.items():
            idx = np.flatnonzero(gmask)
            if len(idx) < 20:
                continue
            t, e, tr10 = te.time(o)[idx], te.event(o)[idx], te.tab[f"true_risk_{o}"][idx, 9]
            r = with_bootstrap({m: pte[m][o].take(idx) for m in MODELS}, t, e, tr10, sub_boot, seed + 2)
            res["subgroups"][o][gname] = {
                "n": r["n"], "events_10y": r["events_10y"],
                **{m: {key: r[m][key] for key in ("harrell_c10", "uno_c10", "calibration_slope", "coverage_95")}
                   for m in MODELS}}
        res["subgroups"][o]["site=A (test)"] = {"n": res["test"][o]["n"], "events_10y": res["test"][o]["events_10y"],
                                                **{m: {key: res["test"][o][m][key] for key in (
                                                    "harrell_c10", "uno_c10", "calibration_slope", "coverage_95")}
                                                   for m in MODELS}}
        res["subgroups"][o]["site=B"] = {"n": res["site_b"][o]["n"], "events_10y": res["site_b"][o]["events_10y"],
                                         **{m: {key: res["site_b"][o][m][key] for key in (
                                             "harrell_c10", "uno_c10", "calibration_slope", "coverage_95")}
                                            for m in MODELS}}

    # OOD
    q = trained.quality
    d_va = ood.distance(ood_vectors(z_va, va.images, q), trained.ood)
    d_b = ood.distance(ood_vectors(z_b, bb.images, q), trained.ood)
    thr = trained.ood_threshold
    o_res = {"threshold": thr, "vector_choice": trained.ood_choice, "threshold_rule": f"quantile {cfg['ood']['val_quantile']} of validation (site A, "
                                                  f"clean) distances",
             "flagged_fraction": {"validation_site_a": float(np.mean(d_va > thr)),
                                  "test_site_a": float(np.mean(d_te > thr)), "site_b": float(np.mean(d_b > thr))},
             "distance_median": {"test_site_a": float(np.median(d_te)), "site_b": float(np.median(d_b))}}
    if z_art is not None:
        d_art = ood.distance(ood_vectors(z_art, art.images, q), trained.ood)
        kinds = art.tab["artefact"]
        in_test = np.isin(np.flatnonzero(excl), split["test"])

        def art_block(sel):
            return {"auroc": ood.auroc(d_te, d_art[sel]), "n": int(sel.sum()),
                    "sensitivity_at_threshold": float(np.mean(d_art[sel] > thr)),
                    "by_kind": {k: {"auroc": ood.auroc(d_te, d_art[sel & (kinds == k)]),
                                    "n": int((sel & (kinds == k)).sum()),
                                    "sensitivity_at_threshold": float(np.mean(d_art[sel & (kinds == k)] > thr))}
                                for k in sorted(set(kinds[sel]))},
                    "distance_median": float(np.median(d_art[sel]))}
        # headline: artefact cases of the test split; all splits (none was ever trained on) as a larger sample
        o_res["artefact"] = art_block(in_test) if in_test.sum() >= 5 else art_block(np.ones(len(d_art), bool))
        o_res["artefact"]["cases_from"] = "test split" if in_test.sum() >= 5 else "all splits"
        o_res["artefact_all_splits"] = art_block(np.ones(len(d_art), bool))
    if nonhip_imgs is not None:
        z_nh = features_all(members, nonhip_imgs)
        d_nh = ood.distance(ood_vectors(z_nh, nonhip_imgs, q), trained.ood)
        kinds = np.array(nonhip_kinds)
        o_res["non_hip"] = {"auroc": ood.auroc(d_te, d_nh), "n": len(d_nh),
                            "sensitivity_at_threshold": float(np.mean(d_nh > thr)),
                            "by_kind": {k: {"auroc": ood.auroc(d_te, d_nh[kinds == k]), "n": int((kinds == k).sum()),
                                            "sensitivity_at_threshold": float(np.mean(d_nh[kinds == k] > thr))}
                                        for k in sorted(set(kinds))},
                            "distance_median": float(np.median(d_nh))}
    res["ood"] = o_res
    res["_distances"] = {"test": d_te, "site_b": d_b, "artefact": None if z_art is None else d_art,
                         "non_hip": None if nonhip_imgs is None else d_nh}

    # CAM mass inside the truth mask (site-A test)
    res["cam"] = {"grid": list(cam.shape[2:]), "variant": trained.cam_choice,
                  "mask_area_fraction_median": float(np.median(te.masks.mean(axis=(1, 2))))}
    for k, o in enumerate(OUTCOMES):
        share = cam_mass(cam[:, k], te.masks)
        # secondary view: people whose predicted risk is high have risk-raising evidence to show; for low-risk
        # people the positive part of the map is small deviations scattered over the image
        top = pte["fused"][o].risk10 >= np.quantile(pte["fused"][o].risk10, 0.8)
        res["cam"][o] = {"median_share_in_mask": float(np.nanmedian(share)),
                         "iqr": [float(np.nanquantile(share, 0.25)), float(np.nanquantile(share, 0.75))],
                         "no_positive_mass": int(np.isnan(share).sum()),
                         "median_share_in_mask_top_risk_quintile": float(np.nanmedian(share[top])),
                         "median_share_in_mask_bottom_four_quintiles": float(np.nanmedian(share[~top]))}
    res["_cam_examples"] = {"images": te.images[:6], "masks": te.masks[:6], "cam": cam[:6],
                            "risk_hip": pte["fused"]["hip"].risk10[:6]}

    res["training"] = {
        "ridge_l2_chosen": {k: sorted(set(v)) for k, v in trained.l2.items()},
        "interval_factor": trained.k, "clinical_coefficients": {o: trained.clinical[o][:, 0] for o in OUTCOMES},
        "ood_shrinkage": trained.ood["shrinkage"]}
    res["must_show"] = must_show(res)
    private = {k: res.pop(k) for k in ("_distances", "_cam_examples")}
    out = clean(res)
    out.update(private)            # kept for the plots; dropped by the writer (keys starting with "_")
    return out


def must_show(r: dict) -> dict:
    """The issue's targets, read off the evaluation (hip, 10 y, site-A test)."""
    h = r["test"]["hip"]
    c = lambda m: h[m]["harrell_c10"]["value"]
    o = r["ood"]
    checks = {
        "fused_c_ge_clinical_plus_0.03": (c("fused"), c("clinical") + 0.03, c("fused") >= c("clinical") + 0.03),
        "fused_c_ge_oracle_minus_0.03": (c("fused"), c("oracle") - 0.03, c("fused") >= c("oracle") - 0.03),
        "calibration_slope_0.9_1.1": (h["fused"]["calibration_slope"]["value"], [0.9, 1.1],
                                      0.9 <= h["fused"]["calibration_slope"]["value"] <= 1.1),
        "coverage_0.90_0.98": (h["fused"]["coverage_95"]["value"], [0.9, 0.98],
                               0.9 <= h["fused"]["coverage_95"]["value"] <= 0.98),
        "ood_non_hip_auroc_ge_0.95": (o.get("non_hip", {}).get("auroc"), 0.95,
                                      (o.get("non_hip", {}).get("auroc") or 0) >= 0.95),
        "ood_artefact_auroc_ge_0.85": (o.get("artefact", {}).get("auroc"), 0.85,
                                       (o.get("artefact", {}).get("auroc") or 0) >= 0.85),
        "cam_mass_median_ge_0.6": (r["cam"]["hip"]["median_share_in_mask"], 0.6,
                                   r["cam"]["hip"]["median_share_in_mask"] >= 0.6),
        "site_b_c_drop_le_0.03": (r["site_b"]["hip"]["c_drop_vs_site_a"]["fused"], 0.03,
                                  r["site_b"]["hip"]["c_drop_vs_site_a"]["fused"] <= 0.03),
        "test_n_ge_2000": (h["n"], 2000, h["n"] >= 2000),
    }
    return {k: {"value": v[0], "target": v[1], "met": bool(v[2])} for k, v in checks.items()}
