"""DICOM DX writer and lossless compression with real encoders (issue 2, item 6; contract 2).

``write_dx`` writes a Part 10 file of SOP class Digital X-Ray Image Storage - For Presentation
(1.2.840.10008.5.1.4.1.1.1.1) in Explicit VR Little Endian with the attributes of the DX IOD that a PACS, a
DICOMweb client and the service's selection rule look at. ``compress`` re-encodes a file in place with a real
lossless encoder: dcmtk's dcmcjpeg (JPEG lossless, process 14 selection value 1, .70), dcmcjpls (JPEG-LS
lossless, .80) and dcmcrle (RLE, .5); JPEG 2000 lossless (.90) is made by OpenJPEG's opj_compress from the raw
pixels, and the codestream is encapsulated with pydicom (dcmtk in Debian has no JPEG 2000 encoder). Every output
is decoded again and compared with the original pixels (``verify=True``), so a codec that is not lossless on
this data fails loudly instead of silently changing the training data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from .phantom import RenderedImage

DX_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
SYNTAXES: dict[str, str] = {
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "rle": "1.2.840.10008.1.2.5",
    "jpeg2000": "1.2.840.10008.1.2.4.90",
}
# Anatomic Region Sequence codes (SNOMED CT, as DICOM PS3.16 maps Body Part Examined)
REGION_CODES = {
    "HIP": ("29836001", "Hip"),
    "CHEST": ("43799004", "Chest"),
    "KNEE": ("72696002", "Knee"),
    "HAND": ("85562004", "Hand"),
    "ABDOMEN": ("818981001", "Abdomen"),
}
VIEW_CODES = {"AP": ("399348003", "antero-posterior"), "PA": ("399247000", "postero-anterior")}


class DicomWriteError(RuntimeError):
    """Writing or compressing a DICOM file failed."""


def _code(value: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = "SCT"
    c.CodeMeaning = meaning
    return c


def _ds(v: float) -> str:
    """A DS value string of at most 16 characters."""
    s = f"{v:.6g}"
    return s if len(s) <= 16 else f"{v:.8e}"[:16]


def write_dx(path: str | os.PathLike[str], image: RenderedImage, *, patient_id: str, study_uid: str,
             series_uid: str, sop_uid: str, study_date: str, accession: str, study_time: str = "093000",
             patient_name: str | None = None, patient_sex: str | None = None, patient_birth_date: str | None = None,
             patient_age: str | None = None, series_number: int = 1, instance_number: int = 1,
             study_id: str = "1", study_description: str | None = None, series_description: str | None = None,
             institution_name: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``image`` as an uncompressed DX For Presentation Part 10 file; returns the path.

    ``study_date`` is YYYYMMDD; ``patient_sex`` 'F' | 'M' | 'O'; ``extra`` sets further attributes by keyword.
    """
    px = image.pixels
    if px.dtype != np.uint16 or px.ndim != 2:
        raise DicomWriteError(f"pixels must be a 2-D uint16 array, got {px.dtype} {px.shape}")
    if not (8 <= image.bits_stored <= 16) or int(px.max(initial=0)) >= (1 << image.bits_stored):
        raise DicomWriteError("pixel values exceed bits_stored")
    if len(study_date) != 8 or not study_date.isdigit():
        raise DicomWriteError(f"study_date must be YYYYMMDD, got {study_date!r}")
    acq = image.acquisition or {}
    body = image.body_part
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "FRCDS_PHANTOM_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = study_time
    ds.AccessionNumber = accession
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = image.manufacturer
    ds.InstitutionName = institution_name or f"Synthetic Hospital {acq.get('site', '')}".strip()
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description or f"XR {body} {image.view_position}"
    ds.SeriesDescription = series_description or f"{body} {image.view_position}"
    ds.ManufacturerModelName = image.model_name
    ds.PatientName = patient_name or f"SYNTHETIC^{patient_id}"
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = "urn:frcds:synthetic-mrn"
    ds.PatientBirthDate = patient_birth_date or ""
    ds.PatientSex = patient_sex or ""
    if patient_age:
        ds.PatientAge = patient_age
    ds.BodyPartExamined = body
    if "kvp" in acq:
        ds.KVP = _ds(acq["kvp"])
        ds.Exposure = str(int(round(acq.get("mas", 10.0))))
        ds.ExposureInuAs = str(int(round(acq.get("mas", 10.0) * 1000)))
    ds.SoftwareVersions = "frcds-phantom 1"
    ds.ImagerPixelSpacing = [_ds(image.pixel_spacing_mm[0]), _ds(image.pixel_spacing_mm[1])]
    ds.DetectorType = "SCINTILLATOR" if acq.get("site") != "B" else "STORAGE"
    if "magnification" in acq:
        sid = 1150.0
        ds.DistanceSourceToDetector = _ds(sid)
        ds.DistanceSourceToPatient = _ds(sid / float(acq["magnification"]))
        ds.EstimatedRadiographicMagnificationFactor = _ds(float(acq["magnification"]))
    ds.ViewPosition = image.view_position
    if image.view_position in VIEW_CODES:
        ds.ViewCodeSequence = Sequence([_code(*VIEW_CODES[image.view_position])])
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study_id
    ds.SeriesNumber = str(series_number)
    ds.InstanceNumber = str(instance_number)
    ds.PatientOrientation = ["L", "F"] if image.view_position == "AP" else ["R", "F"]
    ds.ImageLaterality = image.laterality
    if body in REGION_CODES:
        ds.AnatomicRegionSequence = Sequence([_code(*REGION_CODES[body])])
    ds.AcquisitionContextSequence = Sequence([])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = image.photometric
    ds.Rows, ds.Columns = int(px.shape[0]), int(px.shape[1])
    ds.PixelSpacing = [_ds(image.pixel_spacing_mm[0]), _ds(image.pixel_spacing_mm[1])]
    ds.PixelSpacingCalibrationType = ""
    ds.BitsAllocated = 16
    ds.BitsStored = image.bits_stored
    ds.HighBit = image.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if image.photometric == "MONOCHROME2" else 1
    ds.WindowCenter = _ds(image.window_center)
    ds.WindowWidth = _ds(image.window_width)
    ds.RescaleIntercept = _ds(image.rescale_intercept)
    ds.RescaleSlope = _ds(image.rescale_slope)
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if image.photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(px).astype("<u2", copy=False).tobytes()
    ds["PixelData"].VR = "OW"
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(p, write_like_original=False)
    return p


