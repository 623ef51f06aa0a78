"""Parity between training and serving (issue 3, item 7):
- the training arrays equal the manifest preprocessing (``frcds.preprocess.preprocess_dataset``) of the same
  phantom's DICOM file, read back with pydicom, for every transfer syntax the generator writes;
- the committed artefact models/hip-xray-v1 is self-consistent: manifest valid and hashing the ONNX file, the
  preprocessing fixtures still equal the preprocessing of the demo DICOM files they name, and onnxruntime-node
  reproduces the PyTorch outputs stored with it.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import jsonschema
import numpy as np
import pydicom
import pytest

from frcds import preprocess
from frcds.model.data import load_cohort
from frcds.model.export import sha256
from frcds.model.manifest import SCHEMA_PATH

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(TRAINING))
ARTEFACT = os.path.join(REPO, "models", "hip-xray-v1")

sys.path.insert(0, HERE)
from test_model_pipeline import assert_parity  # noqa: E402


def test_training_arrays_equal_preprocessing_of_the_same_phantoms_dicom(tmp_path):
    out = tmp_path / "c"
    r = subprocess.run([sys.executable, os.path.join(TRAINING, "cohort.py"), "--patients", "6", "--seed", "41",
                        "--site", "A", "--out", str(out), "--dicom", "all"], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    c = load_cohort(str(out))
    row = {pid: i for i, pid in enumerate(c.tab["patient_id"])}
    files = sorted(glob.glob(os.path.join(out, "dicom", "**", "*.dcm"), recursive=True))
    assert len(files) >= len(c)
    checked = set()
    for f in files:
        ds = pydicom.dcmread(f)
        mrn = str(ds.PatientID)
        # PatientID is the MRN; the cohort's patient_id is the FHIR id. Match through the truth file.
        checked.add(mrn)
        x = preprocess.preprocess_dataset(ds)
        i = _row_of(out, mrn, row)
        assert x.dtype == np.float32 and x.shape == c.images.shape[1:]
        assert np.array_equal(x, c.images[i]), (f, float(np.abs(x - c.images[i]).max()))
    assert len(checked) == len(c)


def _row_of(out, mrn: str, row: dict) -> int:
    with open(os.path.join(out, "truth.json")) as f:
        truth = json.load(f)
    by_mrn = {p.get("mrn"): p["patient_id"] for p in truth["patients"]}
    pid = by_mrn.get(mrn, mrn)
    return row[pid]


@pytest.fixture(scope="module")
def artefact():
    man_path = os.path.join(ARTEFACT, "manifest.json")
    assert os.path.exists(man_path), "models/hip-xray-v1 must hold the trained artefact (npm run train)"
    with open(man_path) as f:
        return json.load(f)


def test_committed_manifest_is_valid_and_hashes_the_onnx_file(artefact):
    with open(SCHEMA_PATH) as f:
        jsonschema.validate(artefact, json.load(f))
    onnx_path = os.path.join(ARTEFACT, artefact["onnx"]["file"])
    assert sha256(onnx_path) == artefact["onnx"]["sha256"]
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(ARTEFACT, "**", "*"), recursive=True)
                if os.path.isfile(p))
    assert total <= 20 * 1024 * 1024, total
    assert artefact["preprocessing"] == json.loads(json.dumps(preprocess.RECIPE)), \
        "the artefact was trained with a different preprocessing recipe than the one in frcds/preprocess.py"


def test_committed_preprocessing_fixtures_match_the_demo_dicom(artefact):
    with open(os.path.join(ARTEFACT, "parity", "fixtures.json")) as f:
        fx = json.load(f)
    cases = fx["preprocess"]["cases"]
    assert cases, "no preprocessing fixtures: regenerate the artefact once the demo cohort exists"
    for case in cases:
        path = os.path.join(REPO, case["dicom"])
        assert sha256(path) == case["dicom_sha256"], f"{case['dicom']} changed; regenerate the fixtures"
        want = np.fromfile(os.path.join(ARTEFACT, "parity", case["file"]), dtype="<f4").reshape(case["shape"])
        got = preprocess.preprocess_dataset(pydicom.dcmread(path))
        assert np.array_equal(got, want), case["dicom"]


def test_committed_onnx_matches_pytorch_outputs(artefact):
    assert_parity(os.path.join(ARTEFACT, artefact["onnx"]["file"]), os.path.join(ARTEFACT, "parity"))
