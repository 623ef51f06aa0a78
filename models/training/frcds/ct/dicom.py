"""CT series writer: one CT Image Storage instance per axial slice, a localizer series, and the truth JSON.

Geometry follows PS3.3 C.7.6.2: ImageOrientationPatient 1\\0\\0\\0\\1\\0 (rows along +x, columns down +y, LPS),
ImagePositionPatient = centre of the first transmitted pixel of each slice, PixelSpacing = row spacing\\column
spacing, contiguous slices (SpacingBetweenSlices = SliceThickness), instances numbered superior → inferior.
Pixels are stored HU + 1024 with RescaleIntercept −1024 / RescaleSlope 1: vendor A as signed int16 with
PixelPaddingValue −2000 outside the reconstruction circle, vendor B as unsigned uint16. Transfer syntax is
Explicit VR Little Endian, or RLE Lossless (pydicom's own encoder, slow: test sizes) on request; every RLE file is
decoded again and compared with the stored pixels.

The localizer (ImageType ORIGINAL\\PRIMARY\\LOCALIZER) is an AP projection of the noise-free phantom on the same
grid — a crude DRR, which is also what a later lateral spine radiograph will be made from.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, RLELossless

from .acquisition import VENDORS, CTVolume
from .drr import line_integral
from .phantom import Anatomy

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
INTERCEPT = -1024.0


class CTWriteError(RuntimeError):
    """Writing a CT series failed."""


def uid(key: str, kind: str) -> str:
    """Deterministic DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2)."""
    h = hashlib.sha256(f"{key}|{kind}".encode()).digest()
    return "2.25." + str(int.from_bytes(h[:16], "big"))


def _ds(v: float) -> str:
    s = f"{v:.6g}"
    return s if len(s) <= 16 else f"{v:.8e}"[:16]


def stored_pixels(vol: CTVolume) -> np.ndarray:
    """Stored values (nz, ny, nx) as written: int16 (vendor A, with padding) or uint16 (vendor B)."""
    v = VENDORS[vol.acq.vendor]
    s = np.rint(vol.hu - INTERCEPT)
    if v["signed"]:
        out = np.clip(s, -32768, 32767).astype(np.int16)
        n = vol.grid.nx
        yy, xx = np.mgrid[0:n, 0:n]
        outside = (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 > (n / 2) ** 2
        out[:, outside] = v["padding"]
        return out
    return np.clip(s, 0, 65535).astype(np.uint16)


def _base(key: str, an: Anatomy, vol: CTVolume, patient_id: str, study_date: str, series_uid: str,
          series_number: int, description: str) -> Dataset:
    acq, ven = vol.acq, VENDORS[vol.acq.vendor]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.StudyInstanceUID = uid(key, "study")
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = uid(key, "frame")
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.PatientName = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = "F" if an.sex == "female" else "M"
    ds.PatientAge = f"{int(an.age):03d}Y"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = hashlib.sha256(key.encode()).hexdigest()[:12].upper()
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT CHEST" if acq.protocol == "chest" else "CT ABDOMEN PELVIS"
    ds.SeriesDescription = description
    ds.SeriesNumber = series_number
    ds.BodyPartExamined = "CHEST" if acq.protocol == "chest" else "ABDOMEN"
    ds.PatientPosition = "HFS"
    ds.Manufacturer = ven["manufacturer"]
    ds.ManufacturerModelName = ven["model"]
    ds.KVP = _ds(acq.kvp)
    ds.PositionReferenceIndicator = ""
    ds.AcquisitionNumber = 1
    if acq.phase == "portal-venous" and acq.phase_recorded:
        ds.ContrastBolusAgent = "IODINATED CONTRAST"
        ds.ContrastBolusRoute = "IV"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def _save(ds: Dataset, path: Path, syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    if syntax == "rle":
        before = ds.pixel_array.copy()
        ds.compress(RLELossless)
        if not np.array_equal(ds.pixel_array, before):
            raise CTWriteError("RLE round trip changed the pixels")
    elif syntax != "explicit":
        raise CTWriteError(f"unknown syntax {syntax!r}")
    ds.save_as(path, write_like_original=False)


def write_study(out_dir: str | os.PathLike[str], key: str, an: Anatomy, vol: CTVolume, *, patient_id: str,
                study_date: str, syntax: str = "explicit") -> dict:
    """Write the axial series (series 2), the localizer (series 1) and ``truth.json`` under ``out_dir``.

    Returns the truth dict (also written)."""
    out = Path(out_dir)
    ax_dir, loc_dir = out / "series-002-axial", out / "series-001-localizer"
    ax_dir.mkdir(parents=True, exist_ok=True)
    loc_dir.mkdir(parents=True, exist_ok=True)
    acq, g = vol.acq, vol.grid
    px = stored_pixels(vol)
    ven = VENDORS[acq.vendor]
    series_uid = uid(key, "series-axial")
    desc = f"{'Bone' if acq.kernel == 'bone' else 'Soft'} {acq.slice_thickness:g}mm"
    files: list[str] = []
    for i in range(px.shape[0]):
        ds = _base(key, an, vol, patient_id, study_date, series_uid, 2, desc)
        ds.SOPInstanceUID = uid(key, f"axial-{i}")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = i + 1
        z = float(g.z[i])
        ds.ImagePositionPatient = [_ds(g.x0), _ds(g.y0), _ds(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = _ds(z)
        ds.PixelSpacing = [_ds(g.dy), _ds(g.dx)]
        ds.SliceThickness = _ds(acq.slice_thickness)
        ds.SpacingBetweenSlices = _ds(acq.slice_thickness)
        ds.ConvolutionKernel = "BONE" if acq.kernel == "bone" else "STANDARD"
        ds.Rows, ds.Columns = int(g.ny), int(g.nx)
        ds.PixelRepresentation = 1 if ven["signed"] else 0
        if ven["padding"] is not None:
            ds.PixelPaddingValue = int(ven["padding"])
        ds.RescaleIntercept = _ds(INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = ["40", "400"] if acq.kernel == "soft" else ["400", "1800"]
        ds.PixelData = np.ascontiguousarray(px[i]).tobytes()
        name = ax_dir / f"IM{i + 1:05d}.dcm"
        _save(ds, name, syntax)
        files.append(str(name.relative_to(out)))
    # localizer: AP projection (mean attenuation along y) of the noise-free volume, rows running inferior
    proj, _ = line_integral(vol.clean if vol.clean is not None else vol.hu, g, "ap")   # (nz, nx), superior first
    loc = np.rint(proj / max(float(proj.max()), 1e-6) * 4000.0).astype(np.uint16)
    ds = _base(key, an, vol, patient_id, study_date, uid(key, "series-localizer"), 1, "Topogram AP")
    ds.SOPInstanceUID = uid(key, "localizer-0")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [_ds(g.x0), _ds(g.y0 + g.dy * (g.ny - 1) / 2), _ds(float(g.z[0]))]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.PixelSpacing = [_ds(acq.slice_thickness), _ds(g.dx)]
    ds.Rows, ds.Columns = int(loc.shape[0]), int(loc.shape[1])
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
    ds.PixelData = loc.tobytes()
    _save(ds, loc_dir / "IM00001.dcm", "explicit")
    truth = study_truth(an, vol)
    truth.update({"study_instance_uid": uid(key, "study"), "axial_series_uid": series_uid,
                  "localizer_series_uid": uid(key, "series-localizer"), "patient_id": patient_id,
                  "syntax": syntax, "axial_files": files, "localizer_file": "series-001-localizer/IM00001.dcm"})
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def l1_roi_mask(an: Anatomy, vol: CTVolume) -> np.ndarray:
    """Boolean (nz, ny, nx): an elliptical ROI in the central 50 % of L1's trabecular core (half its width/depth,
    the middle third of its height), the ROI a reader would place; empty when L1 is outside the field."""
    v = an.level("L1")
    g = vol.grid
    xs, ys = g.xy()
    X, Y = np.meshgrid(xs, ys)
    c, s = np.cos(np.radians(vol.acq.rotation_deg)), np.sin(np.radians(vol.acq.rotation_deg))
    Xr, Yr = c * X + s * Y, -s * X + c * Y   # patient frame, as in phantom.render
    ell = ((Xr - v.x_c) / (0.5 * v.ax)) ** 2 + ((Yr - v.y_c) / (0.5 * v.ay)) ** 2 <= 1.0
    zin = np.abs(np.asarray(g.z) - v.z_mid) <= min(v.h_ant, v.h_mid, v.h_post) / 6.0
    return zin[:, None, None] & ell[None]


def study_truth(an: Anatomy, vol: CTVolume) -> dict:
    acq, g = vol.acq, vol.grid
    zmin, zmax = float(np.min(g.z)) - acq.slice_thickness / 2, float(np.max(g.z)) + acq.slice_thickness / 2
    levels = []
    for v in an.vertebrae:
        lo, hi = v.z_mid - v.h_normal / 2, v.z_mid + v.h_normal / 2
        levels.append({
            "label": v.label, "z_range_mm": [lo, hi], "centre_mm": [v.x_c, v.y_c, v.z_mid],
            "heights_mm": {"anterior": v.h_ant, "middle": v.h_mid, "posterior": v.h_post, "normal": v.h_normal},
            "genant_grade": v.grade, "morphology": v.morphology, "rib_bearing": v.label in ("T10", "T11", "T12"),
            "trabecular_hu_noncontrast": v.trab_hu, "trabecular_hu_scan": v.trab_hu + acq.trab_enhance_hu,
            "in_field": bool(lo >= zmin and hi <= zmax), "hardware": an.hardware_level == v.label})
    roi = l1_roi_mask(an, vol)
    l1 = an.level("L1")
    roi_truth = None
    if roi.any():
        roi_truth = {"voxels": int(roi.sum()), "phantom_median_hu": float(np.median(vol.clean[roi]))
                     if vol.clean is not None else None,
                     "scan_mean_hu": float(vol.hu[roi].mean()), "true_hu": l1.trab_hu + acq.trab_enhance_hu}
    return {"bone": {"t_score": an.t_score, "l1_trab_hu_noncontrast": an.l1_trab_hu}, "age": an.age,
            "sex": an.sex, "scoliosis_mm": an.scoliosis_mm, "hardware_level": an.hardware_level,
            "acquisition": acq.truth(), "geometry": {"z_field_mm": [zmin, zmax], "n_slices": int(len(g.z)),
                                                   "pixel_spacing_mm": g.dx, "rows": g.ny, "columns": g.nx},
            "levels": levels, "l1_roi": roi_truth}
