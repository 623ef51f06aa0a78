"""Writes the preprocessing parity fixtures (issue 3, item 7a) for the TypeScript reimplementation.

For a handful of DICOM files — from the committed demo cohort, chosen to differ in transfer syntax, photometric
interpretation and laterality, plus one small committed test fixture (12-bit MONOCHROME1 left hip with rescale,
JPEG-LS, whose field of view is both cropped and padded) — it runs THE recipe (``frcds.preprocess.preprocess_dataset``) and writes
``test/fixtures/preprocess/<name>.json``: the DICOM path relative to the repository, its attributes, and the
expected float32 tensor (little-endian, base64). ``recipe.json`` holds ``RECIPE`` verbatim, which the Node test
passes to the TypeScript code (as the model manifest will).

Usage: sh models/training/run models/training/preprocess_fixtures.py [--max-demo 6]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

import numpy as np
import pydicom

from frcds.preprocess import RECIPE, dataset_inputs, preprocess_dataset

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "server/sandbox/demo-cohort/dicom"
OUT = REPO / "test/fixtures/preprocess"
SMALL = [REPO / "test/fixtures/dicom/parity-jpeg-ls-12-mono1-left.dcm"]


def describe(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    lat = getattr(ds, "ImageLaterality", None) or getattr(ds, "Laterality", None) or ""
    return str(ds.file_meta.TransferSyntaxUID), str(ds.PhotometricInterpretation), str(lat)


def choose_demo(max_files: int) -> list[Path]:
    """Greedy: each pick adds as many unseen (syntax, photometric, laterality) values as possible; ties by path."""
    if not DEMO.is_dir():
        return []
    files = sorted(DEMO.rglob("*.dcm"))
    info = {p: describe(p) for p in files}
    seen: list[set[str]] = [set(), set(), set()]
    chosen: list[Path] = []
    for _ in range(max_files):
        best, score = None, -1
        for p in files:
            if p in chosen:
                continue
            s = sum(v not in seen[i] for i, v in enumerate(info[p]))
            if s > score:
                best, score = p, s
        if best is None:
            break
        chosen.append(best)
        for i, v in enumerate(info[best]):
            seen[i].add(v)
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-demo", type=int, default=6)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    with open(OUT / "recipe.json", "w") as f:
        json.dump(RECIPE, f, indent=2)
        f.write("\n")
    for path in choose_demo(args.max_demo) + SMALL:
        ds = pydicom.dcmread(path)
        tensor = preprocess_dataset(ds)
        ts, photometric, lat = describe(path)
        kw = dataset_inputs(ds)
        rel = os.path.relpath(path, REPO)
        name = f"demo-{path.stem[-10:].replace('.', '_')}" if "demo-cohort" in rel else f"fixture-{path.stem}"
        doc = {
            "dicom": rel,
            "transferSyntax": ts,
            "photometric": photometric,
            "laterality": lat,
            "rescale": [kw["rescale_slope"], kw["rescale_intercept"]],
            "pixelSpacingMm": list(kw["pixel_spacing_mm"]),
            "recipe": RECIPE["name"],
            "shape": list(tensor.shape),
            "dtype": "float32",
            "tensorBase64": base64.b64encode(np.ascontiguousarray(tensor, dtype="<f4").tobytes()).decode("ascii"),
        }
        with open(OUT / f"{name}.json", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"{name}: {rel} {ts} {photometric} {lat or '-'} mean={float(tensor.mean()):.4f}")


if __name__ == "__main__":
    main()
