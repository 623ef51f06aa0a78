"""The preprocessing recipe (contract 3): exactness against a literal re-implementation, geometry, invariances,
errors, and equality of the DICOM path (every compressed transfer syntax) with the in-memory path."""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest

from frcds import preprocess as pp
from frcds.imaging import PhantomSubject, render_hip, sample_acquisition
from frcds.imaging.dicom import SYNTAXES, compress, write_dx


def literal(stored, slope, icpt, photometric, laterality, spacing):
    """The README/RECIPE text, transcribed step by step with Python integers and floats (no numpy tricks)."""
    S = pp.RECIPE["constants"]["S"]
    fov = pp.RECIPE["constants"]["FOV_MM"]
    a = [list(map(int, row)) for row in stored]
    if laterality == "L":
        a = [row[::-1] for row in a]
    rows, cols = len(a), len(a[0])
    nr = math.floor(fov / spacing[0] + 0.5)
    nc = math.floor(fov / spacing[1] + 0.5)
    r0 = (rows - nr) // 2
    c0 = (cols - nc) // 2
    sign = -1.0 if photometric == "MONOCHROME1" else 1.0
    flat = [v for row in a for v in row]
    pad = min(flat) if sign * slope > 0 else max(flat)
    out = [[0.0] * S for _ in range(S)]
    for k in range(S):
        ra, rb = (k * nr) // S, ((k + 1) * nr) // S
        for m in range(S):
            ca, cb = (m * nc) // S, ((m + 1) * nc) // S
            tot = 0
            for i in range(ra, rb):
                for j in range(ca, cb):
                    r, c = r0 + i, c0 + j
                    tot += a[r][c] if (0 <= r < rows and 0 <= c < cols) else pad
            mean = tot / ((rb - ra) * (cb - ca))
            out[k][m] = sign * (slope * mean + icpt)
    srt = sorted(v for row in out for v in row)
    lo, hi = srt[pp.LO_INDEX], srt[pp.HI_INDEX]
    d = hi - lo if hi - lo >= pp.MIN_RANGE else 1.0
    res = [[min(max((v - lo) / d, pp.CLIP_LO), pp.CLIP_HI) for v in row] for row in out]
    return np.array(res, dtype=np.float32)


@pytest.mark.parametrize("case", range(6))
def test_matches_literal_transcription_bit_for_bit(case):
    rng = np.random.default_rng(100 + case)
    rows, cols = int(rng.integers(150, 330)), int(rng.integers(150, 330))
    spacing = (float(rng.uniform(0.61, 1.5)), float(rng.uniform(0.61, 1.5)))   # windows both inside and beyond
    bits = int(rng.choice([12, 16]))
    stored = rng.integers(0, 1 << bits, (rows, cols)).astype(np.uint16)
    slope, icpt = [(1.0, 0.0), (0.5, -1024.0), (2.0, 7.0), (1.0, 0.0), (-1.0, 100.0), (0.25, 3.0)][case]
    photometric = ["MONOCHROME2", "MONOCHROME1"][case % 2]
    lat = ["R", "L", None][case % 3]
    got = pp.preprocess_pixels(stored, rescale_slope=slope, rescale_intercept=icpt, photometric=photometric,
                               laterality=lat, pixel_spacing_mm=spacing)
    want = literal(stored, slope, icpt, photometric, lat, spacing)
    assert got.dtype == np.float32 and got.shape == (pp.S, pp.S)
    assert np.array_equal(got, want)


def test_left_hip_is_the_mirror_of_a_right_hip():
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 4096, (1500, 1401)).astype(np.uint16)
    kw = dict(rescale_slope=1.0, rescale_intercept=0.0, photometric="MONOCHROME2", pixel_spacing_mm=(0.143, 0.143))
    right = pp.preprocess_pixels(stored, laterality="R", **kw)
    left = pp.preprocess_pixels(np.ascontiguousarray(stored[:, ::-1]), laterality="L", **kw)
    assert np.array_equal(right, left)
    assert not np.array_equal(right, pp.preprocess_pixels(stored, laterality="L", **kw))


def test_monochrome1_inverted_equals_monochrome2():
    rng = np.random.default_rng(4)
    stored = rng.integers(0, 4096, (1600, 1500)).astype(np.uint16)
    kw = dict(rescale_slope=1.0, rescale_intercept=0.0, laterality="R", pixel_spacing_mm=(0.15, 0.15))
    m2 = pp.preprocess_pixels(stored, photometric="MONOCHROME2", **kw)
    m1 = pp.preprocess_pixels((4095 - stored).astype(np.uint16), photometric="MONOCHROME1", **kw)
    assert np.abs(m1 - m2).max() < 1e-6


