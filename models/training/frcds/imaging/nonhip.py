"""Radiographs that are NOT AP hips, for out-of-distribution tests (issue 3, item 5: "images that are not hip
radiographs (make a few kinds)").

Same detector and processing chain as the hip phantom (site vendor, look-up table, noise, collimation, marker,
DICOM attributes), different bodies: chest PA, knee AP, hand PA, abdomen AP, plus two failed images: pure noise and
a blank (unexposed) field. Anatomy is drawn with the hip phantom's primitives (projected tubes, smooth unions,
elliptic soft tissue); it is schematic, but each kind has the gross structures that make it recognisable. The
signal mask is all False and ``should_exclude`` is True. BodyPartExamined is the true part (CHEST, KNEE, HAND,
ABDOMEN) except for the failed images, which claim to be HIPs, as a mislabelled study would.
"""

from __future__ import annotations

import math

import numpy as np

from .acquisition import Acquisition, sample_acquisition
from .phantom import F32, MU_BONE, MU_MUSCLE, RenderedImage, _bank_window, _bterm, _finish
from .raster import Frame, SmoothUnion, tube

NON_HIP_KINDS = ("chest_pa", "knee_ap", "hand_pa", "abdomen_ap", "noise", "blank")
_BODY = {"chest_pa": ("CHEST", "PA"), "knee_ap": ("KNEE", "AP"), "hand_pa": ("HAND", "PA"),
         "abdomen_ap": ("ABDOMEN", "AP"), "noise": ("HIP", "AP"), "blank": ("HIP", "AP")}


def _ellipse_chord(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float, depth: float
                   ) -> np.ndarray:
    """Path length through an ellipsoid-like body: depth * sqrt(1 - (dx/a)^2 - (dy/b)^2)."""
    q = 1.0 - ((x - F32(cx)) / F32(a)) ** 2 - ((y - F32(cy)) / F32(b)) ** 2
    return F32(depth) * np.sqrt(np.maximum(q, 0.0))


def _bones(fr: Frame, parts: list[tuple], blend: float) -> np.ndarray:
    """Smooth union of tubes (a, b, ra, rb, k, cortex, trabecular density) -> cortical-equivalent mm."""
    h, w = fr.shape
    out = np.zeros((h, w), F32)
    if not parts:
        return out
    su = SmoothUnion((h, w), blend)
    dens_w = np.zeros((h, w), F32)
    for (a, b, ra, rb, k, c, dens) in parts:
        bx = fr.box(np.array([a, b]), max(ra, rb) + blend)
        if bx is None:
            continue
        x, y = fr.coords(bx)
        sl = (slice(bx[0], bx[1]), slice(bx[2], bx[3]))
        su.add(x, y, sl, a, b, ra, rb, k, c, c)
        np.maximum(dens_w[sl], F32(dens) * (tube(x, y, a, b, ra, rb, 1.0)[0] > 0), out=dens_w[sl])
    o, i, _ = su.chords()
    return (o - i) + i * np.maximum(dens_w, F32(0.12))


