"""Training one v2 member (multitask: mini-batch Cox on both outcomes for every patient + Gaussian NLL of the T-score
head on the patients whose chart has a measured DXA T-score), the T-score calibration on validation DXA pairs, and
the per-member Cox fit of the survival part on [QFracture cloglog, T-score] (+ an optional ridge residual image
term chosen on validation)."""
from __future__ import annotations

import logging
import math
import os
import time as _time

import numpy as np
import torch
import torch.nn.functional as F

from frcds.model.fit import _augment, recalibrate_bn
from frcds.model.survival import cox_loss, fit_cox, partial_loglik

from .mixture import normal_mixture_quantile
from .net import Member2
from .observables import OUTCOMES, ObservableCohort

log = logging.getLogger("frcds.model2")


def train_member(train: ObservableCohort, cfg: dict, seed: int, sample: np.ndarray,
                 checkpoint: str | None = None, pool: np.ndarray | None = None) -> Member2:
    """Trains one member on ``train.subset(sample)``. ``cfg``: epochs, batch_size, lr, weight_decay, tscore_weight,
    shift, gain, vendor_aug (probability that a batch image is taken from a vendor-augmented copy). ``pool``
    [P, N, S, S]: P acquisition-augmented copies of ``train.images`` (made once; augmenting on the fly cost as much
    as the training step on the shared 2-core machine)."""
    if checkpoint and os.path.exists(checkpoint):
        m = Member2()
        m.load_state_dict(torch.load(checkpoint))
        m.eval()
        log.info("member seed %d: loaded checkpoint", seed)
        return m
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = Member2()
    x = torch.from_numpy(train.images[sample][:, None])
    clin = torch.from_numpy(train.clinical()[sample])
    tt = {k: torch.from_numpy(train.time(k)[sample].astype(np.float32)) for k in OUTCOMES}
    ee = {k: torch.from_numpy(train.event(k)[sample]) for k in OUTCOMES}
    dxa = np.asarray(train.tab["dxa_t"], np.float64)[sample]
    has = torch.from_numpy(np.isfinite(dxa))
    target = torch.from_numpy(np.nan_to_num(dxa).astype(np.float32))
    with torch.no_grad():          # start the T head at the measured mean and spread
        m.tscore.bias[0] = float(np.nanmean(dxa))
        m.tscore.bias[1] = float(np.log(np.expm1(max(np.nanstd(dxa), 0.2))))
    n, bs, epochs = len(sample), int(cfg["batch_size"]), int(cfg["epochs"])
    opt = torch.optim.AdamW(m.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = max(epochs * math.ceil(n / bs), 10)      # OneCycleLR needs a few steps on tiny smoke runs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps, pct_start=0.2)
    p_aug = float(cfg.get("vendor_aug", 0.0)) if pool is not None and len(pool) else 0.0
    xp = torch.from_numpy(pool[:, sample][:, :, None]) if p_aug > 0 else None          # [P, n, 1, S, S]
    t0 = _time.time()
    for ep in range(epochs):
        m.train()
        perm = torch.randperm(n, generator=gen)
        tot = {"cox": 0.0, "nll": 0.0}
        for i in range(0, n, bs):
            b = perm[i:i + bs]
            if len(b) < 8:
                continue
            xb = x[b]
            if p_aug > 0:
                sel = torch.rand(len(b), generator=gen) < p_aug
                src = torch.randint(0, xp.shape[0], (len(b),), generator=gen)
                xb = torch.where(sel[:, None, None, None], xp[src, b], xb)
            xb = _augment(xb, gen, int(cfg.get("shift", 0)), float(cfg.get("gain", 0.0)))
            eta, mu, sd, _ = m(xb, clin[b])
            lc = sum(cox_loss(eta[:, j], tt[k][b], ee[k][b]) for j, k in enumerate(OUTCOMES))
            hb = has[b]
            if hb.any():
                r = (target[b][hb] - mu[hb]) / sd[hb]
                nll = (0.5 * r ** 2 + torch.log(sd[hb])).mean()
            else:
                nll = mu.sum() * 0.0
            loss = lc + float(cfg["tscore_weight"]) * nll
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot["cox"] += float(lc) * len(b) / n
            tot["nll"] += float(nll) * len(b) / n
        log.info("member seed %d epoch %d/%d cox %.4f tscore-nll %.4f (%.0f s)", seed, ep + 1, epochs, tot["cox"],
                 tot["nll"], _time.time() - t0)
    recalibrate_bn(m, x, bs)
    m.eval()
    if checkpoint:
        torch.save(m.state_dict(), checkpoint)
    return m


def fit_calibration(raw_mean: np.ndarray, raw_sd: np.ndarray, dxa: np.ndarray, coverage: float = 0.95) -> dict:
    """intercept/slope: least squares of the measured DXA T-score on the member-mean raw estimate; sd_scale: the
    factor on every member's raw sd that makes the 95 % interval of the calibrated mixture cover the measured value
    for ``coverage`` of the pairs (bisection; coverage is monotone in the factor)."""
    r = raw_mean.mean(1)
    slope, intercept = np.polyfit(r, dxa, 1)
    degenerate = bool(slope <= 0)
    if degenerate:       # a head that does not track DXA (tiny smoke runs): keep a valid, nearly flat calibration
        log.warning("T-score head does not track measured DXA on validation (slope %.3f); slope set to 0.01", slope)
        slope, intercept = 0.01, float(np.mean(dxa) - 0.01 * np.mean(r))
    mean = intercept + slope * raw_mean

    def cov(s: float) -> float:
        lo = normal_mixture_quantile(mean, s * raw_sd, 0.025)
        hi = normal_mixture_quantile(mean, s * raw_sd, 0.975)
        return float(np.mean((dxa >= lo) & (dxa <= hi)))

    a, b = 1e-3, 20.0
    for _ in range(40):
        mid = math.sqrt(a * b)
        a, b = (mid, b) if cov(mid) < coverage else (a, mid)
    s = math.sqrt(a * b)
    return {"intercept": float(intercept), "slope": float(slope), "sd_scale": float(s), "pairs": int(len(dxa)),
            "validation_coverage": cov(s), "degenerate": degenerate}


def best_tscore(t_img_mean: np.ndarray, t_img_sd: np.ndarray, dxa: np.ndarray, dxa_sd: float):
    """T covariate and its sd: the measured DXA T-score where the chart has one (sd = DXA precision), else the
    calibrated image estimate (regression calibration: E[T | image])."""
    has = np.isfinite(dxa)
    return np.where(has, dxa, t_img_mean), np.where(has, dxa_sd, t_img_sd)


def fit_survival(clin: np.ndarray, t_cov: np.ndarray, t_sd: np.ndarray, z: np.ndarray | None, time, event,
                 va: dict, l2_grid: list[float], iterations: int = 3) -> dict:
    """Cox on [clinical, T] with offset gamma^2 sd^2 / 2 (the log of E[exp(gamma T)] under the T predictive, so the
    fit matches the served quadrature), optionally + a ridge residual image term on the standardised pooled
    features z, fitted with gamma FIXED (T enters as an offset): the features also carry the T-score, and a free
    gamma would hand part of its effect to the residual, which a measured DXA could then not replace.

    The residual term is chosen on validation partial likelihood among 'none' and the ridge strengths in
    ``l2_grid``. ``va`` holds the same arrays for validation. Returns beta, gamma, w (on the raw feature scale),
    the choice and the validation partial likelihoods."""
    gamma, b = -1.0, None
    x0 = np.column_stack([clin, t_cov])
    for _ in range(iterations):
        b = fit_cox(x0, time, event, np.zeros(2), offset=0.5 * gamma ** 2 * t_sd ** 2, weights_init=b)
        gamma = float(b[1])
    beta = float(b[0])
    off_tr = gamma * t_cov + 0.5 * gamma ** 2 * t_sd ** 2
    off_va = gamma * va["t_cov"] + 0.5 * gamma ** 2 * va["t_sd"] ** 2
    pl = partial_loglik(beta * va["clin"] + off_va, va["time"], va["event"])
    best = {"choice": "none", "beta": beta, "w": np.zeros(0 if z is None else z.shape[1]), "pl": pl}
    scores = {"none": pl}
    if z is not None and l2_grid:
        mu, sd = z.mean(0), z.std(0) + 1e-8
        x1 = np.column_stack([clin, (z - mu) / sd])
        xv1 = np.column_stack([va["clin"], (va["z"] - mu) / sd])
        for l2 in l2_grid:
            pen = np.full(x1.shape[1], float(l2))
            pen[0] = 0.0
            b1 = fit_cox(x1, time, event, pen, offset=off_tr)
            pl1 = partial_loglik(xv1 @ b1 + off_va, va["time"], va["event"])
            scores[f"l2={l2}"] = pl1
            if pl1 > best["pl"]:
                best = {"choice": f"l2={l2}", "beta": float(b1[0]), "w": b1[1:] / sd, "pl": pl1}
    return {"beta": best["beta"], "gamma": gamma, "w": best["w"], "choice": best["choice"],
            "validation_partial_loglik": scores}
