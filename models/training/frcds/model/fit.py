"""Training one ensemble member (mini-batch Cox + auxiliary bone-measurement loss), extracting frozen features, and the
full-batch refit of the linear heads on those features (platform-notes: mini-batch Cox shrinks the clinical
coefficient; a full-batch refit recovered +0.017 C in a pilot)."""
from __future__ import annotations

import logging
import math
import os
import time as _time

import numpy as np
import torch
import torch.nn.functional as F

from .data import Cohort, OUTCOMES
from .net import Member
from .survival import cox_loss, fit_cox, partial_loglik

log = logging.getLogger("frcds.model")


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int, gain: float) -> torch.Tensor:
    """Small random translation (reflect-padded crop) and intensity gain/offset jitter."""
    if shift > 0:
        b, _, s, _ = x.shape
        xp = F.pad(x, (shift, shift, shift, shift), mode="reflect")
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
        x = torch.stack([xp[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    if gain > 0:
        b = x.shape[0]
        g = 1.0 + gain * torch.randn(b, 1, 1, 1, generator=gen)
        o = gain * torch.randn(b, 1, 1, 1, generator=gen)
        x = x * g + o
    return x


def train_member(train: Cohort, cfg: dict, seed: int, sample: np.ndarray, checkpoint: str | None = None) -> Member:
    """Trains one member on ``train.subset(sample)`` (a bootstrap sample of training patients).

    ``cfg`` keys: epochs, batch_size, lr, weight_decay, aux_weight, shift, gain."""
    if checkpoint and os.path.exists(checkpoint):
        m = Member()
        m.load_state_dict(torch.load(checkpoint))
        log.info("member seed %d: loaded checkpoint", seed)
        return m
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = Member()
    x = torch.from_numpy(train.images[sample][:, None])
    clin = torch.from_numpy(train.clinical()[sample])
    tt = {k: torch.from_numpy(train.time(k)[sample].astype(np.float32)) for k in OUTCOMES}
    ee = {k: torch.from_numpy(train.event(k)[sample]) for k in OUTCOMES}
    aux_raw = np.stack([train.tab["bmd_t"], train.tab["micro_z"]], 1).astype(np.float64)
    aux_std = (aux_raw - aux_raw.mean(0)) / aux_raw.std(0)
    aux = torch.from_numpy(aux_std[sample].astype(np.float32))
    n, bs, epochs = len(sample), int(cfg["batch_size"]), int(cfg["epochs"])
    opt = torch.optim.AdamW(m.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = epochs * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps, pct_start=0.2)
    t0 = _time.time()
    for ep in range(epochs):
        m.train()
        perm = torch.randperm(n, generator=gen)
        tot = {"cox": 0.0, "aux": 0.0}
        for i in range(0, n, bs):
            b = perm[i:i + bs]
            if len(b) < 8:
                continue
            xb = _augment(x[b], gen, int(cfg.get("shift", 0)), float(cfg.get("gain", 0.0)))
            eta, _, a = m(xb, clin[b])
            lc = sum(cox_loss(eta[:, j], tt[k][b], ee[k][b]) for j, k in enumerate(OUTCOMES))
            la = F.mse_loss(a, aux[b])
            loss = lc + cfg["aux_weight"] * la
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot["cox"] += float(lc) * len(b) / n
            tot["aux"] += float(la) * len(b) / n
        log.info("member seed %d epoch %d/%d cox %.4f aux %.4f (%.0f s)", seed, ep + 1, epochs, tot["cox"],
                 tot["aux"], _time.time() - t0)
    recalibrate_bn(m, x, bs)
    m.eval()
    if checkpoint:
        torch.save(m.state_dict(), checkpoint)
    return m


@torch.no_grad()
def recalibrate_bn(m: torch.nn.Module, x: torch.Tensor, bs: int) -> None:
    """Replaces the BatchNorm running statistics (an exponential average over the last steps, stale when the weights
    were still moving) by exact averages over the training images with the final weights. Keeps the frozen features
    well scaled, which matters for the head refit and for float32 agreement between PyTorch and ONNX Runtime."""
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                      # cumulative moving average
    m.train()
    for i in range(0, len(x), bs):
        m.backbone(x[i:i + bs])
    for bn in bns:
        bn.momentum = 0.1
    m.eval()


@torch.no_grad()
def pooled_features(backbone: torch.nn.Module, images: np.ndarray, batch: int = 256, mean_map: bool = False):
    """Globally pooled features [N,C] (float64); with ``mean_map`` also the mean feature map [C,h,w] over images."""
    backbone.eval()
    out, acc = [], None
    for i in range(0, len(images), batch):
        f = backbone(torch.from_numpy(images[i:i + batch][:, None]))
        out.append(f.mean(dim=(2, 3)).numpy())
        if mean_map:
            s = f.double().sum(dim=0).numpy()
            acc = s if acc is None else acc + s
    z = np.concatenate(out).astype(np.float64)
    return (z, acc / len(images)) if mean_map else z


def refit_head(z_tr: np.ndarray, clin_tr: np.ndarray | None, t_tr, e_tr, z_va, clin_va, t_va, e_va,
               l2_grid: list[float]) -> dict:
    """Full-batch ridge Cox on standardised frozen features (+ an unpenalised clinical term when ``clin`` is given).

    The ridge strength is the one with the best validation partial likelihood. Returns weights on the ORIGINAL
    feature scale: eta = z . w + beta * clin + bias (bias centres eta on the training rows)."""
    mu, sd = z_tr.mean(0), z_tr.std(0) + 1e-8
    zs_tr, zs_va = (z_tr - mu) / sd, (z_va - mu) / sd
    use_clin = clin_tr is not None
    x_tr = np.column_stack([zs_tr, clin_tr]) if use_clin else zs_tr
    x_va = np.column_stack([zs_va, clin_va]) if use_clin else zs_va
    best = None
    for l2 in l2_grid:
        pen = np.full(x_tr.shape[1], l2)
        if use_clin:
            pen[-1] = 0.0
        b = fit_cox(x_tr, t_tr, e_tr, pen)
        pl = partial_loglik(x_va @ b, t_va, e_va)
        if best is None or pl > best[0]:
            best = (pl, l2, b)
    _, l2, b = best
    w = b[:z_tr.shape[1]] / sd
    beta = float(b[-1]) if use_clin else 0.0
    eta_tr = z_tr @ w + (beta * clin_tr if use_clin else 0.0)
    return {"w": w, "beta": beta, "bias": float(-eta_tr.mean()), "l2": l2}
