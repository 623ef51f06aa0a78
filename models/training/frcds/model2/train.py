"""The training stage of hip-xray-v2: everything fitted, from OBSERVABLES only (an :class:`ObservableCohort`):
members -> raw T-score outputs -> T-score calibration (validation DXA pairs) -> per-member Cox on [QFracture, T]
(+ residual image term if validation says so) -> Breslow baselines -> low-confidence rule (validation) -> OOD
statistics with vendor-augmented images and threshold (validation) -> the exported graph.

No test patient, no site-B image and no hidden simulator variable reaches this module.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from frcds.model import ood
from frcds.model.pipeline import ood_vectors
from frcds.model.survival import breslow

from . import mixture, recal
from .augment import vendor_augment
from .fit import best_tscore, fit_calibration, fit_survival, train_member
from .net import Graph2, Member2, member_outputs
from .observables import OUTCOMES, ObservableCohort

log = logging.getLogger("frcds.model2")


@dataclass
class Trained2:
    members: list[Member2] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)
    beta: np.ndarray | None = None          # [M,2]
    gamma: np.ndarray | None = None         # [M,2]
    w: np.ndarray | None = None             # [M,2,C]
    bias: np.ndarray | None = None          # [M,2]
    h0: dict = field(default_factory=dict)  # outcome -> H0 on the monthly grid
    residual_choice: list = field(default_factory=list)
    low_conf: dict = field(default_factory=dict)
    ood: dict = field(default_factory=dict)
    ood_threshold: float = float("nan")
    ood_choice: dict = field(default_factory=dict)
    quality: bool = False
    cam_reference: np.ndarray | None = None
    dxa_sd: float = 0.12
    dxa_max_age: float = 2.0
    nodes: int = 16
    sigma_u: float = 0.0                    # sd of the unmeasured-determinants log-hazard term (mixture.py)
    info: dict = field(default_factory=dict)


def served_tscore(t_mean: np.ndarray, t_sd: np.ndarray, dxa: np.ndarray, dxa_years: np.ndarray, dxa_sd: float,
                  max_age: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-member T predictive as the service uses it: a measured DXA no older than ``max_age`` years replaces the
    image estimate (same value for every member, sd = DXA precision). Returns mean, sd [N,M] and the used flag."""
    use = np.isfinite(dxa) & (np.nan_to_num(dxa_years, nan=np.inf) <= max_age)
    mean = np.where(use[:, None], np.nan_to_num(dxa)[:, None], t_mean)
    sd = np.where(use[:, None], dxa_sd, t_sd)
    return mean, sd, use


def base_eta(t: Trained2, z: np.ndarray, clin: np.ndarray) -> np.ndarray:
    """base log-hazard [N,M,2] from pooled features z [N,M,C] and clinical [N,2]."""
    return np.einsum("nmc,mkc->nmk", z, t.w) + t.beta[None] * clin[:, None, :] + t.bias[None]


@torch.no_grad()
def outputs(members: list[Member2], images: np.ndarray, mean_map: bool = False):
    res = [member_outputs(m, images, mean_map=mean_map) for m in members]
    z = np.stack([r[0] for r in res], 1)
    mu = np.stack([r[1] for r in res], 1)
    sd = np.stack([r[2] for r in res], 1)
    if mean_map:
        return z, mu, sd, np.stack([r[3] for r in res])
    return z, mu, sd


def augmented_copy(images: np.ndarray, seed: int, strength: float) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    out = [vendor_augment(torch.from_numpy(images[i:i + 256][:, None]), gen, strength)[:, 0].numpy()
           for i in range(0, len(images), 256)]
    return np.concatenate(out).astype(np.float32)


