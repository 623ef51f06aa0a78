"""Writes each DICOM file's pixel_array (pydicom + GDCM: an independent decoder) as little-endian int32 raw bytes.

Used by the Node imaging tests as the reference the service's own decoders must match bit-exactly.
Usage: sh models/training/run test/support/dump_pixels.py OUT_DIR FILE...  → OUT_DIR/<index>.i32
"""
import os
import sys

import numpy as np
import pydicom


def main(out: str, files: list[str]) -> None:
    os.makedirs(out, exist_ok=True)
    for i, f in enumerate(files):
        arr = pydicom.dcmread(f).pixel_array
        arr.astype('<i4').tofile(os.path.join(out, f'{i}.i32'))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
