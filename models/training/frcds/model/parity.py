"""Parity fixtures (issue 3, item 7) written to ``<out>/parity/``:

(a) ``preprocess``: a few demo-cohort DICOM files (referenced by repository path and sha256, not copied: full-size
    files would blow the 20 MB artefact budget) with the exact float32 tensor ``frcds.preprocess.preprocess_dataset``
    makes from each, for the TypeScript preprocessing to match (mean absolute difference <= 1e-3);
(b) ``model``: input tensors (those DICOM tensors, site-A test images, a non-hip image) with the outputs the PyTorch
    graph gives, for the ONNX runtime in Node to match to 1e-4.

Binary files are raw little-endian float32 in C order, so Node reads them with one ``new Float32Array(buffer)``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os

import numpy as np
import torch

log = logging.getLogger("frcds.model")

DEMO_DICOM = os.path.join("server", "sandbox", "demo-cohort", "dicom")


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _write(arr: np.ndarray, path: str) -> dict:
    a = np.ascontiguousarray(arr, dtype="<f4")
    a.tofile(path)
    return {"file": os.path.basename(path), "shape": list(a.shape), "dtype": "float32", "sha256": _sha(path)}


def demo_dicom_files(repo_root: str, count: int) -> list[str]:
    """A spread of demo files: prefer distinct transfer syntaxes and photometric interpretations."""
    import pydicom
    files = sorted(glob.glob(os.path.join(repo_root, DEMO_DICOM, "**", "*.dcm"), recursive=True))
    chosen, seen = [], set()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:          # a broken file is the cohort's test's business, not a parity fixture
            continue
        key = (str(ds.file_meta.TransferSyntaxUID), str(getattr(ds, "PhotometricInterpretation", "")),
               str(getattr(ds, "ImageLaterality", "")))
        if key not in seen:
            seen.add(key)
            chosen.append(f)
        if len(chosen) >= count:
            break
    return chosen


V1_OUTPUTS = ("log_hazard", "cam", "ood_distance")
V1_TOLERANCE_RULE = ("log_hazard: |diff| <= 1e-4; cam and ood_distance: |diff| <= 1e-4 * max(1, max |expected| "
                     "of that output)")


def write_fixtures(cfg: dict, graph, a, split, nonhip_imgs, out_dir: str, work: str,
                   outputs: tuple[str, ...] = V1_OUTPUTS, tolerance_rule: str = V1_TOLERANCE_RULE) -> dict:
    """``a``: a cohort with ``images``, ``tab`` (patient_id, should_exclude) and ``clinical()``; ``outputs``: the
    graph's output names in order."""
    from .pipeline import REPO_ROOT
    pdir = os.path.join(out_dir, "parity")
    os.makedirs(pdir, exist_ok=True)
    for old in glob.glob(os.path.join(pdir, "*")):
        os.remove(old)
    count = int(cfg.get("parity", {}).get("dicom_files", 4))
    pre, inputs, labels = [], [], []
    files = demo_dicom_files(REPO_ROOT, count)
    if files:
        import pydicom
        from frcds import preprocess
        for i, f in enumerate(files):
            ds = pydicom.dcmread(f)
            x = np.asarray(preprocess.preprocess_dataset(ds), dtype=np.float32)
            meta = _write(x, os.path.join(pdir, f"dicom-{i}.preprocessed.f32"))
            meta.update({"dicom": os.path.relpath(f, REPO_ROOT).replace(os.sep, "/"), "dicom_sha256": _sha(f),
                         "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
                         "photometric": str(ds.PhotometricInterpretation),
                         "laterality": str(getattr(ds, "ImageLaterality", ""))})
            pre.append(meta)
            inputs.append(x)
            labels.append(f"demo dicom {i}")
    else:
        log.warning("no demo-cohort DICOM under %s: preprocessing parity fixtures (a) not written", DEMO_DICOM)
    te = split["test"][~a.tab["should_exclude"][split["test"]]]
    clin_all = a.clinical()
    rng = np.random.default_rng(5)
    pick = rng.choice(te, size=min(4, len(te)), replace=False)
    # demo-DICOM and non-hip rows get plausible QFracture linear predictors borrowed from site-A test rows
    clin = [clin_all[te[i % len(te)]] for i in range(len(inputs))]
    inputs += [a.images[i] for i in pick]
    labels += [f"site-A test patient {a.tab['patient_id'][i]}" for i in pick]
    clin += [clin_all[i] for i in pick]
    if nonhip_imgs is not None and len(nonhip_imgs):
        inputs.append(nonhip_imgs[0])
        labels.append("non-hip image")
        clin.append(clin_all[te[0]])
    x = np.stack(inputs)[:, None].astype(np.float32)
    c = np.stack(clin).astype(np.float32)
    with torch.no_grad():
        res = graph(torch.from_numpy(x), torch.from_numpy(c))
    model = {"inputs": {"image": _write(x, os.path.join(pdir, "input-image.f32")),
                        "clinical": _write(c, os.path.join(pdir, "input-clinical.f32"))},
             "expected": {name: _write(v.numpy(), os.path.join(pdir, f"expected-{name}.f32"))
                          for name, v in zip(outputs, res)},
             "rows": labels, "tolerance_abs": 1e-4, "tolerance_rule": tolerance_rule}
    fixtures = {"preprocess": {"cases": pre, "tolerance_mean_abs": 1e-3}, "model": model}
    with open(os.path.join(pdir, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, indent=1)
    return {"file": "parity/fixtures.json", "preprocess_cases": len(pre), "model_rows": len(labels)}