def train_stage(cfg: dict, a: ObservableCohort, split: dict, work: str) -> Trained2:
    excl = np.asarray(a.tab["should_exclude"], bool)
    tr = a.subset(split["train"][~excl[split["train"]]])
    va = a.subset(split["val"][~excl[split["val"]]])
    ens, tc, rc = cfg["ensemble"], cfg["tscore"], cfg["risk"]
    t = Trained2(dxa_sd=float(tc["dxa_precision_sd"]), dxa_max_age=float(tc["dxa_max_age_years"]),
                 nodes=int(cfg["uncertainty"]["gauss_hermite_nodes"]),
                 sigma_u=float(cfg["uncertainty"].get("unmeasured_log_hazard_sd", 0.0)))
    timings: dict[str, float] = {}
    ckdir = os.path.join(work, "members")
    os.makedirs(ckdir, exist_ok=True)
    samples = []
    t0 = time.time()
    strength = float(cfg["train"].get("vendor_strength", 1.0))
    n_pool = int(cfg["train"].get("vendor_pool", 2)) if float(cfg["train"].get("vendor_aug", 0.0)) > 0 else 0
    pool = np.stack([augmented_copy(tr.images, int(ens["seed"]) + 500 + i, strength) for i in range(n_pool)]) \
        if n_pool else None
    timings["augment_pool_s"] = time.time() - t0
    for m in range(int(ens["members"])):
        seed = int(ens["seed"]) + m
        rng = np.random.default_rng(seed)
        sample = rng.integers(0, len(tr), len(tr)) if ens.get("bootstrap", True) else np.arange(len(tr))
        samples.append(sample)
        tm = time.time()
        t.members.append(train_member(tr, cfg["train"], seed, sample, os.path.join(ckdir, f"member-{m}.pt"), pool))
        log.info("member %d done in %.0f s", m, time.time() - tm)
    timings["train_members_s"] = time.time() - t0

    t0 = time.time()
    z_tr, mu_tr, sd_tr, mean_maps = outputs(t.members, tr.images, mean_map=True)
    z_va, mu_va, sd_va = outputs(t.members, va.images)
    dxa_tr, dxa_va = np.asarray(tr.tab["dxa_t"], float), np.asarray(va.tab["dxa_t"], float)
    hv = np.isfinite(dxa_va)
    t.calibration = fit_calibration(mu_va[hv], sd_va[hv], dxa_va[hv], float(tc.get("coverage", 0.95)))
    log.info("T-score calibration on %d validation DXA pairs: %s", int(hv.sum()), t.calibration)
    tm_tr, ts_tr = mixture.calibrate(mu_tr, sd_tr, t.calibration)
    tm_va, ts_va = mixture.calibrate(mu_va, sd_va, t.calibration)

    clin_tr, clin_va = tr.clinical().astype(np.float64), va.clinical().astype(np.float64)
    m_count, c = z_tr.shape[1], z_tr.shape[2]
    t.beta, t.gamma = np.zeros((m_count, 2)), np.zeros((m_count, 2))
    t.w, t.bias = np.zeros((m_count, 2, c)), np.zeros((m_count, 2))
    residual = bool(rc.get("residual_image_term", True))
    for m in range(m_count):
        s = samples[m]
        cov_tr, csd_tr = best_tscore(tm_tr[:, m], ts_tr[:, m], dxa_tr, t.dxa_sd)
        cov_va, csd_va = best_tscore(tm_va[:, m], ts_va[:, m], dxa_va, t.dxa_sd)
        for k, o in enumerate(OUTCOMES):
            vd = {"clin": clin_va[:, k], "t_cov": cov_va, "t_sd": csd_va, "z": z_va[:, m], "time": va.time(o),
                  "event": va.event(o)}
            f = fit_survival(clin_tr[s, k], cov_tr[s], csd_tr[s], z_tr[s, m] if residual else None, tr.time(o)[s],
                             tr.event(o)[s], vd, rc.get("residual_l2_grid", []))
            t.beta[m, k], t.gamma[m, k], t.w[m, k] = f["beta"], f["gamma"], f["w"]
            # centre every member on the whole clean training set so members share one Breslow baseline
            t.bias[m, k] = -float(np.mean(f["beta"] * clin_tr[:, k] + f["gamma"] * cov_tr + z_tr[:, m] @ f["w"]))
            t.residual_choice.append({"member": m, "outcome": o, "choice": f["choice"],
                                      "validation_partial_loglik": f["validation_partial_loglik"]})
    log.info("gamma per member: %s; beta: %s; residual: %s", t.gamma.round(3).tolist(), t.beta.round(3).tolist(),
             [r["choice"] for r in t.residual_choice])

    # optional recalibration slope on validation outcomes (recal.py), folded into every member's terms
    recal_rule = rc.get("recalibration")
    vm, vs, _ = served_tscore(tm_va, ts_va, dxa_va, np.asarray(va.tab["dxa_years"], float), t.dxa_sd, t.dxa_max_age)
    if recal_rule == "validation-cox-slope-intercept":
        eta_v, wv = mixture.member_atoms(base_eta(t, z_va, clin_va), t.gamma, vm, vs, t.nodes)
        fits = {o: recal.fit_slope(eta_v[:, k], wv, va.time(o), va.event(o)) for k, o in enumerate(OUTCOMES)}
        slope = np.array([fits[o]["slope"] for o in OUTCOMES])
        t.beta, t.gamma, t.w, t.bias = recal.scale_member_terms(slope, t.beta, t.gamma, t.w, t.bias)
        t.info["risk_recalibration"] = {"rule": recal_rule, **{o: dict(fits[o]) for o in OUTCOMES}}
        log.info("risk recalibration slope on validation: %s", fits)
    elif recal_rule:
        raise ValueError(f"unknown risk.recalibration {recal_rule!r}")

    # Breslow baselines on the log of the mixture-mean hazard multiplier, with T as the service would use it
    base_tr = base_eta(t, z_tr, clin_tr)
    sm, ss, _ = served_tscore(tm_tr, ts_tr, dxa_tr, np.asarray(tr.tab["dxa_years"], float), t.dxa_sd, t.dxa_max_age)
    eta, wts = mixture.member_atoms(base_tr, t.gamma, sm, ss, t.nodes)
    for k, o in enumerate(OUTCOMES):
        eff = np.log((np.exp(eta[:, k]) * wts).sum(1))
        t.h0[o] = breslow(eff, tr.time(o), tr.event(o))
    if recal_rule:
        # calibration in the large on validation with the re-estimated baseline shape: H0 <- exp(a) * H0
        eta_v, wv = mixture.member_atoms(base_eta(t, z_va, clin_va), t.gamma, vm, vs, t.nodes)
        for k, o in enumerate(OUTCOMES):
            fi = recal.fit_intercept(recal.served_log_multiplier(eta_v[:, k], wv), t.h0[o], va.time(o), va.event(o))
            t.h0[o] = t.h0[o] * np.exp(fi["intercept"])
            t.info["risk_recalibration"][o].update(fi)
        log.info("risk recalibration on validation: %s", t.info["risk_recalibration"])

    # low confidence: log-hazard sd over the mixture that is unusual for its risk level (validation, image-only)
    base_va = base_eta(t, z_va, clin_va)
    # the unmeasured-determinants term is part of the served spread, so the reference includes it
    eta_va, wts = mixture.member_atoms(base_va, t.gamma, tm_va, ts_va, t.nodes, sigma_u=t.sigma_u)
    summ = mixture.summarise(eta_va, wts, {o: t.h0[o][-1] for o in OUTCOMES}, sigma_u=t.sigma_u)
    ref, resid = {}, []
    for o in OUTCOMES:
        slope, intercept = np.polyfit(summ[o]["eta_mean"], summ[o]["eta_sd"], 1)
        ref[o] = {"intercept": float(intercept), "slope": float(slope)}
        resid.append(summ[o]["eta_sd"] - (intercept + slope * summ[o]["eta_mean"]))
    q = float(cfg["uncertainty"].get("low_confidence_quantile", 0.975))
    t.low_conf = {"max_log_hazard_sd": float(max(np.quantile(np.max(resid, axis=0), q), 1e-6)), "sd_reference": ref,
                  "validation_quantile": q}
    timings["refit_s"] = time.time() - t0

    # OOD: training statistics over clean AND vendor-augmented training images; threshold on validation likewise
    t0 = time.time()
    t.ood, t.ood_threshold, t.quality, t.ood_choice = choose_ood(cfg, t.members, tr, va, a.subset(
        split["train"][excl[split["train"]]]), z_tr, z_va, pool, strength)
    log.info("OOD: %s threshold %.2f", t.ood_choice, t.ood_threshold)

    # CAM weights of the expected image log-hazard and the training-mean reference map
    u = np.stack([mm.tscore.weight.detach().numpy()[0].astype(np.float64) for mm in t.members])   # [M,C]
    cam_w = t.w + t.gamma[:, :, None] * t.calibration["slope"] * u[:, None, :]
    t.info["cam_w"] = cam_w
    t.cam_reference = np.einsum("mkc,mchw->khw", cam_w, mean_maps) / m_count
    timings["ood_s"] = time.time() - t0
    t.info["timings"] = timings
    t.info["n"] = {"train": len(tr), "validation": len(va), "validation_dxa_pairs": int(hv.sum()),
                   "train_dxa": int(np.isfinite(dxa_tr).sum()),
                   "train_events_10y": {o: int((tr.event(o) & (tr.time(o) <= 10)).sum()) for o in OUTCOMES},
                   "train_rejects_for_ood": int(t.ood_choice.get("n_rejects", 0))}
    return t


