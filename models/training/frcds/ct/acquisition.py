"""CT acquisition: what the scanner and protocol do to the phantom (kept apart from the anatomy).

``sample_acquisition`` draws a protocol — abdomen/pelvis (field T10 … below L5) or chest (field ends between the
T12 mid-body and the L1 inferior end plate, so L1 may be partly or wholly missing), slice thickness 0.625–5 mm,
pixel spacing 0.6–0.9 mm (display field ÷ 512), soft or bone kernel, non-contrast or portal-venous phase (the phase
recorded in the header or not), vendor A (signed int16, padding outside the reconstruction circle) or vendor B
(unsigned uint16), a patient rotation on the table. ``acquire`` voxelises the phantom on that grid and applies:

- slice sensitivity: the average of sub-slices across the nominal thickness (so a 5 mm slice blurs end plates);
- kernel: in-plane Gaussian blur (soft σ 0.9 mm, bone σ 0.35 mm) and noise whose SD scales with 1/√thickness
  (soft 11 HU, smoothed texture; bone 32 HU, white; both at 2.5 mm), see ``_add_noise``;
- portal-venous phase: +130–190 HU in the aorta/IVC and +10 HU (SD 4) in trabecular bone (the literature's
  average rise in L1 attenuation);
- spinal hardware (from the anatomy) rendered at ``METAL_HU`` (> 3000 HU).

The volume is returned in HU (float32, slices superior → inferior) with its grid, so a DRR or another writer can
use it without DICOM.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .phantom import Anatomy, Grid, render

METAL_HU = 3500.0
KERNEL = {"soft": {"sigma_mm": 0.9, "noise_hu": 11.0}, "bone": {"sigma_mm": 0.35, "noise_hu": 32.0}}
THICKNESSES = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
VENDORS = {
    "A": {"manufacturer": "Vendor A Medical", "model": "VA CT 64", "signed": True, "padding": -2000},
    "B": {"manufacturer": "Vendor B Healthcare", "model": "VB Force", "signed": False, "padding": None},
}


@dataclass(frozen=True)
class CTAcquisition:
    vendor: str                 # 'A' | 'B'
    protocol: str               # 'abdomen' | 'chest'
    slice_thickness: float      # mm; slices are contiguous (spacing = thickness)
    pixel_spacing: float        # mm
    matrix: int                 # rows = columns
    kernel: str                 # 'soft' | 'bone'
    phase: str                  # 'non-contrast' | 'portal-venous'
    phase_recorded: bool        # ContrastBolusAgent written in the header
    rotation_deg: float         # patient rotation about the spine's long axis
    z_top: float                # field of the scan (mm, patient z)
    z_bottom: float
    kvp: float = 120.0
    vessel_enhance_hu: float = 0.0
    trab_enhance_hu: float = 0.0

    def truth(self) -> dict:
        return asdict(self)


def sample_acquisition(rng: np.random.Generator, an: Anatomy, *, size: str = "full") -> CTAcquisition:
    """Draws a protocol for ``an``. ``size='test'`` keeps the physics but uses a coarse 128-matrix, 5 mm grid."""
    vendor = "A" if rng.random() < 0.5 else "B"
    protocol = "chest" if rng.random() < 0.3 else "abdomen"
    if size == "test":
        thk, matrix = 5.0, 128
        ps = float(rng.uniform(3.0, 3.6))
    else:
        thk = float(rng.choice(THICKNESSES, p=[0.10, 0.15, 0.20, 0.10, 0.15, 0.10, 0.20]))
        matrix = 512
        ps = float(rng.uniform(0.6, 0.9))
    kernel = "bone" if rng.random() < 0.3 else "soft"
    pv = protocol == "abdomen" and rng.random() < 0.6 or protocol == "chest" and rng.random() < 0.3
    t12, l1 = an.level("T12"), an.level("L1")
    if protocol == "chest":
        top = an.z_top + float(rng.uniform(0, 20))
        bottom = float(rng.uniform(l1.z_mid - l1.h_normal / 2, t12.z_mid))
    else:
        top = an.z_top + float(rng.uniform(-5, 15))
        bottom = an.z_bottom - float(rng.uniform(0, 20))
    return CTAcquisition(
        vendor=vendor, protocol=protocol, slice_thickness=thk, pixel_spacing=ps, matrix=matrix, kernel=kernel,
        phase="portal-venous" if pv else "non-contrast", phase_recorded=bool(rng.random() < 0.7),
        rotation_deg=float(rng.normal(0, 3.0)), z_top=top, z_bottom=bottom,
        vessel_enhance_hu=float(rng.uniform(130, 190)) if pv else 0.0,
        trab_enhance_hu=float(rng.normal(10.0, 4.0)) if pv else 0.0)


@dataclass
class CTVolume:
    hu: np.ndarray              # float32 (nz, ny, nx), slices ordered superior → inferior
    grid: Grid                  # grid.z descending, matching hu
    acq: CTAcquisition
    clean: np.ndarray | None    # the noise-free, unblurred point-sampled phantom on the same grid (truth)


def grid_for(an: Anatomy, acq: CTAcquisition) -> Grid:
    """Contiguous slices over the scan field, the reconstruction field centred on the body."""
    n = max(1, int(math.floor((acq.z_top - acq.z_bottom) / acq.slice_thickness)))
    z = acq.z_top - acq.slice_thickness * (0.5 + np.arange(n))
    half = acq.pixel_spacing * (acq.matrix - 1) / 2
    return Grid(x0=-half, y0=an.body_y - half, dx=acq.pixel_spacing, dy=acq.pixel_spacing, nx=acq.matrix,
                ny=acq.matrix, z=z.astype(np.float64))


def _add_noise(vol: np.ndarray, rng: np.random.Generator, sd: float, kernel: str) -> None:
    """Quantum noise of SD ``sd``: a pool of up to 12 independent planes, each slice one of them at a random circular
    shift and flip. Drawing 65 M normal deviates for a full volume would dominate the build time; slices stay
    independent to the eye and in any ROI statistic. The soft kernel's noise is smoother (correlated over ~1 pixel),
    the bone kernel's white."""
    nz, ny, nx = vol.shape
    pool = rng.standard_normal((min(nz, 12), ny, nx), dtype=np.float32)
    if kernel == "soft":
        gaussian_filter(pool, sigma=(0, 0.8, 0.8), output=pool)
    pool *= sd / float(pool.std())
    picks = rng.integers(0, pool.shape[0], nz)
    sy, sx = rng.integers(0, ny, nz), rng.integers(0, nx, nz)
    flips = rng.integers(0, 4, nz)
    for i in range(nz):
        p = np.roll(pool[picks[i]], (int(sy[i]), int(sx[i])), axis=(0, 1))
        if flips[i] & 1:
            p = p[::-1]
        vol[i] += p[:, ::-1] if flips[i] & 2 else p


