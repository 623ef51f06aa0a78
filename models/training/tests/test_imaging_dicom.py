"""DICOM DX writer and lossless compression (issue 2, item 6): valid Part 10 files that pydicom, dcmdump and
dcmtk's own decoders read, with exactly the original pixels in every transfer syntax."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from frcds.imaging import PhantomSubject, render_hip, sample_acquisition
from frcds.imaging.dicom import DX_FOR_PRESENTATION, SYNTAXES, DicomWriteError, compress, write_dx

UIDS = dict(study_uid="1.2.826.0.1.3680043.8.498.10", series_uid="1.2.826.0.1.3680043.8.498.11",
            sop_uid="1.2.826.0.1.3680043.8.498.12")


@pytest.fixture(scope="module")
def images():
    out = {}
    for site, size, seed in (("A", "demo", 31), ("B", "demo", 32), ("A", "full", 33)):
        rng = np.random.default_rng(seed)
        acq = sample_acquisition(site, rng, size=size, artefact=None)
        out[(site, size)] = render_hip(PhantomSubject("female", 77.0, 23.0, 158.0, -2.6, -0.5), acq, rng)
    return out


def dcmdump(path) -> subprocess.CompletedProcess:
    return subprocess.run(["dcmdump", "-q", "-E", str(path)], capture_output=True, text=True, timeout=60)


def write(path, im, **kw):
    args = dict(patient_id="SYN-000123", study_date="20251104", accession="ACC000123", patient_sex="F",
                patient_birth_date="19480102", **UIDS)
    args.update(kw)
    return write_dx(path, im, **args)


@pytest.mark.parametrize("key", [("A", "demo"), ("B", "demo"), ("A", "full")])
def test_written_file_is_a_valid_dx_for_presentation(tmp_path, images, key):
    im = images[key]
    p = write(tmp_path / "x.dcm", im)
    ds = pydicom.dcmread(p)
    assert ds.file_meta.MediaStorageSOPClassUID == DX_FOR_PRESENTATION == ds.SOPClassUID
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == UIDS["sop_uid"]
    assert ds.StudyInstanceUID == UIDS["study_uid"] and ds.SeriesInstanceUID == UIDS["series_uid"]
    assert ds.PatientID == "SYN-000123" and ds.StudyDate == "20251104" and ds.AccessionNumber == "ACC000123"
    assert ds.Modality == "DX" and ds.BodyPartExamined == "HIP" and ds.ViewPosition == "AP"
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.ImageLaterality == im.laterality
    assert ds.PhotometricInterpretation == im.photometric
    assert ds.PresentationLUTShape == ("IDENTITY" if im.photometric == "MONOCHROME2" else "INVERSE")
    assert ds.BitsAllocated == 16 and ds.BitsStored == im.bits_stored and ds.HighBit == im.bits_stored - 1
    assert ds.PixelRepresentation == 0 and ds.SamplesPerPixel == 1
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(list(im.pixel_spacing_mm))
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx(list(im.pixel_spacing_mm))
    assert float(ds.WindowCenter) == pytest.approx(im.window_center)
    assert float(ds.WindowWidth) == pytest.approx(im.window_width)
    assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0 and ds.RescaleType == "US"
    assert ds.Manufacturer == im.manufacturer and ds.ManufacturerModelName == im.model_name
    assert ds.AnatomicRegionSequence[0].CodeValue == "29836001"
    assert ds.ViewCodeSequence[0].CodeValue == "399348003"
    assert ds.LossyImageCompression == "00"
    assert np.array_equal(ds.pixel_array, im.pixels)
    r = dcmdump(p)
    assert r.returncode == 0, r.stderr
    assert "(0008,0016) UI =DigitalXRayImageStorageForPresentation" in r.stdout
    assert "E:" not in r.stderr and "W:" not in r.stderr


DCMTK_DECODERS = {"jpeg-lossless": "dcmdjpeg", "jpeg-ls": "dcmdjpls", "rle": "dcmdrle"}


@pytest.mark.parametrize("syntax", list(SYNTAXES))
@pytest.mark.parametrize("key", [("A", "demo"), ("B", "demo")])
def test_compressed_files_are_lossless_and_readable_by_pydicom_and_dcmtk(tmp_path, images, key, syntax):
    im = images[key]
    p = write(tmp_path / f"{syntax}.dcm", im)
    raw_size = p.stat().st_size
    compress(p, syntax)
    ds = pydicom.dcmread(p)
    assert ds.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
    assert ds.SOPInstanceUID == UIDS["sop_uid"]               # lossless: the instance keeps its identity
    assert np.array_equal(ds.pixel_array, im.pixels)
    assert p.stat().st_size < raw_size
    r = dcmdump(p)
    assert r.returncode == 0, r.stderr
    ts = subprocess.run(["dcmdump", "-q", "-Un", "+P", "0002,0010", str(p)], capture_output=True, text=True)
    assert f"UI [{SYNTAXES[syntax]}]" in ts.stdout, ts.stdout
    if syntax in DCMTK_DECODERS:
        # an independent decoder (dcmtk) gives the same pixels
        out = tmp_path / f"{syntax}-dec.dcm"
        d = subprocess.run([DCMTK_DECODERS[syntax], str(p), str(out)], capture_output=True, text=True, timeout=120)
        assert d.returncode == 0, d.stderr
        assert np.array_equal(pydicom.dcmread(out).pixel_array, im.pixels)
    else:
        # JPEG 2000: decode the encapsulated codestream with OpenJPEG's own decoder
        from pydicom.encaps import generate_pixel_data_frame
        frame = next(generate_pixel_data_frame(ds.PixelData))
        j2k = tmp_path / "f.j2k"
        j2k.write_bytes(frame)
        raw = tmp_path / "f.rawl"                              # headerless little-endian samples
        d = subprocess.run(["opj_decompress", "-i", str(j2k), "-o", str(raw)], capture_output=True, text=True,
                           timeout=120)
        assert d.returncode == 0, d.stderr
        arr = np.frombuffer(raw.read_bytes(), dtype="<u2").reshape(im.pixels.shape)
        assert np.array_equal(arr, im.pixels)


def test_compress_rejects_unknown_syntax(tmp_path, images):
    p = write(tmp_path / "x.dcm", images[("A", "demo")])
    with pytest.raises(ValueError):
        compress(p, "jpeg-baseline")


def test_write_rejects_bad_input(tmp_path, images):
    im = images[("A", "demo")]
    with pytest.raises(DicomWriteError):
        write(tmp_path / "d.dcm", im, study_date="2025-11-04")
    bad = type(im)(**{**im.__dict__, "pixels": im.pixels.astype(np.float32)})
    with pytest.raises(DicomWriteError):
        write(tmp_path / "f.dcm", bad)
    over = type(im)(**{**im.__dict__, "pixels": np.full((8, 8), 1 << im.bits_stored, np.uint16)})
    with pytest.raises(DicomWriteError):
        write(tmp_path / "o.dcm", over)


@pytest.mark.parametrize("bits", [12, 14, 15, 16])
def test_every_bit_depth_survives_every_codec(tmp_path, images, bits):
    """Both sites write 12-16-bit data: each depth, scaled to use its full range, through each real encoder."""
    import dataclasses
    im = images[("A", "demo")]
    src = im.pixels.astype(np.float64)
    px = np.round((src - src.min()) / (src.max() - src.min()) * ((1 << bits) - 1)).astype(np.uint16)
    img = dataclasses.replace(im, pixels=px, bits_stored=bits)
    for syntax in SYNTAXES:
        p = write(tmp_path / f"{bits}-{syntax}.dcm", img)
        compress(p, syntax)
        ds = pydicom.dcmread(p)
        assert ds.BitsStored == bits and np.array_equal(ds.pixel_array, px), (bits, syntax)
