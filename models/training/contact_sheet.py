"""Contact sheet of the hip radiograph phantom across BMD deciles -> docs/contact-sheet.png (issue 2, item 4).

Rows 1-3: one subject and one acquisition (site A) rendered at ten femoral-neck T-scores (the deciles of the
cohort's T-score distribution for women aged 65-85, roughly N(-1.6, 1.1)): the whole image as displayed with its
window, the proximal femur at full resolution, and the 128 x 128 model input (the preprocessing recipe).
Row 4: random acquisitions, both sites, artefact cases. Row 5: the non-hip images used for out-of-distribution tests.

Usage: sh models/training/run models/training/contact_sheet.py [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from frcds.imaging import PhantomSubject, render_hip, sample_acquisition
from frcds.imaging.phantom import RenderedImage
from frcds.preprocess import preprocess_mask, preprocess_pixels

TILE = 240
DECILES_T = [-3.4, -2.8, -2.4, -2.0, -1.7, -1.4, -1.1, -0.8, -0.4, 0.2]


def display(im: RenderedImage) -> np.ndarray:
    """Stored pixels -> 0..1 as a viewer shows them (VOI window, then MONOCHROME1 inversion)."""
    p = im.pixels.astype(np.float32)
    v = np.clip((p - (im.window_center - im.window_width / 2.0)) / im.window_width, 0.0, 1.0)
    return 1.0 - v if im.photometric == "MONOCHROME1" else v


def tile(a: np.ndarray, size: int = TILE) -> Image.Image:
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    img.thumbnail((size, size), Image.LANCZOS)
    out = Image.new("L", (size, size), 0)
    out.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return out


def femur_crop(im: RenderedImage, half_mm: float = 50.0) -> np.ndarray:
    """Proximal femur (head to lesser trochanter) at full resolution."""
    v = display(im)
    r, c = np.nonzero(im.signal_mask)
    if len(r) == 0:
        return v
    h = int(half_mm / im.pixel_spacing_mm[0])
    medial = 1 if im.laterality == "R" else -1           # the head lies medial of the neck/trochanter mask
    cy = int(np.percentile(r, 3))
    cx = int(np.median(c)) + medial * int(22.0 / im.pixel_spacing_mm[1])
    return v[max(cy - h, 0): cy + h, max(cx - h, 0): cx + h]


def model_input(im: RenderedImage, with_mask: bool = False) -> np.ndarray:
    x = preprocess_pixels(im.pixels, rescale_slope=im.rescale_slope, rescale_intercept=im.rescale_intercept,
                          photometric=im.photometric, laterality=im.laterality, pixel_spacing_mm=im.pixel_spacing_mm)
    x = np.clip(x, 0.0, 1.0)
    if with_mask:
        m = preprocess_mask(im.signal_mask, laterality=im.laterality, pixel_spacing_mm=im.pixel_spacing_mm)
        x = np.stack([x, x, x], axis=-1)
        x[..., 0] = np.clip(x[..., 0] + 0.35 * m, 0, 1)
    return x


def label(img: Image.Image, text: str) -> Image.Image:
    img = img.convert("RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, img.width, 13], fill=(0, 0, 0))
    d.text((3, 1), text, fill=(255, 255, 0))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "docs" / "contact-sheet.png"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows: list[list[Image.Image]] = [[], [], [], [], []]
    for t in DECILES_T:
        subj = PhantomSubject("female", 74.0, 26.0, 162.0, t, 0.6 * (t + 1.6) / 1.1)
        rng = np.random.default_rng(2026)          # same body and acquisition: only the bone differs
        acq = sample_acquisition("A", rng, artefact=None)
        im = render_hip(subj, acq, rng)
        rows[0].append(label(tile(display(im)), f"T {t:+.1f}"))
        rows[1].append(label(tile(femur_crop(im)), f"T {t:+.1f} femur"))
        x = model_input(im, with_mask=t == DECILES_T[0])
        img = Image.fromarray((x * 255).astype(np.uint8)).resize((TILE, TILE), Image.NEAREST)
        rows[2].append(label(img, "128px input" + (" + truth mask" if t == DECILES_T[0] else "")))
    cases = [("A", None, 11), ("A", None, 12), ("B", None, 13), ("B", None, 14), ("B", None, 15),
             ("A", "hardware", 16), ("A", "motion", 17), ("B", "underexposure", 18), ("A", "cropped_neck", 19),
             ("B", "hardware", 20)]
    for site, art, seed in cases:
        rng = np.random.default_rng(seed)
        subj = PhantomSubject("male" if seed % 2 else "female", 70.0 + seed, 20.0 + seed, 170.0, -1.0, 0.0)
        acq = sample_acquisition(site, rng, artefact=art)
        im = render_hip(subj, acq, rng)
        rows[3].append(label(tile(display(im)), f"{site} {acq.laterality} {acq.photometric[-1]} {art or ''}"))
    try:
        from frcds.imaging.nonhip import NON_HIP_KINDS, render_non_hip
        for i, kind in enumerate(NON_HIP_KINDS[:10]):
            im = render_non_hip(kind, "A" if i % 2 == 0 else "B", np.random.default_rng(100 + i))
            rows[4].append(label(tile(display(im)), f"OOD {kind}"))
    except ImportError:
        rows.pop()
    ncol = max(len(r) for r in rows)
    sheet = Image.new("RGB", (ncol * TILE, len(rows) * TILE), (0, 0, 0))
    for i, row in enumerate(rows):
        for j, im_ in enumerate(row):
            sheet.paste(im_, (j * TILE, i * TILE))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