def test_output_range_and_percentiles():
    rng = np.random.default_rng(5)
    stored = rng.integers(0, 65535, (1400, 1400)).astype(np.uint16)
    out = pp.preprocess_pixels(stored, rescale_slope=1.0, rescale_intercept=0.0, photometric="MONOCHROME2",
                               laterality="R", pixel_spacing_mm=(0.143, 0.143))
    srt = np.sort(out, axis=None)
    assert srt[pp.LO_INDEX] == 0.0 and srt[pp.HI_INDEX] == 1.0
    assert out.min() >= pp.CLIP_LO and out.max() <= pp.CLIP_HI


def test_flat_image_does_not_divide_by_zero():
    stored = np.full((1500, 1500), 77, np.uint16)
    out = pp.preprocess_pixels(stored, rescale_slope=1.0, rescale_intercept=0.0, photometric="MONOCHROME2",
                               laterality=None, pixel_spacing_mm=(0.15, 0.15))
    assert np.all(out == 0.0)


def test_mask_is_bin_fraction_in_the_same_geometry():
    mask = np.zeros((1500, 1400), bool)
    mask[700:800, 100:300] = True       # left part of the image
    kw = dict(pixel_spacing_mm=(0.15, 0.15))
    r = pp.preprocess_mask(mask, laterality="R", **kw)
    lft = pp.preprocess_mask(mask, laterality="L", **kw)
    assert r.dtype == np.float32 and 0.0 <= r.min() and r.max() == 1.0
    # the flip moves the mass to the other half
    assert r[:, :64].sum() > 0 and r[:, 64:].sum() == 0
    assert lft[:, 64:].sum() > 0 and lft[:, :64].sum() == 0
    # total area is conserved (bins are a partition of the window)
    nr = math.floor(200.0 / 0.15 + 0.5)
    nc = nr
    counts = pp._counts(nr, nc)
    assert abs((r * counts).sum() - mask[(1500 - nr) // 2:(1500 - nr) // 2 + nr, (1400 - nc) // 2:].sum()) < 0.01


@pytest.mark.parametrize("bad", [
    dict(photometric="RGB"),
    dict(pixel_spacing_mm=(2.0, 2.0)),
    dict(pixel_spacing_mm=(0.0, 0.15)),
    dict(rescale_slope=0.0),
    dict(rescale_slope=float("nan")),
])
def test_bad_inputs_raise_typed_error(bad):
    kw = dict(rescale_slope=1.0, rescale_intercept=0.0, photometric="MONOCHROME2", laterality="R",
              pixel_spacing_mm=(0.15, 0.15))
    kw.update(bad)
    with pytest.raises(pp.PreprocessError):
        pp.preprocess_pixels(np.zeros((1400, 1400), np.uint16), **kw)


def test_non_2d_and_float_inputs_raise():
    kw = dict(rescale_slope=1.0, rescale_intercept=0.0, photometric="MONOCHROME2", laterality="R",
              pixel_spacing_mm=(0.15, 0.15))
    with pytest.raises(pp.PreprocessError):
        pp.preprocess_pixels(np.zeros((2, 1400, 1400), np.uint16), **kw)
    with pytest.raises(pp.PreprocessError):
        pp.preprocess_pixels(np.zeros((1400, 1400), np.float32), **kw)


def test_recipe_is_json_and_complete():
    txt = json.dumps(pp.RECIPE)
    back = json.loads(txt)
    assert back["constants"] == {"S": 128, "FOV_MM": 200.0, "LO_INDEX": 163, "HI_INDEX": 16220,
                                 "MIN_RANGE": 1e-6, "CLIP_LO": -0.5, "CLIP_HI": 1.5}
    assert [s["op"] for s in back["steps"]] == ["orient", "crop_pad", "box_average", "rescale", "normalise",
                                                 "clip", "cast"]


@pytest.mark.parametrize("site", ["A", "B"])
def test_dicom_path_equals_in_memory_path_for_every_syntax(tmp_path, site):
    rng = np.random.default_rng(11 if site == "A" else 12)
    subj = PhantomSubject("female", 74.0, 24.0, 161.0, -2.1, -0.3)
    acq = sample_acquisition(site, rng, artefact=None)
    im = render_hip(subj, acq, rng)
    want = pp.preprocess_pixels(im.pixels, rescale_slope=im.rescale_slope, rescale_intercept=im.rescale_intercept,
                                photometric=im.photometric, laterality=im.laterality,
                                pixel_spacing_mm=im.pixel_spacing_mm)
    for syntax in ["uncompressed", *SYNTAXES]:
        p = tmp_path / f"{syntax}.dcm"
        write_dx(p, im, patient_id="PP1", study_uid="1.2.826.0.1.3680043.8.498.1",
                 series_uid="1.2.826.0.1.3680043.8.498.2", sop_uid="1.2.826.0.1.3680043.8.498.3",
                 study_date="20250102", accession="ACC1")
        if syntax != "uncompressed":
            compress(p, syntax)
        ds = pydicom.dcmread(p)
        if syntax != "uncompressed":
            assert ds.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
        got = pp.preprocess_dataset(ds)
        assert np.array_equal(got, want), syntax
