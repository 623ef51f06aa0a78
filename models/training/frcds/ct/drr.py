"""Digitally reconstructed radiographs from a CT volume (parallel-beam projection through the HU grid).

The localizer of each study is the AP projection; the lateral projection is the starting point for a synthetic
lateral spine radiograph (vertebral morphometry on radiographs) from the same patient's volume. HU are converted to
linear attenuation at an effective ~70 keV, μ = μ_water · (1 + HU/1000) with μ_water = 0.0193 /mm, and summed along
the beam; air outside the body adds nothing.
"""
from __future__ import annotations

import numpy as np

from .phantom import Grid

MU_WATER_PER_MM = 0.0193


def line_integral(hu: np.ndarray, grid: Grid, view: str) -> tuple[np.ndarray, tuple[float, float]]:
    """∫μ dl along the beam for ``view`` 'ap' (beam along y) or 'lateral' (beam along x).

    ``hu`` is (nz, ny, nx) on ``grid``; returns the (nz, n_other) image, superior row first, and its pixel spacing
    (row = slice spacing, column = in-plane spacing) in mm."""
    mu = np.clip(1.0 + hu / 1000.0, 0.0, None) * MU_WATER_PER_MM
    if view == "ap":
        img, step, col = mu.sum(axis=1) * grid.dy, grid.dy, grid.dx
    elif view == "lateral":
        img, step, col = mu.sum(axis=2) * grid.dx, grid.dx, grid.dy
    else:
        raise ValueError(f"unknown view {view!r}")
    z = np.asarray(grid.z, float)
    dz = float(abs(z[1] - z[0])) if z.size > 1 else step
    return img.astype(np.float32), (dz, col)
