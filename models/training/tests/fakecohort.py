"""Test helper: a small cohort in the exact contract-4 array format with a PLANTED image signal, so the model code
can be tested without the (slow) phantom renderer: a bright ellipse ("femoral neck") whose intensity follows the
latent BMD; the truth mask is the ellipse. Outcomes follow a known proportional-hazards model."""
from __future__ import annotations

import json
import os

import numpy as np

S = 128


def write_fake_cohort(directory: str, n: int, seed: int, site: str = "A", artefact_rate: float = 0.05) -> None:
    rng = np.random.default_rng(seed)
    age = rng.uniform(50, 90, n)
    sex = rng.integers(0, 2, n)
    qf_hip = 0.08 * (age - 70) + 0.4 * rng.standard_normal(n) - 0.3 * sex
    qf_mof = 0.05 * (age - 70) + 0.4 * rng.standard_normal(n) - 0.3 * sex
    bmd = -1.0 - 0.03 * (age - 70) + rng.standard_normal(n)
    micro = rng.standard_normal(n)
    true_hip = qf_hip - np.log(2.6) * bmd - np.log(1.3) * micro
    true_mof = qf_mof - np.log(1.6) * bmd - np.log(1.3) * micro
    lam = {"hip": 0.004, "mof": 0.012}
    years = np.arange(1, 11)
    out = {}
    cens = np.minimum(rng.uniform(3, 20, n), 10.0)
    for o, lp in (("hip", true_hip), ("mof", true_mof)):
        rate = lam[o] * np.exp(lp)
        t_ev = rng.exponential(1.0 / rate)
        out[f"time_{o}"] = np.minimum(t_ev, cens)
        out[f"event_{o}"] = (t_ev <= cens).astype(np.int8)
        out[f"true_lp_{o}"] = lp
        out[f"true_risk_{o}"] = 1.0 - np.exp(-rate[:, None] * years[None])
    yy, xx = np.mgrid[0:S, 0:S]
    images = np.empty((n, S, S), np.float32)
    masks = np.empty((n, S, S), np.float32)
    artefact = np.array([""] * n, dtype="<U16")
    excl = rng.random(n) < artefact_rate
    for i in range(n):
        cy, cx = 64 + rng.normal(0, 4), 60 + rng.normal(0, 4)
        ell = ((yy - cy) / 10.0) ** 2 + ((xx - cx) / 22.0) ** 2 <= 1.0
        img = 0.3 * rng.standard_normal((S, S)) + 0.5 * (((yy - 64) / 50.0) ** 2 + ((xx - 64) / 40) ** 2 <= 1)
        img = img + ell * (1.0 + 0.35 * bmd[i] + 0.15 * micro[i])
        if excl[i]:
            artefact[i] = "hardware"
            img[40:90, 50:60] = 6.0
        images[i] = img
        masks[i] = ell
    os.makedirs(os.path.join(directory, "arrays"), exist_ok=True)
    np.savez(os.path.join(directory, "arrays", "images.npz"), images=images, masks=masks,
             patient_index=np.arange(n, dtype=np.int32))
    np.savez(os.path.join(directory, "arrays", "tabular.npz"),
             patient_id=np.array([f"{site}{seed}-{i:05d}" for i in range(n)]), site=np.array([site] * n),
             sex=sex.astype(np.int8), age=age, qf_lp_hip=qf_hip, qf_lp_mof=qf_mof,
             qf_risk10_hip=100 * (1 - np.exp(-0.004 * np.exp(qf_hip) * 10)),
             qf_risk10_mof=100 * (1 - np.exp(-0.012 * np.exp(qf_mof) * 10)),
             bmd_t=bmd, micro_z=micro, artefact=artefact, should_exclude=excl, **out)
    with open(os.path.join(directory, "cohort.json"), "w") as f:
        json.dump({"patients": n, "fake": True}, f)