def acquire(an: Anatomy, acq: CTAcquisition, rng: np.random.Generator, *, keep_clean: bool = True) -> CTVolume:
    grid = grid_for(an, acq)
    kw = {"rotation_deg": acq.rotation_deg, "vessel_hu": acq.vessel_enhance_hu,
          "trab_enhance_hu": acq.trab_enhance_hu, "metal_hu": METAL_HU}
    clean = render(an, grid, **kw)
    # slice sensitivity profile: sub-slices at ±thickness/3 averaged with the centre (thick slices only)
    if acq.slice_thickness > 1.5:
        off = acq.slice_thickness / 3.0
        acc = clean.copy()
        for d in (-off, off):
            acc += render(an, Grid(grid.x0, grid.y0, grid.dx, grid.dy, grid.nx, grid.ny, grid.z + d), **kw)
        vol = acc / 3.0
    else:
        vol = clean.copy()
    k = KERNEL[acq.kernel]
    sig_px = k["sigma_mm"] / acq.pixel_spacing
    if sig_px > 0.2:
        gaussian_filter(vol, sigma=(0, sig_px, sig_px), output=vol, mode="nearest")
    sd = k["noise_hu"] * math.sqrt(2.5 / acq.slice_thickness)
    _add_noise(vol, rng, sd, acq.kernel)
    np.clip(vol, -1024.0, None, out=vol)
    return CTVolume(vol, grid, acq, clean if keep_clean else None)
