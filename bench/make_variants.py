"""Writes full-size copies of one radiograph in each transfer syntax the imaging benchmark times.

Source: the given DICOM file (the largest demo-cohort radiograph), or, when none is given, a synthetic 2500 x 2048
12-bit hip-like image. Output: OUT/<syntax-name>.dcm for explicit VR LE (.1.2.1), JPEG lossless SV1 (.70),
JPEG-LS (.80), RLE (.5) and JPEG 2000 reversible (.90), each with its own series/instance UIDs, made with the real
encoders (dcmtk, opj_compress).

Usage: sh models/training/run bench/make_variants.py OUT [SOURCE.dcm]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def synthetic() -> Dataset:
    rng = np.random.default_rng(7)
    rows, cols = 2500, 2048
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    img = 600 + 0.25 * x + 0.1 * y
    img += 1400 * (((x - 900) / 350) ** 2 + ((y - 1100) / 900) ** 2 < 1)
    img += rng.normal(0, 20, size=(rows, cols))
    arr = np.clip(img, 0, 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality, ds.BodyPartExamined, ds.ViewPosition, ds.ImageLaterality = 'BENCH', 'DX', 'HIP', 'AP', 'R'
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.15, 0.15]
    ds.RescaleSlope, ds.RescaleIntercept = '1', '0'
    ds.PixelData = arr.tobytes()
    return ds


def restamp(path: str) -> None:
    ds = pydicom.dcmread(path)
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(path, write_like_original=False)


def main(out: str, source: str | None) -> None:
    os.makedirs(out, exist_ok=True)
    if source:
        ds = pydicom.dcmread(source)
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
        ds['PixelData'].VR = 'OW' if ds.BitsAllocated > 8 else 'OB'
        ds['PixelData'].is_undefined_length = False
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.is_little_endian, ds.is_implicit_VR = True, False
    else:
        ds = synthetic()
    base = os.path.join(out, 'explicit-le.dcm')
    ds.save_as(base, write_like_original=False)
    for name, cmd in [('jpeg-lossless-70', ['dcmcjpeg', '+e1']), ('jpeg-ls-80', ['dcmcjpls', '+el']),
                      ('rle', ['dcmcrle'])]:
        dst = os.path.join(out, f'{name}.dcm')
        subprocess.run([*cmd, base, dst], check=True)
        restamp(dst)
    arr = pydicom.dcmread(base).pixel_array
    with tempfile.TemporaryDirectory() as tmp:
        raw, j2k = os.path.join(tmp, 'in.rawl'), os.path.join(tmp, 'out.j2k')
        arr.astype('<u2').tofile(raw)
        subprocess.run(['opj_compress', '-i', raw, '-o', j2k, '-F',
                        f'{arr.shape[1]},{arr.shape[0]},1,{int(ds.BitsStored)},u'], check=True,
                       stdout=subprocess.DEVNULL)
        code = open(j2k, 'rb').read()
    d2 = pydicom.dcmread(base)
    d2.PixelData = encapsulate([code])
    d2['PixelData'].VR = 'OB'
    d2['PixelData'].is_undefined_length = True
    d2.file_meta.TransferSyntaxUID = '1.2.840.10008.1.2.4.90'
    dst = os.path.join(out, 'jpeg2000-90.dcm')
    d2.save_as(dst, write_like_original=False)
    restamp(dst)
    restamp(base)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
