"""Acquisition and site ("vendor") model for the synthetic AP hip radiographs (issue 2, items 4-5).

An :class:`Acquisition` holds everything about how one image was taken and processed that is not the body:
detector geometry, exposure, positioning, the vendor's image processing (look-up curve, equalisation, edge
enhancement, noise, resolution), collimation, the side marker and an optional artefact. It is drawn per image by
:func:`sample_acquisition` and recorded verbatim (``as_dict``) in the cohort's truth file.

Two synthetic vendors stand for two hospitals. Site A: a flat-panel DR system with a fine pitch, little noise, a
steep S-shaped look-up curve, the unexposed border left white. Site B: a different, older detector with a coarser
pitch, more and coarser-grained noise, extra blur (lower MTF), a gamma-type look-up curve with stronger edge
enhancement, an electronic black shutter over the unexposed border and more MONOCHROME1 output. Vendor C is a third
system no model is trained on, kept for site checks (a new hospital validating a model on its own images): a
mid-pitch panel with stronger dynamic-range compression, a flatter S-shaped look-up curve, noise and blur between
A's and B's, a black shutter and half of its output MONOCHROME1. The vendor names are plainly synthetic; the
parameter ranges are plausible, not copied from any product.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ARTEFACT_KINDS = ("hardware", "motion", "underexposure", "cropped_neck")


@dataclass(frozen=True)
class Vendor:
    """Fixed properties of one site's X-ray system and its image processing."""

    site: str
    manufacturer: str
    model_name: str
    pitches_mm: tuple[float, ...]       # detector pixel pitches of the site's detectors
    bits_choices: tuple[int, ...]       # BitsStored the site's systems write
    bits_p: tuple[float, ...]
    mono1_p: float                      # share of MONOCHROME1 output
    noise_quantum: float                # log-domain quantum noise s.d. per render-grid pixel at nominal dose
    noise_white: float                  # fine detector/electronic noise at native pitch (fraction of range)
    mtf_blur: float                     # extra blur of the detector (render-grid pixels, 0 = none)
    lut: str                            # 'sigmoid' | 'gamma'
    lut_contrast: tuple[float, float]   # range of look-up-curve steepness
    equalisation: tuple[float, float]   # share of the soft-tissue trend removed (dynamic-range compression)
    edge_gain: tuple[float, float]      # unsharp-mask gain on bone detail
    shutter: str                        # 'white' (unexposed border left as is) | 'black' (electronic shutter)
    artefact_rate: float                # share of images with an artefact when artefact='auto'


VENDORS: dict[str, Vendor] = {
    "A": Vendor(
        site="A", manufacturer="FRCDS Synthetic Imaging A", model_name="PhantomDR A-400",
        pitches_mm=(0.143, 0.148), bits_choices=(12, 14), bits_p=(0.75, 0.25), mono1_p=0.12,
        noise_quantum=0.010, noise_white=0.004, mtf_blur=0.0, lut="sigmoid", lut_contrast=(2.8, 3.5),
        equalisation=(0.75, 0.85), edge_gain=(0.35, 0.6), shutter="white", artefact_rate=0.04,
    ),
    "B": Vendor(
        site="B", manufacturer="FRCDS Synthetic Imaging B", model_name="PhantomCR B-70",
        pitches_mm=(0.175, 0.19), bits_choices=(15, 16), bits_p=(0.4, 0.6), mono1_p=0.35,
        noise_quantum=0.018, noise_white=0.007, mtf_blur=0.9, lut="gamma", lut_contrast=(1.6, 2.1),
        equalisation=(0.65, 0.75), edge_gain=(0.8, 1.2), shutter="black", artefact_rate=0.05,
    ),
    # Not used by training: the unseen vendor of a site check (see the module docstring).
    "C": Vendor(
        site="C", manufacturer="FRCDS Synthetic Imaging C", model_name="PhantomDR C-210",
        pitches_mm=(0.16, 0.165), bits_choices=(12, 16), bits_p=(0.5, 0.5), mono1_p=0.5,
        noise_quantum=0.014, noise_white=0.009, mtf_blur=0.5, lut="sigmoid", lut_contrast=(2.0, 2.5),
        equalisation=(0.86, 0.93), edge_gain=(0.5, 0.9), shutter="black", artefact_rate=0.05,
    ),
}