def choose_ood(cfg: dict, members: list[Member2], tr: ObservableCohort, va: ObservableCohort,
               rejects: ObservableCohort, z_tr: np.ndarray, z_va: np.ndarray, pool: np.ndarray | None,
               strength: float) -> tuple[dict, float, bool, dict]:
    """OOD statistics and threshold, chosen on training and validation observables only.

    The gate has two jobs that pull against each other: a clean radiograph from another vendor must pass, and an
    artefact must not. The statistics are fitted over clean and vendor-augmented training images; augmenting at the
    full training strength makes every acquisition change look usual, including blur that resembles motion, while
    milder augmentation keeps the gate sharper but may refuse other vendors. With ``ood.aug_strength_grid`` each
    candidate strength s (and the image-quality statistics on or off) is fitted, thresholded at ``val_quantile`` of
    the validation images (clean and augmented at s), and scored on two validation stand-ins:

    - other vendors: a separate draw of the validation images augmented at the FULL training strength (the range of
      acquisitions the model is meant to accept); the share flagged must not exceed ``max_other_vendor_flagged``;
    - artefacts: AUROC of the training split's quality-review rejects against validation clean + full-strength
      augmented images.

    The admissible candidate with the highest artefact AUROC wins (ties: the stronger augmentation). Without a grid,
    ``ood.aug_strength`` (default: the training strength) is used as before, the quality statistics chosen by AUROC.
    """
    oc = cfg["ood"]
    seed = int(oc["seed"])
    grid = [float(x) for x in oc.get("aug_strength_grid", [])] or [float(oc.get("aug_strength", strength))]
    max_flag = float(oc.get("max_other_vendor_flagged", 1.0))
    q_cfg = oc.get("quality_stats", "auto")
    qualities = [q_ for q_ in (False, True) if q_cfg == "auto" or q_ == bool(q_cfg)]
    z_art = outputs(members, rejects.images)[0] if len(rejects) else None
    # the fixed reference every candidate is judged on: validation clean + one full-strength vendor draw
    ref_imgs = augmented_copy(va.images, seed + 7, strength)
    z_ref = outputs(members, ref_imgs)[0]
    cands = []
    for s_ood in grid:
        aug_tr = pool[0] if pool is not None and s_ood == strength else augmented_copy(tr.images, seed, s_ood)
        aug_va = augmented_copy(va.images, seed + 1, s_ood)
        z_atr, z_ava = outputs(members, aug_tr)[0], outputs(members, aug_va)[0]
        val_imgs, z_vall = np.concatenate([va.images, aug_va]), np.concatenate([z_va, z_ava])
        for q_ in qualities:
            st = ood.fit(np.concatenate([ood_vectors(z_tr, tr.images, q_), ood_vectors(z_atr, aug_tr, q_)]))
            d_val = ood.distance(ood_vectors(z_vall, val_imgs, q_), st)
            thr = float(np.quantile(d_val, float(oc["val_quantile"])))
            d_ref = ood.distance(ood_vectors(z_ref, ref_imgs, q_), st)
            d_clean_ref = np.concatenate([d_val[:len(va)], d_ref])
            auroc = ood.auroc(d_clean_ref, ood.distance(ood_vectors(z_art, rejects.images, q_), st)) \
                if z_art is not None else 0.5
            cands.append({"aug_strength": s_ood, "quality_stats": q_, "threshold": thr, "stats": st,
                          "artefact_auroc_validation": float(auroc),
                          "other_vendor_flagged_validation": float(np.mean(d_ref > thr)),
                          "validation_clean_flagged": float(np.mean(d_val[:len(va)] > thr)),
                          "validation_augmented_flagged": float(np.mean(d_val[len(va):] > thr))})
    ok = [c for c in cands if c["other_vendor_flagged_validation"] <= max_flag] or cands
    best = max(ok, key=lambda c: (c["artefact_auroc_validation"], c["aug_strength"]))
    table = [{k: v for k, v in c.items() if k != "stats"} for c in cands]
    choice = {"rule": "highest validation artefact AUROC among candidates flagging at most "
              f"{max_flag:.0%} of full-strength vendor-augmented validation images" if len(cands) > 1 else
              "single candidate", "aug_strength": best["aug_strength"], "quality_stats": best["quality_stats"],
              "candidates": table, "n_rejects": 0 if z_art is None else int(len(z_art)),
              "validation_clean_flagged": best["validation_clean_flagged"],
              "validation_augmented_flagged": best["validation_augmented_flagged"],
              "other_vendor_flagged_validation": best["other_vendor_flagged_validation"],
              "artefact_auroc_validation": best["artefact_auroc_validation"]}
    return best["stats"], best["threshold"], bool(best["quality_stats"]), choice


def build_graph(t: Trained2) -> Graph2:
    g = Graph2(t.members, quality=t.quality)
    g.set_survival(t.w, t.beta, t.bias, t.info["cam_w"])
    g.set_ood(t.ood["mean"], t.ood["precision"])
    g.set_cam_reference(t.cam_reference)
    g.eval()
    return g


@torch.no_grad()
def run_graph(g: Graph2, images: np.ndarray, clin: np.ndarray, batch: int = 128):
    outs = [[], [], [], []]
    for i in range(0, len(images), batch):
        r = g(torch.from_numpy(images[i:i + batch][:, None]), torch.from_numpy(clin[i:i + batch]))
        for lst, v in zip(outs, r):
            lst.append(v.numpy())
    return tuple(np.concatenate(x) for x in outs)
