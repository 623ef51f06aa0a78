"""CT series writer and CLI: two small studies written by the CLI and read back with pydicom — geometry, HU round
trip, localizer, shared study identity and the truth JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from frcds.ct import cli
from frcds.ct.acquisition import acquire, sample_acquisition
from frcds.ct.dicom import l1_roi_mask, stored_pixels, write_study
from frcds.ct.phantom import sample_anatomy


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct")
    assert cli.main(["--out", str(out), "--patients", "2", "--seed", "5", "--size", "test"]) == 0
    return out


def _series(study: Path):
    ax = [pydicom.dcmread(p) for p in sorted((study / "series-002-axial").glob("*.dcm"))]
    loc = [pydicom.dcmread(p) for p in sorted((study / "series-001-localizer").glob("*.dcm"))]
    return ax, loc


def test_cli_writes_index(studies):
    idx = json.loads((studies / "index.json").read_text())
    assert [r["study"] for r in idx["studies"]] == ["ct-a5-00001", "ct-a5-00002"]
    for r in idx["studies"]:
        assert (studies / r["study"] / "truth.json").exists() and r["mb"] > 0


def test_geometry_and_identity(studies):
    for study in sorted(p for p in studies.iterdir() if p.is_dir()):
        truth = json.loads((study / "truth.json").read_text())
        ax, loc = _series(study)
        assert len(ax) == truth["geometry"]["n_slices"] == len(truth["axial_files"])
        z = np.array([float(d.ImagePositionPatient[2]) for d in ax])
        d = np.diff(z)
        assert np.all(d < 0), "positions strictly monotone (superior → inferior)"
        thk = float(ax[0].SliceThickness)
        assert np.allclose(-d, thk, atol=1e-3), "contiguous: spacing = thickness"
        for ds in ax:
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
            assert float(ds.SliceLocation) == pytest.approx(float(ds.ImagePositionPatient[2]))
            assert float(ds.PixelSpacing[0]) == pytest.approx(truth["geometry"]["pixel_spacing_mm"], abs=1e-4)
        assert len({ds.SOPInstanceUID for ds in ax}) == len(ax)
        assert len(loc) == 1 and "LOCALIZER" in loc[0].ImageType
        ids = {(ds.StudyInstanceUID, ds.PatientID, ds.FrameOfReferenceUID) for ds in ax + loc}
        assert ids == {(truth["study_instance_uid"], truth["patient_id"], ax[0].FrameOfReferenceUID)}
        assert loc[0].SeriesInstanceUID != ax[0].SeriesInstanceUID
        acq = truth["acquisition"]
        recorded = "ContrastBolusAgent" in ax[0]
        assert recorded == (acq["phase"] == "portal-venous" and acq["phase_recorded"])


def test_stored_dtype_per_vendor():
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        an = sample_anatomy(rng, t_score=-1.5, age=70, sex="female", hardware_p=0.0)
        acq = sample_acquisition(rng, an, size="test")
        vol = acquire(an, acq, rng)
        px = stored_pixels(vol)
        assert px.dtype == (np.int16 if acq.vendor == "A" else np.uint16)


def test_written_pixels_match_volume(tmp_path):
    """stored·slope + intercept equals the acquired HU within 1 (rounding), padding aside; the truth's L1 HU equals
    the phantom's trabecular-core median, and the scan's ROI mean is that value within noise — for both vendors."""
    seen_vendors = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        an = sample_anatomy(rng, t_score=-2.0, age=75, sex="female", hardware_p=0.0)
        acq = sample_acquisition(rng, an, size="test")
        if acq.vendor in seen_vendors or acq.protocol != "abdomen":
            continue
        seen_vendors.add(acq.vendor)
        vol = acquire(an, acq, rng)
        truth = write_study(tmp_path / f"s{seed}", f"k{seed}", an, vol, patient_id="P1", study_date="20150101")
        ax = [pydicom.dcmread(tmp_path / f"s{seed}" / f) for f in truth["axial_files"]]
        hu = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                       for d in ax])
        valid = np.ones(hu.shape, bool)
        if "PixelPaddingValue" in ax[0]:
            valid = np.stack([d.pixel_array != d.PixelPaddingValue for d in ax])
            assert (~valid).any() and valid.mean() > 0.7
        assert np.abs(hu[valid] - vol.hu[valid]).max() <= 1.0
        roi = truth["l1_roi"]
        l1 = an.level("L1")
        assert roi["true_hu"] == pytest.approx(l1.trab_hu + acq.trab_enhance_hu)
        assert roi["phantom_median_hu"] == pytest.approx(roi["true_hu"], abs=1e-3)
        # read back from the DICOM: ROI mean of the written slices ≈ truth within noise (SE ≪ 10 HU) and blur
        m = l1_roi_mask(an, vol)
        assert abs(float(hu[m].mean()) - roi["true_hu"]) < 10.0
        assert truth["levels"][3]["label"] == "L1" and truth["levels"][3]["in_field"]
    assert seen_vendors == {"A", "B"}


def test_rle_syntax(tmp_path):
    rng = np.random.default_rng(4)
    an = sample_anatomy(rng, t_score=-1.0, age=65, sex="male", hardware_p=0.0)
    acq = sample_acquisition(rng, an, size="test")
    vol = acquire(an, acq, rng)
    truth = write_study(tmp_path, "rle", an, vol, patient_id="P2", study_date="20150101", syntax="rle")
    ds = pydicom.dcmread(tmp_path / truth["axial_files"][0])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert np.array_equal(ds.pixel_array, stored_pixels(vol)[0])


def test_deterministic_per_patient(tmp_path, studies):
    """Patient i's study depends only on (seed, i): rewriting patient 2 alone gives identical truth and pixels."""
    r = cli.simulate_study(tmp_path, 5, 1, size="test")
    assert r["study"] == "ct-a5-00002"
    a = json.loads((studies / r["study"] / "truth.json").read_text())
    b = json.loads((tmp_path / r["study"] / "truth.json").read_text())
    assert a == b
    pa, pb = (pydicom.dcmread(d / r["study"] / a["axial_files"][3]).pixel_array for d in (studies, tmp_path))
    assert np.array_equal(pa, pb)
