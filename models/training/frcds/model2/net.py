"""hip-xray-v2 network: the v1 backbone with a survival head (training signal) and a femoral-neck T-score head that
gives a Gaussian predictive mean and sd; and the exported ensemble graph of the v2 contract.

Exported graph, per member m and outcome k (hip 0, MOF 1):
    base_log_hazard[b,m,k] = beta_mk * clinical_k + w_mk . GAP(F_m) + b_mk     (w = 0 without a residual image term)
    tscore[b,m] = [u_m . GAP(F_m) + c_m, softplus(v_m . GAP(F_m) + d_m) + SD_FLOOR]  (RAW, before calibration)
The service adds gamma_mk * T over the calibrated T-score mixture. Because the calibrated mean is linear in GAP(F),
the image part of the expected log-hazard, gamma_mk * slope * u_m . GAP(F) + w_mk . GAP(F), is linear in the pooled
features, so its CAM is an exact Grad-CAM (as in v1); the graph exports it relative to the training-mean map.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from frcds.model.net import N_QUALITY, Backbone, quality_stats

SD_FLOOR = 0.05
#: names of the exported graph's outputs, in order (v2 contract)
OUTPUTS = ("base_log_hazard", "tscore", "cam", "ood_distance")


class Member2(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        c = self.backbone.channels
        self.head = nn.Linear(c, 2)                     # survival head used as a training signal (Cox loss)
        self.beta = nn.Parameter(torch.ones(2))
        self.tscore = nn.Linear(c, 2)                   # raw T-score mean and pre-softplus sd

    def forward(self, x: torch.Tensor, clinical: torch.Tensor):
        z = self.backbone(x).mean(dim=(2, 3))
        eta = self.head(z) + self.beta * clinical
        t = self.tscore(z)
        return eta, t[:, 0], F.softplus(t[:, 1]) + SD_FLOOR, z


class Graph2(nn.Module):
    """image [B,1,S,S], clinical [B,2] -> base_log_hazard [B,M,2], tscore [B,M,2], cam [B,2,h,w], ood_distance [B]."""

    def __init__(self, members: list[Member2], quality: bool = False):
        super().__init__()
        self.backbones = nn.ModuleList([m.backbone for m in members])
        self.quality = quality
        m_count, c = len(members), members[0].backbone.channels
        d = m_count * c + (N_QUALITY if quality else 0)
        self.register_buffer("w", torch.zeros(m_count, 2, c))
        self.register_buffer("beta", torch.zeros(m_count, 2))
        self.register_buffer("bias", torch.zeros(m_count, 2))
        self.register_buffer("t_w", torch.stack([m.tscore.weight.detach().clone() for m in members]))   # [M,2,C]
        self.register_buffer("t_b", torch.stack([m.tscore.bias.detach().clone() for m in members]))     # [M,2]
        self.register_buffer("cam_w", torch.zeros(m_count, 2, c))
        self.register_buffer("cam_reference", torch.zeros(2, 1, 1))
        self.register_buffer("ood_mean", torch.zeros(d))
        self.register_buffer("ood_whiten", torch.eye(d))

    def set_survival(self, w, beta, bias, cam_w) -> None:
        for name, v in (("w", w), ("beta", beta), ("bias", bias), ("cam_w", cam_w)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(v), dtype=torch.float32))

    def set_cam_reference(self, ref) -> None:
        self.cam_reference = torch.as_tensor(np.asarray(ref), dtype=torch.float32).clone()

    def set_ood(self, mean, precision) -> None:
        self.ood_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        whiten = np.linalg.cholesky(np.asarray(precision, dtype=np.float64))
        self.ood_whiten.copy_(torch.as_tensor(whiten, dtype=torch.float32))

    def forward(self, image: torch.Tensor, clinical: torch.Tensor):
        bases, ts, cams, zs = [], [], [], []
        for m, bb in enumerate(self.backbones):
            fmap = bb(image)
            z = fmap.mean(dim=(2, 3))
            zs.append(z)
            bases.append(z @ self.w[m].t() + self.beta[m] * clinical + self.bias[m])
            t = z @ self.t_w[m].t() + self.t_b[m]
            ts.append(torch.stack([t[:, 0], F.softplus(t[:, 1]) + SD_FLOOR], dim=1))
            cams.append(torch.einsum("bchw,kc->bkhw", fmap, self.cam_w[m]))
        base = torch.stack(bases, dim=1)
        tscore = torch.stack(ts, dim=1)
        cam = torch.relu(torch.stack(cams, dim=0).mean(dim=0) - self.cam_reference)
        if self.quality:
            zs.append(quality_stats(image))
        y = (torch.cat(zs, dim=1) - self.ood_mean) @ self.ood_whiten
        return base, tscore, cam, torch.sqrt((y * y).sum(dim=1))


@torch.no_grad()
def member_outputs(member: Member2, images: np.ndarray, batch: int = 256, mean_map: bool = False):
    """Pooled features z [N,C] (float64), raw T mean [N], raw T sd [N]; with ``mean_map`` also the mean feature map."""
    member.eval()
    zs, mus, sds, acc = [], [], [], None
    for i in range(0, len(images), batch):
        f = member.backbone(torch.from_numpy(images[i:i + batch][:, None]))
        z = f.mean(dim=(2, 3))
        t = member.tscore(z)
        zs.append(z.numpy()), mus.append(t[:, 0].numpy()), sds.append((F.softplus(t[:, 1]) + SD_FLOOR).numpy())
        if mean_map:
            s = f.double().sum(dim=0).numpy()
            acc = s if acc is None else acc + s
    out = (np.concatenate(zs).astype(np.float64), np.concatenate(mus).astype(np.float64),
           np.concatenate(sds).astype(np.float64))
    return out + (acc / len(images),) if mean_map else out