@dataclass(frozen=True)
class Acquisition:
    """How one image was acquired and processed (everything except the body). JSON-able via ``as_dict``."""

    site: str
    size: str                               # 'full' | 'demo'
    rows: int
    cols: int
    pixel_spacing_mm: float                 # square pixels; PixelSpacing = ImagerPixelSpacing (no calibration)
    render_factor: int                      # anatomy is rendered on a grid this many pixels coarser (MTF model)
    magnification: float                    # source-to-image / source-to-object distance ratio
    rotation_deg: float                     # in-plane rotation of the anatomy (positioning)
    shift_mm: tuple[float, float]           # (x, y) offset of the femoral-neck midpoint from the image centre
    laterality: str                         # 'R' | 'L'
    leg_rotation_deg: float                 # external (+) / internal (-) rotation of the leg
    photometric: str                        # 'MONOCHROME2' | 'MONOCHROME1'
    bits_stored: int
    kvp: float
    mas: float
    dose_rel: float                         # detector dose relative to the automatic exposure control target
    noise_quantum: float
    noise_white: float
    mtf_blur: float
    lut: str
    lut_contrast: float
    lut_shift: float                        # look-up-curve centre shift (fraction of the anatomy range)
    equalisation: float
    edge_gain: float
    shutter: str
    collimation_mm: tuple[float, float, float, float]   # inset of the exposed field: top, bottom, left, right
    collimation_angle_deg: float
    marker: str                             # 'R' | 'L' (the lead letter, equal to laterality)
    marker_corner: str                      # 'top' | 'bottom' (always on the lateral side)
    artefact: str | None
    artefact_params: dict[str, Any] = field(default_factory=dict)
    manufacturer: str = ""
    model_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def _choice(rng: np.random.Generator, items: tuple, p: tuple[float, ...] | None = None):
    return items[int(rng.choice(len(items), p=p))]


