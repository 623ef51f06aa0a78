"""The network (issue 3, item 2) and the single exported ensemble graph (item 3).

Log-hazard per outcome k (hip, MOF):  eta_k = w_k . GAP(F) + beta_k * clinical_k + b_k (clinical_k: QFracture-2012 10-y risk on the cloglog scale).
Because eta is linear in globally average-pooled features, d eta / d F_c = w_c / (h*w) at every position, so
Grad-CAM equals CAM = ReLU(sum_c w_c F_c) exactly (platform-notes, "Grad-CAM without autograd"); the graph therefore
exports the CAM itself and needs no autograd at serve time.

Optionally the map is taken relative to a reference: ReLU(sum_c w_c (F_c - Fbar_c)) with Fbar the training-mean
feature map. Because eta is linear in F this is exactly Integrated Gradients at the feature layer with baseline Fbar
(gradient w_c/(h*w) times the difference), so its spatial mean before the ReLU is exactly eta_image(x) -
eta_image(reference): the map shows where THIS image raises the risk relative to the average training image,
instead of also painting features that are the same in every image (background, collimation) and cancel in the bias.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: (out_channels, stride) of each 3x3 conv-BN-ReLU block; total stride 8 -> 16x16 feature map at 128 px input.
BLOCKS = ((16, 2), (24, 2), (48, 1), (64, 2), (96, 1), (64, 1))


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    def __init__(self, blocks=BLOCKS):
        super().__init__()
        layers, cin = [], 1
        for cout, s in blocks:
            layers.append(_block(cin, cout, s))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.channels = cin
        self.stride = 1
        for _, s in blocks:
            self.stride *= s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Member(nn.Module):
    """One ensemble member: backbone, a linear survival head per outcome with a linear clinical term, and an auxiliary
    head (training only) regressing the DXA-type bone measurements of the training cohort."""

    def __init__(self, blocks=BLOCKS, n_aux: int = 2):
        super().__init__()
        self.backbone = Backbone(blocks)
        c = self.backbone.channels
        self.head = nn.Linear(c, 2)                       # w_k, b_k for k = hip, MOF
        self.beta = nn.Parameter(torch.ones(2))           # clinical coefficient per outcome (QFracture lp starts at 1)
        self.aux = nn.Linear(c, n_aux)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor, clinical: torch.Tensor):
        fmap = self.backbone(x)
        z = fmap.mean(dim=(2, 3))
        eta = self.head(z) + self.beta * clinical
        return eta, z, self.aux(z)


def quality_stats(image: torch.Tensor) -> torch.Tensor:
    """Image-quality statistics [B, 67] that join the pooled features in the OOD vector when enabled: an 8x8
    thumbnail (layout, exposure, hardware, cropping), the mean high-frequency residual (noise up, blur down) and the
    mean horizontal/vertical gradient magnitudes (blur, edges)."""
    thumb = F.avg_pool2d(image, 16).flatten(1)          # 128 px working size -> 8x8
    hf = (image - F.avg_pool2d(image, 3, 1, 1, count_include_pad=False)).abs().mean(dim=(1, 2, 3))
    gx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    gy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return torch.cat([thumb, hf[:, None], gx[:, None], gy[:, None]], dim=1)


N_QUALITY = 67


class EnsembleGraph(nn.Module):
    """The exported graph: image [B,1,S,S], clinical [B,2] -> log_hazard [B,M,2], cam [B,2,h,w], ood_distance [B].

    The heads are copied in after the full-batch refit (``set_heads``); the OOD statistics are the training mean and
    precision of the concatenated pooled features of all members (``set_ood``)."""

    def __init__(self, members: list[Member], quality: bool = False):
        super().__init__()
        self.backbones = nn.ModuleList([m.backbone for m in members])
        self.quality = quality
        m_count, c = len(members), members[0].backbone.channels
        d = m_count * c + (N_QUALITY if quality else 0)
        self.register_buffer("w", torch.zeros(m_count, 2, c))      # image weights per member and outcome
        self.register_buffer("beta", torch.zeros(m_count, 2))      # clinical coefficient
        self.register_buffer("bias", torch.zeros(m_count, 2))
        self.register_buffer("ood_mean", torch.zeros(d))
        self.register_buffer("ood_whiten", torch.eye(d))     # L with precision = L L^T
        self.register_buffer("cam_reference", torch.zeros(2, 1, 1))  # [2,h,w] once set; zero = plain CAM

    def set_heads(self, w, beta, bias) -> None:
        self.w.copy_(torch.as_tensor(w, dtype=torch.float32))
        self.beta.copy_(torch.as_tensor(beta, dtype=torch.float32))
        self.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def set_cam_reference(self, ref) -> None:
        """Reference map subtracted before the ReLU: the training-mean image-term map (zero for the plain CAM)."""
        self.cam_reference = torch.as_tensor(ref, dtype=torch.float32).clone()

    def set_ood(self, mean, precision) -> None:
        """d = ||(z - mean) L|| with precision = L L^T: a sum of squares is better conditioned in float32 than the
        quadratic form with the precision itself."""
        self.ood_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        whiten = np.linalg.cholesky(np.asarray(precision, dtype=np.float64))
        self.ood_whiten.copy_(torch.as_tensor(whiten, dtype=torch.float32))

    def forward(self, image: torch.Tensor, clinical: torch.Tensor):
        etas, cams, zs = [], [], []
        for m, bb in enumerate(self.backbones):
            fmap = bb(image)                                           # [B,C,h,w]
            z = fmap.mean(dim=(2, 3))                                  # [B,C]
            zs.append(z)
            etas.append(z @ self.w[m].t() + self.beta[m] * clinical + self.bias[m])       # [B,2]
            cams.append(torch.einsum("bchw,kc->bkhw", fmap, self.w[m]))                  # [B,2,h,w]
        log_hazard = torch.stack(etas, dim=1)                                            # [B,M,2]
        cam = torch.relu(torch.stack(cams, dim=0).mean(dim=0) - self.cam_reference)      # [B,2,h,w]
        if self.quality:
            zs.append(quality_stats(image))
        y = (torch.cat(zs, dim=1) - self.ood_mean) @ self.ood_whiten
        ood = torch.sqrt((y * y).sum(dim=1))                                             # [B]
        return log_hazard, cam, ood

    @torch.no_grad()
    def pooled(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled features [B,M,C] and feature maps [B,M,C,h,w] (evaluation helper; not exported)."""
        fm = torch.stack([bb(image) for bb in self.backbones], dim=1)
        return fm.mean(dim=(3, 4)), fm