def _run(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise DicomWriteError(f"{cmd[0]} not found on PATH (install dcmtk / libopenjp2-tools: sh .ci/setup)")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise DicomWriteError(f"{' '.join(cmd[:1])} failed ({r.returncode}): {r.stderr.strip()[:400]}")


def _j2k(src: Path, dst: Path, tmpdir: str) -> None:
    ds = pydicom.dcmread(src)
    px = ds.pixel_array
    if px.dtype != np.uint16:
        px = px.astype(np.uint16)
    raw = Path(tmpdir) / "frame.rawl"
    j2k = Path(tmpdir) / "frame.j2k"
    raw.write_bytes(px.astype("<u2").tobytes())
    bits = int(ds.BitsStored)
    # reversible 5/3 wavelet without rate or quality targets is OpenJPEG's lossless mode
    _run(["opj_compress", "-i", str(raw), "-o", str(j2k), "-F", f"{px.shape[1]},{px.shape[0]},1,{bits},u"])
    ds.PixelData = encapsulate([j2k.read_bytes()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = UID(SYNTAXES["jpeg2000"])
    ds.is_implicit_VR = False
    ds.is_little_endian = True
    ds.save_as(dst, write_like_original=False)


def compress(path: str | os.PathLike[str], syntax: str, *, verify: bool = True) -> Path:
    """Re-encode the DICOM file at ``path`` in place with a lossless transfer syntax: 'jpeg-lossless' (.70),
    'jpeg-ls' (.80), 'rle' (.5) or 'jpeg2000' (.90). With ``verify`` the result is decoded (pydicom) and must
    equal the original pixels exactly."""
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown syntax {syntax!r}; expected one of {sorted(SYNTAXES)}")
    p = Path(path)
    original = pydicom.dcmread(p).pixel_array if verify else None
    with tempfile.TemporaryDirectory(prefix="frcds-dcm-") as td:
        out = Path(td) / "out.dcm"
        if syntax == "jpeg-lossless":
            _run(["dcmcjpeg", "+e1", "+un", str(p), str(out)])
        elif syntax == "jpeg-ls":
            _run(["dcmcjpls", "+el", "+un", str(p), str(out)])
        elif syntax == "rle":
            _run(["dcmcrle", "+un", str(p), str(out)])
        else:
            _j2k(p, out, td)
        got = pydicom.dcmread(out)
        if str(got.file_meta.TransferSyntaxUID) != SYNTAXES[syntax]:
            raise DicomWriteError(f"encoder wrote transfer syntax {got.file_meta.TransferSyntaxUID}, "
                                  f"expected {SYNTAXES[syntax]}")
        if original is not None and not np.array_equal(got.pixel_array, original):
            raise DicomWriteError(f"{syntax} round trip changed the pixels of {p.name}")
        shutil.move(str(out), str(p))
    return p
