"""CT acquisition: protocol fields (chest CT ends at T12/L1), contrast phase, kernel noise and the spread of
protocols drawn."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.ndimage import gaussian_filter

from frcds.ct.acquisition import KERNEL, acquire, sample_acquisition
from frcds.ct.dicom import study_truth
from frcds.ct.drr import line_integral
from frcds.ct.phantom import sample_anatomy


def _patient(seed: int):
    rng = np.random.default_rng(seed)
    return rng, sample_anatomy(rng, t_score=-1.8, age=72, sex="female", hardware_p=0.0)


def test_protocol_spread():
    acqs = []
    for s in range(300):
        rng, an = _patient(s)
        acqs.append(sample_acquisition(rng, an))
    assert {a.vendor for a in acqs} == {"A", "B"} and {a.kernel for a in acqs} == {"soft", "bone"}
    assert {a.protocol for a in acqs} == {"chest", "abdomen"}
    assert all(0.625 <= a.slice_thickness <= 5.0 and 0.6 <= a.pixel_spacing <= 0.9 for a in acqs)
    pv = [a for a in acqs if a.phase == "portal-venous"]
    assert 0.2 < len(pv) / len(acqs) < 0.7 and any(a.phase_recorded for a in pv) and not all(a.phase_recorded
                                                                                          for a in pv)


def test_chest_field_ends_at_t12_l1():
    n = 0
    for s in range(60):
        rng, an = _patient(s)
        acq = sample_acquisition(rng, an, size="test")
        if acq.protocol != "chest":
            continue
        n += 1
        vol = acquire(an, acq, rng, keep_clean=True)
        lv = {x["label"]: x for x in study_truth(an, vol)["levels"]}
        assert lv["T11"]["in_field"] and not lv["L2"]["in_field"] and not lv["L5"]["in_field"]
        lo = vol.grid.z.min() - acq.slice_thickness / 2
        t12, l1 = an.level("T12"), an.level("L1")
        assert l1.z_mid - l1.h_normal / 2 - acq.slice_thickness <= lo <= t12.z_mid + acq.slice_thickness
    assert n >= 5


def test_portal_venous_enhancement():
    rng, an = _patient(2)
    base = dataclasses.replace(sample_acquisition(rng, an, size="test"), protocol="abdomen", z_top=an.z_top,
                               z_bottom=an.z_bottom)
    nc = dataclasses.replace(base, phase="non-contrast", vessel_enhance_hu=0.0, trab_enhance_hu=0.0)
    pv = dataclasses.replace(base, phase="portal-venous", vessel_enhance_hu=160.0, trab_enhance_hu=10.0)
    a = acquire(an, nc, np.random.default_rng(0)).clean
    b = acquire(an, pv, np.random.default_rng(0)).clean
    diff = b - a
    vals = set(np.unique(np.round(diff[diff != 0], 3)).tolist())
    # only trabecular bone (+10), the half-trabecular posterior elements and ribs (+5) and the vessels (+160) change
    assert vals == {5.0, 10.0, 160.0}, vals
    l1 = an.level("L1")
    roi_b = study_truth(an, acquire(an, pv, np.random.default_rng(0)))["l1_roi"]
    assert roi_b["true_hu"] == l1.trab_hu + 10.0


def test_kernel_noise_sd():
    rng, an = _patient(5)
    for kernel in ("soft", "bone"):
        acq = dataclasses.replace(sample_acquisition(rng, an, size="test"), kernel=kernel, slice_thickness=1.25,
                                  z_top=10.0, z_bottom=-10.0)
        vol = acquire(an, acq, np.random.default_rng(1))
        sig = KERNEL[kernel]["sigma_mm"] / acq.pixel_spacing
        ref = gaussian_filter(vol.clean, sigma=(0, sig, sig), mode="nearest") if sig > 0.2 else vol.clean
        noise = (vol.hu - ref)[vol.clean > -500]
        want = KERNEL[kernel]["noise_hu"] * math.sqrt(2.5 / 1.25)
        assert abs(float(noise.std()) / want - 1.0) < 0.1, (kernel, float(noise.std()), want)


def test_lateral_drr_shows_vertebrae_and_fracture():
    """The lateral projection (future lateral spine radiograph) of the same volume: a row through a vertebral body
    attenuates more than a row through the disc below it, and a wedge fracture leaves its anterior column shorter."""
    for s in range(300):
        rng = np.random.default_rng(s)
        # normal-ish BMD (an osteoporotic body can be no denser than a disc) and a lumbar level (no ribs in the beam)
        an = sample_anatomy(rng, t_score=-0.5, age=85, sex="female", hardware_p=0.0, scoliosis_p=0.0)
        wedge = [v for v in an.vertebrae if v.morphology == "wedge" and v.grade >= 2 and v.label[0] == "L"]
        if wedge:
            break
    v = wedge[0]
    acq = dataclasses.replace(sample_acquisition(rng, an, size="test"), slice_thickness=1.0, pixel_spacing=1.0,
                              matrix=300, z_top=an.z_top, z_bottom=an.z_bottom, rotation_deg=0.0)
    vol = acquire(an, acq, np.random.default_rng(0))
    img, (dz, dcol) = line_integral(vol.clean, vol.grid, "lateral")
    assert img.shape == (len(vol.grid.z), vol.grid.ny) and dz == 1.0 and dcol == 1.0
    _, ys = vol.grid.xy()
    z = vol.grid.z
    mid = int(np.argmin(np.abs(ys - v.y_c)))
    row_body = int(np.argmin(np.abs(z - v.z_mid)))
    row_disc = int(np.argmin(np.abs(z - (v.z_mid - v.h_normal / 2 - 3.0))))
    assert img[row_body, mid] > img[row_disc, mid]
    # bone extent along z in the anterior and posterior columns of the fractured body (projected)
    ant = int(np.argmin(np.abs(ys - (v.y_c - 0.8 * v.ay))))
    post = int(np.argmin(np.abs(ys - (v.y_c + 0.8 * v.ay))))
    zwin = np.abs(z - v.z_mid) < v.h_normal / 2 + 1

    def extent(col):
        return int((img[zwin, col] > img[row_disc, col] + 0.2 * (img[row_body, col] - img[row_disc, col])).sum())
    assert extent(ant) < extent(post) - 2, (extent(ant), extent(post))
