"""Non-hip radiographs for the out-of-distribution tests: every kind renders through the site's detector chain,
carries no truth mask, is flagged for exclusion, writes valid DICOM and goes through the preprocessing recipe."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from frcds.imaging import PhantomSubject, render_hip, sample_acquisition
from frcds.imaging.dicom import write_dx
from frcds.imaging.nonhip import NON_HIP_KINDS, render_non_hip
from frcds.preprocess import preprocess_dataset, preprocess_pixels


def model_input(im):
    return preprocess_pixels(im.pixels, rescale_slope=im.rescale_slope, rescale_intercept=im.rescale_intercept,
                             photometric=im.photometric, laterality=im.laterality,
                             pixel_spacing_mm=im.pixel_spacing_mm)


@pytest.fixture(scope="module")
def hip_template():
    """Mean model input of eight clean hips of both sites (canonical orientation)."""
    xs = []
    for seed in range(8):
        rng = np.random.default_rng(400 + seed)
        acq = sample_acquisition("AB"[seed % 2], rng, artefact=None)
        xs.append(model_input(render_hip(PhantomSubject("female" if seed % 3 else "male", 75, 22 + 1.5 * seed,
                                                        165, -1.5, 0.0), acq, rng)))
    return np.mean(xs, axis=0)


@pytest.mark.parametrize("kind", NON_HIP_KINDS)
def test_non_hip_kind(tmp_path, kind, hip_template):
    rng = np.random.default_rng(500 + NON_HIP_KINDS.index(kind))
    im = render_non_hip(kind, "A" if NON_HIP_KINDS.index(kind) % 2 == 0 else "B", rng)
    assert im.pixels.dtype == np.uint16 and im.pixels.ndim == 2
    assert 2000 <= im.pixels.shape[0] <= 2500 and 2000 <= im.pixels.shape[1] <= 2500
    assert int(im.pixels.max()) < (1 << im.bits_stored)
    assert im.signal_mask.shape == im.pixels.shape and not im.signal_mask.any()
    assert im.should_exclude is True and im.artefact == f"non_hip:{kind}"
    assert im.body_part == {"chest_pa": "CHEST", "knee_ap": "KNEE", "hand_pa": "HAND",
                            "abdomen_ap": "ABDOMEN"}.get(kind, "HIP")
    x = model_input(im)
    assert x.shape == (128, 128) and np.isfinite(x).all()
    # not a hip: the model input looks unlike the average hip
    assert np.corrcoef(x.ravel(), hip_template.ravel())[0, 1] < 0.8
    p = write_dx(tmp_path / f"{kind}.dcm", im, patient_id="OOD1", study_uid="1.2.826.0.1.3680043.8.498.20",
                 series_uid="1.2.826.0.1.3680043.8.498.21", sop_uid="1.2.826.0.1.3680043.8.498.22",
                 study_date="20250301", accession="OOD-ACC")
    ds = pydicom.dcmread(p)
    assert ds.BodyPartExamined == im.body_part and ds.ViewPosition == im.view_position
    assert np.array_equal(preprocess_dataset(ds), x)
    assert subprocess.run(["dcmdump", "-q", str(p)], capture_output=True).returncode == 0


def test_hips_resemble_the_template(hip_template):
    """Control for the test above: new clean hips do correlate with the hip template."""
    cs = []
    for seed in range(6):
        rng = np.random.default_rng(600 + seed)
        acq = sample_acquisition("AB"[seed % 2], rng, artefact=None)
        x = model_input(render_hip(PhantomSubject("male" if seed % 2 else "female", 70, 20 + 1.8 * seed, 170,
                                                  -1 + 0.1 * seed, 0.5), acq, rng))
        cs.append(np.corrcoef(x.ravel(), hip_template.ravel())[0, 1])
    assert np.median(cs) > 0.8, cs


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        render_non_hip("skull", "A", np.random.default_rng(0))