def _chest(x: np.ndarray, y: np.ndarray, fr: Frame, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    soft = _ellipse_chord(x, y, 0, 40, 190, 330, 230)
    lungs = (_ellipse_chord(x, y, -75, -10, 70, 140, 170) + _ellipse_chord(x, y, 80, -10, 75, 145, 170))
    heart = _ellipse_chord(x, y, 30, 60, 75, 65, 120)
    lsoft = MU_MUSCLE * np.maximum(soft - 0.9 * lungs + 0.6 * heart, 0.0)
    parts: list[tuple] = []
    for v in range(14):                                           # thoracic spine
        yc = -170 + v * 24
        parts.append(((-14, yc), (14, yc), 11, 11, 0.9, 1.2, 0.3))
    for side in (-1, 1):
        parts.append(((side * 20, -150), (side * 150, -175 + rng.normal(0, 4)), 6, 6, 0.8, 1.0, 0.2))   # clavicle
        for r in range(10):                                       # ribs: arcs from the spine, sweeping down
            y0 = -150 + r * 24
            pts = [(side * 18, y0), (side * 80, y0 - 18), (side * 140, y0 + 10), (side * 155, y0 + 50),
                   (side * 140, y0 + 85)]
            for a, b in zip(pts[:-1], pts[1:]):
                parts.append((a, b, 6, 6, 1.0, 1.2, 0.25))
    return lsoft, parts


def _knee(x: np.ndarray, y: np.ndarray, fr: Frame, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    soft = _ellipse_chord(x, y, 0, 0, 75, 600, 130)
    lsoft = MU_MUSCLE * soft
    parts = [
        ((0, -250), (0, -40), 16, 22, 1.0, 4.0, 0.15),             # femoral shaft widening to the metaphysis
        ((-22, -18), (-20, -5), 22, 20, 0.9, 1.2, 0.35),            # medial and lateral condyles
        ((22, -18), (20, -5), 22, 20, 0.9, 1.2, 0.35),
        ((-38, 22), (38, 22), 11, 11, 0.9, 1.2, 0.35),              # tibial plateau
        ((0, 30), (0, 250), 30, 15, 1.0, 3.5, 0.2),                 # tibia
        ((47, 45), (40, 250), 9, 6, 1.0, 2.0, 0.2),                 # fibula (lateral)
        ((0, -35), (0, -20), 22, 20, 0.35, 1.0, 0.3),               # patella, seen through the femur
    ]
    return lsoft, parts


def _hand(x: np.ndarray, y: np.ndarray, fr: Frame, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    parts: list[tuple] = []
    soft_parts: list[tuple] = []
    angles = [-38.0, -12.0, 0.0, 11.0, 22.0]
    lengths = [(45, 32, 0), (62, 38, 22), (65, 42, 25), (62, 40, 23), (55, 30, 20)]
    for f, (ang, (mc, p1, p2)) in enumerate(zip(angles, lengths)):
        base = np.array([-45 + f * 22.0, 40.0]) if f > 0 else np.array([-60.0, 70.0])
        d = np.array([math.sin(math.radians(ang)), -math.cos(math.radians(ang))])
        segs = [mc, p1] + ([p2] if p2 else []) + [18]
        p = base
        for i, L in enumerate(segs):
            q = p + d * L
            r = 5.0 if i == 0 else 4.2 - 0.5 * i
            parts.append((tuple(p), tuple(q), r, r * 0.8, 1.0, 1.2, 0.25))
            soft_parts.append((tuple(p), tuple(q), 10.0 if i else 14.0))
            p = q + d * 3.0
    for cx, cy in [(-40, 70), (-20, 68), (0, 70), (20, 72), (-30, 88), (-10, 90), (10, 90), (28, 88)]:
        parts.append(((cx, cy), (cx + 4, cy + 3), 8, 8, 0.9, 0.8, 0.3))     # carpal bones
    parts.append(((-25, 110), (-30, 220), 14, 12, 1.0, 2.5, 0.2))           # radius
    parts.append(((22, 112), (20, 220), 9, 8, 1.0, 2.0, 0.2))               # ulna
    soft = np.zeros(x.shape, F32)
    for a, b, r in soft_parts + [((-40, 60), (25, 60), 45.0), ((-5, 120), (-5, 230), 38.0)]:
        np.maximum(soft, tube(x, y, a, b, r, r, 0.8 if r < 20 else 0.4)[0], out=soft)
    return MU_MUSCLE * soft, parts


def _abdomen(x: np.ndarray, y: np.ndarray, fr: Frame, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    soft = _ellipse_chord(x, y, 0, 0, 180, 500, 250)
    lsoft = MU_MUSCLE * soft
    for _ in range(int(rng.integers(10, 22))):                     # bowel gas
        cx, cy, rr = rng.uniform(-130, 130), rng.uniform(-150, 120), rng.uniform(8, 30)
        lsoft = lsoft - F32(rng.uniform(0.2, 0.6)) * np.exp(-(((x - cx) / rr) ** 2 + ((y - cy) / rr) ** 2))
    parts: list[tuple] = []
    for v in range(6):                                            # lumbar vertebral bodies and pedicles
        yc = -170 + v * 42
        parts.append(((-20, yc), (20, yc), 15, 15, 0.9, 1.5, 0.3))
        parts.append(((-15, yc - 8), (-15, yc + 8), 5, 5, 0.8, 1.0, 0.3))
        parts.append(((15, yc - 8), (15, yc + 8), 5, 5, 0.8, 1.0, 0.3))
        parts.append(((-28, yc), (-55, yc + 4), 4, 3, 0.8, 0.8, 0.2))      # transverse processes
        parts.append(((28, yc), (55, yc + 4), 4, 3, 0.8, 0.8, 0.2))
    for side in (-1, 1):                                          # iliac wings at the bottom
        parts.append(((side * 40, 120), (side * 130, 90), 40, 30, 0.15, 2.0, 0.4))
    parts.append(((0, 95), (0, 190), 35, 20, 0.5, 1.5, 0.25))       # sacrum
    return lsoft.astype(F32), parts


def render_non_hip(kind: str, site: str, rng: np.random.Generator) -> RenderedImage:
    """A non-hip radiograph of ``kind`` (see ``NON_HIP_KINDS``) through site ``site``'s detector and processing."""
    if kind not in NON_HIP_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {NON_HIP_KINDS}")
    acq: Acquisition = sample_acquisition(site, rng, artefact=None)
    R, C, F = acq.rows, acq.cols, acq.render_factor
    gh, gw = (R + F - 1) // F, (C + F - 1) // F
    g_mm = acq.pixel_spacing_mm * F
    body, view = _BODY[kind]
    # small parts are imaged with a smaller field (larger on the detector); (scale, patient point at the centre)
    scale, centre = {"hand_pa": (1.3, (-10.0, 20.0)), "knee_ap": (1.35, (0.0, 0.0)),
                     "chest_pa": (0.85, (0.0, -10.0)), "abdomen_ap": (0.85, (0.0, 0.0))}.get(kind, (1.0, (0.0, 0.0)))
    s_ = acq.magnification * scale / g_mm
    th = math.radians(acq.rotation_deg * 0.5)
    c0 = Frame(s_, th, 1.0, 0.0, 0.0, (gh, gw)).to_grid(np.array([centre]))[0]
    fr = Frame(s_, th, 1.0, (gw - 1) / 2.0 + acq.shift_mm[0] / g_mm - c0[0],
               (gh - 1) / 2.0 + acq.shift_mm[1] / g_mm - c0[1], (gh, gw))
    maxv = (1 << acq.bits_stored) - 1
    if kind in ("noise", "blank"):
        if kind == "noise":
            px = rng.integers(0, maxv + 1, (R, C), dtype=np.uint16)
        else:
            level = int(rng.uniform(0.05, 0.95) * maxv)
            px = np.clip(level + np.rint(_bank_window(R, C, rng) * F32(0.002 * maxv)), 0, maxv).astype(np.uint16)
        wc, ww = float(maxv // 2), float(maxv)
    else:
        x, y = fr.coords((0, gh, 0, gw))
        lsoft, parts = {"chest_pa": _chest, "knee_ap": _knee, "hand_pa": _hand, "abdomen_ap": _abdomen}[kind](
            x, y, fr, rng)
        bone = _bones(fr, parts, blend=3.0)
        d = lsoft * F32(1.0 - 0.6 * acq.equalisation) + _bterm(bone, 0.3, MU_BONE)
        d += _bank_window(gh, gw, rng) * F32(acq.noise_quantum / math.sqrt(acq.dose_rel))
        px, wc, ww = _finish(d, acq, (gh, gw), g_mm, [v / g_mm for v in acq.collimation_mm], rng)
    info = acq.as_dict()
    info.update({"kind": kind})
    return RenderedImage(
        pixels=px, photometric=acq.photometric, bits_stored=acq.bits_stored, rescale_slope=1.0,
        rescale_intercept=0.0, window_center=wc, window_width=ww,
        pixel_spacing_mm=(acq.pixel_spacing_mm, acq.pixel_spacing_mm), laterality=acq.laterality,
        view_position=view, manufacturer=acq.manufacturer, model_name=acq.model_name,
        signal_mask=np.zeros((R, C), bool), artefact=f"non_hip:{kind}", should_exclude=True, acquisition=info,
        body_part=body,
    )
