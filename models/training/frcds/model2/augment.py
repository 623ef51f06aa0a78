"""Acquisition ("vendor") augmentation on preprocessed 128 px images.

What differs between X-ray systems (frcds/imaging/acquisition.py describes the synthetic vendors) and survives the
preprocessing (fixed 200 mm field, percentile normalisation): the look-up curve (S-shaped vs gamma-type, its
steepness and centre), dynamic-range compression (equalisation), edge enhancement or extra blur (MTF), the amount
and grain of noise, exposure/gain, and an electronic shutter or collimation edge entering the field. Each training
image gets a random draw of all of these, wide enough to cover plausible other systems, then the same 1st/99th
percentile normalisation as the preprocessing, so the network and the OOD statistics see "this anatomy on many
systems". The ranges stay well below what the quality review rejects (motion blur of 3-9 mm = 2-6 px here,
underexposure noise, hardware), so those remain unusual. No site-B image is used to choose them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from frcds import preprocess


def blur(x: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of x [B,1,S,S] (reflect padding), as weighted sums of shifted slices: a 1-channel
    conv2d is an order of magnitude slower on this CPU build."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    s = x.shape[-1]
    xp = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = sum(w * xp[..., :, i:i + s] for i, w in enumerate(k))
    yp = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return sum(w * yp[..., i:i + x.shape[-2], :] for i, w in enumerate(k))


def renormalise(x: torch.Tensor) -> torch.Tensor:
    """The preprocessing's percentile normalisation and clip, per image; the percentiles are taken on every other
    row and column (a quarter of the pixels), close enough for an augmentation and four times cheaper to sort."""
    sub = x[:, :, ::2, ::2].flatten(1)
    srt = sub.sort(dim=1).values
    n = sub.shape[1]
    scale = (n - 1) / (x.shape[-1] * x.shape[-2] - 1)
    lo = srt[:, int(round(preprocess.LO_INDEX * scale))][:, None, None, None]
    hi = srt[:, int(round(preprocess.HI_INDEX * scale))][:, None, None, None]
    d = torch.where(hi - lo < preprocess.MIN_RANGE, torch.ones_like(hi), hi - lo)
    return ((x - lo) / d).clamp(preprocess.CLIP_LO, preprocess.CLIP_HI)


def _u(b: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=gen)


def vendor_augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random acquisition transform of a batch x [B,1,S,S] of preprocessed images (values ~[0,1])."""
    if strength <= 0:
        return x
    b = x.shape[0]
    v = lambda t: t[:, None, None, None]
    s = strength
    # look-up curve: blend of a gamma curve and a re-centred sigmoid applied to the [0,1] part of the image
    u = x.clamp(0.0, 1.0)
    g = torch.exp(_u(b, -0.45 * s, 0.45 * s, gen))
    gam = u.clamp_min(1e-4) ** v(g)
    c = _u(b, 2.0, 7.0, gen)
    m = _u(b, 0.5 - 0.12 * s, 0.5 + 0.12 * s, gen)
    sig = torch.sigmoid(v(c) * (u - v(m)))
    s0, s1 = torch.sigmoid(v(c) * (0 - v(m))), torch.sigmoid(v(c) * (1 - v(m)))
    sig = (sig - s0) / (s1 - s0)
    w = v(_u(b, 0.0, 0.6 * s, gen))
    y = (1 - w) * gam + w * sig + (x - u)
    # dynamic-range compression / expansion: remove or add part of the low-frequency trend
    eq = v(_u(b, -0.2 * s, 0.25 * s, gen))
    low = F.interpolate(F.avg_pool2d(y, 16), size=y.shape[-2:], mode="bilinear", align_corners=False)
    y = y - eq * (low - low.mean(dim=(2, 3), keepdim=True))
    # resolution: extra blur, then edge enhancement (unsharp mask) of either sign
    y = y + v(_u(b, 0.0, 0.9 * s, gen)) * (blur(y, 1.0, 3) - y)
    eg = v(_u(b, -0.3 * s, 1.0 * s, gen))
    y = y + eg * (y - blur(y, 1.5, 4))
    # noise: fine (white) and coarse-grained (blurred) components
    nf = v(_u(b, 0.0, 0.02 * s, gen))
    nc = v(_u(b, 0.0, 0.02 * s, gen))
    coarse = blur(torch.randn(x.shape, generator=gen), 1.0, 3) * 2.0
    y = y + nf * torch.randn(x.shape, generator=gen) + nc * coarse
    # exposure / gain (the normalisation removes most of it; what remains is the clipped tails)
    y = y * v(_u(b, 0.9, 1.1, gen)) + v(_u(b, -0.05, 0.05, gen))
    # collimation / electronic shutter entering the field on some images: a dark or bright border band
    coll = torch.rand(b, generator=gen) < 0.3 * min(s, 1.0)
    if coll.any():
        sz = x.shape[-1]
        idx = torch.arange(sz)
        for i in torch.nonzero(coll).flatten().tolist():
            side = int(torch.randint(0, 4, (1,), generator=gen))
            width = int(torch.randint(2, 14, (1,), generator=gen))
            val = float(y[i].min()) if bool(torch.rand(1, generator=gen) < 0.5) else float(y[i].max())
            band = idx < width if side in (0, 2) else idx >= sz - width
            if side < 2:
                y[i, :, band, :] = val
            else:
                y[i, :, :, band] = val
    return renormalise(y)
