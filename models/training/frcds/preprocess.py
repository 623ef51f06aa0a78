"""THE preprocessing recipe: DICOM stored pixels -> the model's S x S float32 input (issue 3, item 1; contract 3).

Defined once here, written verbatim (``RECIPE``) into the model manifest, and reimplemented in TypeScript by the
service, so every step is chosen to be exactly reproducible there with IEEE double arithmetic:

1. Orientation: if ImageLaterality is 'L', mirror the columns (x' = cols - 1 - x) so every hip looks like a right
   hip (femur on the viewer's left). Any other laterality leaves the image as it is.
2. Crop/pad to a fixed physical field of view centred on the image: ``n_r = floor(FOV_MM / row_spacing + 0.5)``,
   ``n_c = floor(FOV_MM / col_spacing + 0.5)``, ``r0 = floor((rows - n_r) / 2)``, ``c0 = floor((cols - n_c) / 2)``
   (floor of the exact rational, also for negative numbers). Window pixel (i, j) is stored pixel (r0 + i, c0 + j);
   outside the image it takes the pad value P: the stored value of the image whose presentation value (step 4) is
   smallest, i.e. min(stored) when sign * RescaleSlope > 0, else max(stored).
3. Box averaging of the STORED values onto S x S bins with integer edges: row bin k covers window rows
   floor(k * n_r / S) .. floor((k + 1) * n_r / S) - 1 (integer arithmetic), likewise columns. The bin sum is an
   exact integer; mean = sum / (bin rows * bin cols) in float64.
4. Presentation value: v = sign * (RescaleSlope * mean + RescaleIntercept), with sign = -1 for MONOCHROME1 and +1
   for MONOCHROME2 (so bone is always high). Averaging before the (linear) rescale keeps the sums exact integers.
5. Normalisation: sort the S*S values ascending; lo = sorted[LO_INDEX], hi = sorted[HI_INDEX] (0-based);
   d = hi - lo, or 1.0 if hi - lo < MIN_RANGE; out = (v - lo) / d, clipped to [CLIP_LO, CLIP_HI].
6. Cast to float32 (round to nearest, ties to even: Math.fround in JavaScript).

The mask (``preprocess_mask``) goes through steps 1-3 with pad value 0 and no normalisation: each output value is
the fraction of its bin covered by the mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

S = 128
FOV_MM = 200.0
LO_INDEX = 163           # floor(0.01 * (S*S - 1))
HI_INDEX = 16220         # ceil(0.99 * (S*S - 1))
MIN_RANGE = 1e-6
CLIP_LO, CLIP_HI = -0.5, 1.5

RECIPE: dict[str, Any] = {
    "name": "frcds-hip-ap-v1",
    "output": {"shape": [S, S], "dtype": "float32", "layout": "row-major, row 0 = top of the image"},
    "arithmetic": "IEEE-754 float64 throughout; bin sums are exact integers; final cast to float32 "
                  "(round to nearest, ties to even)",
    "steps": [
        {"op": "orient", "rule": "if ImageLaterality == 'L': mirror columns (x' = cols-1-x); otherwise unchanged"},
        {"op": "crop_pad", "fov_mm": FOV_MM, "spacing": "PixelSpacing (0028,0030) [row, col], else "
         "ImagerPixelSpacing (0018,1164)",
         "window": "n_r = floor(fov_mm/row_spacing + 0.5); n_c = floor(fov_mm/col_spacing + 0.5); "
                   "r0 = floor((rows-n_r)/2); c0 = floor((cols-n_c)/2); window(i,j) = stored(r0+i, c0+j)",
         "pad_value": "stored value with the smallest presentation value: min(stored) if sign*RescaleSlope > 0 "
                      "else max(stored)"},
        {"op": "box_average", "size": S,
         "bins": "row bin k = [floor(k*n_r/S), floor((k+1)*n_r/S)), integer arithmetic; same for columns",
         "value": "mean of STORED values = exact integer sum / pixel count (float64)"},
        {"op": "rescale", "rule": "v = sign * (RescaleSlope*mean + RescaleIntercept); sign = -1 for MONOCHROME1, "
         "+1 for MONOCHROME2; slope 1 and intercept 0 when absent"},
        {"op": "normalise", "kind": "percentile", "sort": "ascending over all S*S values",
         "lo_index": LO_INDEX, "hi_index": HI_INDEX, "min_range": MIN_RANGE,
         "rule": "d = hi-lo if hi-lo >= min_range else 1.0; out = (v - lo) / d"},
        {"op": "clip", "lo": CLIP_LO, "hi": CLIP_HI},
        {"op": "cast", "dtype": "float32"},
    ],
    "mask": "steps orient, crop_pad (pad 0), box_average of a 0/1 mask -> fraction of each bin inside the mask",
    "constants": {"S": S, "FOV_MM": FOV_MM, "LO_INDEX": LO_INDEX, "HI_INDEX": HI_INDEX, "MIN_RANGE": MIN_RANGE,
                  "CLIP_LO": CLIP_LO, "CLIP_HI": CLIP_HI},
}


class PreprocessError(ValueError):
    """The image cannot be preprocessed (wrong shape, photometric interpretation, spacing...)."""


def _window(n_rows: int, n_cols: int, pixel_spacing_mm: tuple[float, float]) -> tuple[int, int, int, int]:
    sr, sc = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    if not (math.isfinite(sr) and math.isfinite(sc) and sr > 0 and sc > 0):
        raise PreprocessError(f"invalid pixel spacing {pixel_spacing_mm!r}")
    nr = int(math.floor(FOV_MM / sr + 0.5))
    nc = int(math.floor(FOV_MM / sc + 0.5))
    if nr < S or nc < S:
        raise PreprocessError(f"pixel spacing {pixel_spacing_mm!r} too coarse: the {FOV_MM} mm field has fewer "
                              f"than {S} pixels")
    return nr, nc, (n_rows - nr) // 2, (n_cols - nc) // 2


def _bin_sums(a: np.ndarray, nr: int, nc: int, r0: int, c0: int, pad: Any) -> np.ndarray:
    """Exact integer sums of the (nr x nc) window at (r0, c0) of ``a`` (padded with ``pad``) over S x S bins."""
    rows, cols = a.shape
    if r0 >= 0 and c0 >= 0 and r0 + nr <= rows and c0 + nc <= cols:
        w = a[r0:r0 + nr, c0:c0 + nc]
    else:
        w = np.full((nr, nc), pad() if callable(pad) else pad, dtype=np.int64)
        if a.dtype == np.bool_:
            a = a.view(np.uint8)
        sr0, sr1 = max(r0, 0), min(r0 + nr, rows)
        sc0, sc1 = max(c0, 0), min(c0 + nc, cols)
        if sr0 < sr1 and sc0 < sc1:
            w[sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = a[sr0:sr1, sc0:sc1]
    if w.dtype == np.bool_:
        w = w.view(np.uint8)
    re = (np.arange(S, dtype=np.int64) * nr) // S
    ce = (np.arange(S, dtype=np.int64) * nc) // S
    t = np.add.reduceat(w, ce, axis=1, dtype=np.int64)     # integer sums: exact, order-independent
    return np.add.reduceat(t, re, axis=0)


def _counts(nr: int, nc: int) -> np.ndarray:
    re = (np.arange(S + 1, dtype=np.int64) * nr) // S
    ce = (np.arange(S + 1, dtype=np.int64) * nc) // S
    return np.outer(np.diff(re), np.diff(ce))


def _check_2d(a: np.ndarray, what: str) -> None:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise PreprocessError(f"{what} must be a non-empty 2-D array")


def preprocess_pixels(stored: np.ndarray, *, rescale_slope: float, rescale_intercept: float, photometric: str,
                      laterality: str | None, pixel_spacing_mm: tuple[float, float]) -> np.ndarray:
    """Stored pixel values (as in PixelData) -> float32[S, S] model input, following ``RECIPE``."""
    _check_2d(stored, "stored pixels")
    if stored.dtype.kind not in "ui":
        raise PreprocessError(f"stored pixels must be integers, got {stored.dtype}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise PreprocessError(f"unsupported photometric interpretation {photometric!r}")
    slope, icpt = float(rescale_slope), float(rescale_intercept)
    if not (math.isfinite(slope) and math.isfinite(icpt)) or slope == 0.0:
        raise PreprocessError(f"invalid rescale slope/intercept {rescale_slope!r}/{rescale_intercept!r}")
    sign = -1.0 if photometric == "MONOCHROME1" else 1.0
    a = stored[:, ::-1] if laterality == "L" else stored
    nr, nc, r0, c0 = _window(a.shape[0], a.shape[1], pixel_spacing_mm)
    def pad() -> int:   # only evaluated when the window leaves the image
        return int(a.min()) if sign * slope > 0 else int(a.max())
    sums = _bin_sums(a, nr, nc, r0, c0, pad)
    mean = sums.astype(np.float64) / _counts(nr, nc).astype(np.float64)
    v = sign * (slope * mean + icpt)
    srt = np.sort(v, axis=None)
    lo, hi = float(srt[LO_INDEX]), float(srt[HI_INDEX])
    d = hi - lo if hi - lo >= MIN_RANGE else 1.0
    out = (v - lo) / d
    np.clip(out, CLIP_LO, CLIP_HI, out=out)
    return out.astype(np.float32)


def preprocess_mask(mask: np.ndarray, *, laterality: str | None, pixel_spacing_mm: tuple[float, float]
                    ) -> np.ndarray:
    """Boolean mask in image geometry -> float32[S, S] fraction of each bin inside the mask (same geometry)."""
    _check_2d(mask, "mask")
    a = mask[:, ::-1] if laterality == "L" else mask
    nr, nc, r0, c0 = _window(a.shape[0], a.shape[1], pixel_spacing_mm)
    sums = _bin_sums(a, nr, nc, r0, c0, 0)
    return (sums.astype(np.float64) / _counts(nr, nc).astype(np.float64)).astype(np.float32)


def dataset_inputs(ds: Any) -> dict[str, Any]:
    """The attributes the recipe reads from a pydicom Dataset (raises PreprocessError when one is unusable)."""
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise PreprocessError("only single-sample (grey-scale) images are supported")
    photometric = str(getattr(ds, "PhotometricInterpretation", ""))
    spacing = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    if spacing is None or len(spacing) != 2:
        raise PreprocessError("neither PixelSpacing nor ImagerPixelSpacing is present")
    lat = getattr(ds, "ImageLaterality", None) or getattr(ds, "Laterality", None)
    return {
        "rescale_slope": float(getattr(ds, "RescaleSlope", 1.0) or 1.0),
        "rescale_intercept": float(getattr(ds, "RescaleIntercept", 0.0) or 0.0),
        "photometric": photometric,
        "laterality": str(lat) if lat else None,
        "pixel_spacing_mm": (float(spacing[0]), float(spacing[1])),
    }


def preprocess_dataset(ds: Any) -> np.ndarray:
    """A pydicom Dataset (any transfer syntax pydicom can decode) -> float32[S, S] model input."""
    kw = dataset_inputs(ds)
    try:
        stored = ds.pixel_array
    except Exception as e:  # pydicom raises several types for missing or undecodable pixel data
        raise PreprocessError(f"cannot decode pixel data: {e}") from e
    if stored.ndim != 2:
        raise PreprocessError(f"expected one frame, got pixel array of shape {stored.shape}")
    return preprocess_pixels(stored, **kw)
