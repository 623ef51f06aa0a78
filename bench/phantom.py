"""Benchmark of the hip radiograph phantom and the preprocessing recipe (issue 2 speed targets).

Prints, per site and size, the time per image of render_hip (full-size render -> stored uint16), of
preprocess_pixels + preprocess_mask (-> 128 x 128), and of DICOM writing and lossless compression per syntax.
CPU time is process time of this single-threaded process (what one worker costs); wall time includes waiting
for the CPU when other jobs share the machine.

Usage: sh models/training/run bench/phantom.py [--n 20] [--dicom]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from frcds.imaging import PhantomSubject, render_hip, sample_acquisition
from frcds.imaging.dicom import SYNTAXES, compress, write_dx
from frcds.preprocess import preprocess_mask, preprocess_pixels


def subjects(rng: np.random.Generator, n: int) -> list[PhantomSubject]:
    out = []
    for _ in range(n):
        sex = "female" if rng.random() < 0.6 else "male"
        out.append(PhantomSubject(sex, float(rng.uniform(50, 90)), float(np.clip(rng.normal(27.5, 5), 16, 50)),
                                  float(rng.normal(163 if sex == "female" else 176, 7)),
                                  float(rng.normal(-1.3, 1.2)), float(rng.normal(0, 1))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="images per site and size")
    ap.add_argument("--dicom", action="store_true", help="also time DICOM writing and compression")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    warm = sample_acquisition("A", rng)
    render_hip(subjects(rng, 1)[0], warm, rng)          # first call builds the per-process noise bank
    print(f"{'site':4} {'size':5} {'n':>4} {'render cpu':>11} {'render wall':>12} {'prep cpu':>9} {'total cpu':>10}")
    kept = None
    for size in ("full", "demo"):
        for site in ("A", "B"):
            subs = subjects(rng, args.n)
            acqs = [sample_acquisition(site, rng, size=size) for _ in range(args.n)]
            rc = rw = pc = 0.0
            for s, a in zip(subs, acqs):
                c0, w0 = time.process_time(), time.perf_counter()
                im = render_hip(s, a, rng)
                rc += time.process_time() - c0
                rw += time.perf_counter() - w0
                c0 = time.process_time()
                preprocess_pixels(im.pixels, rescale_slope=im.rescale_slope, rescale_intercept=im.rescale_intercept,
                                  photometric=im.photometric, laterality=im.laterality,
                                  pixel_spacing_mm=im.pixel_spacing_mm)
                preprocess_mask(im.signal_mask, laterality=im.laterality, pixel_spacing_mm=im.pixel_spacing_mm)
                pc += time.process_time() - c0
                if size == "full" and kept is None:
                    kept = im
            n = args.n
            print(f"{site:4} {size:5} {n:4d} {rc / n * 1000:9.0f}ms {rw / n * 1000:10.0f}ms {pc / n * 1000:7.0f}ms "
                  f"{(rc + pc) / n * 1000:8.0f}ms")
    if args.dicom and kept is not None:
        with tempfile.TemporaryDirectory() as td:
            for syntax in ["uncompressed", *SYNTAXES]:
                p = Path(td) / f"{syntax}.dcm"
                w0 = time.perf_counter()
                write_dx(p, kept, patient_id="B1", study_uid="1.2.3.1", series_uid="1.2.3.2", sop_uid="1.2.3.3",
                         study_date="20250101", accession="A1")
                wt = time.perf_counter() - w0
                w0 = time.perf_counter()
                if syntax != "uncompressed":
                    compress(p, syntax)                # includes the decode-and-compare verification
                ct = time.perf_counter() - w0
                print(f"dicom {syntax:14} write {wt * 1000:6.0f}ms  compress+verify {ct * 1000:6.0f}ms  "
                      f"{p.stat().st_size / 1e6:5.1f} MB  ({kept.pixels.shape[0]}x{kept.pixels.shape[1]})")


if __name__ == "__main__":
    main()