def sample_acquisition(site: str, rng: np.random.Generator, *, size: str = "full",
                       artefact: str | None | Literal["auto"] = "auto") -> Acquisition:
    """Draw one acquisition for ``site`` ('A' | 'B' | 'C').

    ``size='full'`` gives 2000-2500 px images at the detector pitch (0.14-0.19 mm); ``size='demo'`` the same field
    of view at 2.3x the pitch (about 900-1090 px) for the committed demo cohort. ``artefact='auto'`` draws an
    artefact for a few percent of images; ``None`` forces none; a kind from ``ARTEFACT_KINDS`` forces that kind.
    The number of draws from ``rng`` does not depend on the outcome of earlier draws, so changing one parameter's
    distribution does not reshuffle the others.
    """
    if site not in VENDORS:
        raise ValueError(f"unknown site {site!r}; expected one of {sorted(VENDORS)}")
    if size not in ("full", "demo"):
        raise ValueError(f"unknown size {size!r}; expected 'full' or 'demo'")
    if artefact not in ("auto", None) and artefact not in ARTEFACT_KINDS:
        raise ValueError(f"unknown artefact {artefact!r}; expected 'auto', None or one of {ARTEFACT_KINDS}")
    v = VENDORS[site]
    u = rng.random(40)   # fixed block of uniforms: one per decision, in a fixed order

    pitch = v.pitches_mm[int(u[0] * len(v.pitches_mm))]
    # exported image size (portrait-ish, cropped to about the collimated field): 2100-2500 x 2000-2400 pixels at
    # the detector pitch, i.e. 300-370 mm (site A) or 370-475 mm (site B) fields; 'demo' keeps the field and uses a
    # 2.3x coarser pitch (about 900-1090 pixels) so that the committed demo cohort stays small
    rows_full = 2100 + 2 * int(200 * u[1])
    cols_full = 2000 + 2 * int(200 * u[2])
    if size == "full":
        spacing, rows, cols, render_factor = pitch, rows_full, cols_full, 2
    else:
        spacing = round(pitch * 2.3, 4)
        rows = 2 * int(round(rows_full * pitch / spacing / 2.0))
        cols = 2 * int(round(cols_full * pitch / spacing / 2.0))
        render_factor = 1

    laterality = "R" if u[3] < 0.5 else "L"
    photometric = "MONOCHROME1" if u[4] < v.mono1_p else "MONOCHROME2"
    bits = int(_choice(rng, v.bits_choices, v.bits_p))

    magnification = 1.10 + 0.16 * u[5]
    rotation = -10.0 + 20.0 * u[6]
    shift = (float(-18.0 + 36.0 * u[7]), float(-18.0 + 36.0 * u[8]))
    leg_rotation = float(-10.0 + 30.0 * u[9])        # many elderly patients lie with the leg externally rotated

    kvp = 70.0 + 15.0 * u[10]
    mas = 8.0 + 30.0 * u[11]
    dose_rel = float(np.exp(0.25 * (u[12] * 2.0 - 1.0) * 1.7))

    def span(r: tuple[float, float], x: float) -> float:
        return float(r[0] + (r[1] - r[0]) * x)

    lut_contrast = span(v.lut_contrast, u[13])
    lut_shift = float(-0.06 + 0.12 * u[14])
    equalisation = span(v.equalisation, u[15])
    edge_gain = span(v.edge_gain, u[16])
    noise_q = v.noise_quantum * (0.85 + 0.3 * u[17])

    # collimation: inset of the exposed field from each image edge (mm); sometimes none on a side
    coll = tuple(float(0.0 if u[18 + i] < 0.25 else 4.0 + 30.0 * u[22 + i]) for i in range(4))
    coll_angle = float(-2.0 + 4.0 * u[26]) if u[27] < 0.5 else 0.0
    marker_corner = "top" if u[28] < 0.75 else "bottom"

    if artefact == "auto":
        kind: str | None = None
        if u[29] < v.artefact_rate:
            kind = ARTEFACT_KINDS[int(u[30] * len(ARTEFACT_KINDS))]
    else:
        kind = artefact
    params: dict[str, Any] = {}
    if kind == "hardware":
        params = {"device": "dynamic_hip_screw" if u[31] < 0.6 else "cannulated_screws"}
    elif kind == "motion":
        params = {"blur_mm": float(3.0 + 6.0 * u[31]), "angle_deg": float(360.0 * u[32])}
    elif kind == "underexposure":
        dose_rel = float(0.04 + 0.05 * u[31])
        params = {"dose_rel": dose_rel}
    elif kind == "cropped_neck":
        params = {"edge": "medial" if u[31] < 0.5 else "superior", "cut_fraction": float(0.3 + 0.4 * u[32])}

    return Acquisition(
        site=site, size=size, rows=rows, cols=cols, pixel_spacing_mm=float(spacing), render_factor=render_factor,
        magnification=float(magnification), rotation_deg=float(rotation), shift_mm=shift, laterality=laterality,
        leg_rotation_deg=leg_rotation, photometric=photometric, bits_stored=bits, kvp=float(kvp), mas=float(mas),
        dose_rel=dose_rel, noise_quantum=float(noise_q), noise_white=v.noise_white, mtf_blur=v.mtf_blur,
        lut=v.lut, lut_contrast=lut_contrast, lut_shift=lut_shift, equalisation=equalisation, edge_gain=edge_gain,
        shutter=v.shutter, collimation_mm=coll, collimation_angle_deg=coll_angle, marker=laterality,
        marker_corner=marker_corner, artefact=kind, artefact_params=params,
        manufacturer=v.manufacturer, model_name=v.model_name,
    )
