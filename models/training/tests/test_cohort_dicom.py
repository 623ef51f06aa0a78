"""DICOM written by the cohort CLI agrees with the FHIR chart and the training arrays: PatientID = Patient
identifier, UIDs = ImagingStudy, StudyDate = ImagingStudy date, laterality, the chosen transfer syntax, and
preprocessing the DICOM as the service will gives exactly the training array. (Image realism and encoder tests
belong to the imaging tests.)"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from frcds import preprocess
from frcds.cohort.cli import generate
from frcds.cohort.patient import CohortConfig, Override, SYNTAXES

TS_UID = {"explicit": "1.2.840.10008.1.2.1", "jpeg-lossless": "1.2.840.10008.1.2.4.70",
          "jpeg-ls": "1.2.840.10008.1.2.4.80", "rle": "1.2.840.10008.1.2.5", "jpeg2000": "1.2.840.10008.1.2.4.90"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dicom-cohort")
    ov = {i: Override(size="demo", syntax=s) for i, s in enumerate(SYNTAXES)}
    cfg = CohortConfig(seed=21, site="A", n=len(SYNTAXES), n_dicom=len(SYNTAXES), size="demo", overrides=ov)
    generate([cfg], str(out), workers=1, config={"test": True})
    return out


def test_dicom_matches_chart_and_arrays(cohort):
    truth = json.loads((cohort / "truth.json").read_text())["patients"]
    arrays = np.load(cohort / "arrays" / "images.npz")
    assert len(truth) == len(SYNTAXES)
    for i, t in enumerate(truth):
        d = t["dicom"]
        assert d["written"] and d["syntax"] == SYNTAXES[i]
        path = cohort / d["path"]
        assert path.parts[-3:] == (d["study_uid"], d["series_uid"], d["sop_uid"] + ".dcm")
        ds = pydicom.dcmread(path)
        bundle = json.loads((cohort / "fhir" / f"{t['patient_id']}.json").read_text())
        res = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
        assert ds.PatientID == res["Patient"]["identifier"][0]["value"] == t["mrn"]
        study = res["ImagingStudy"]
        assert ds.StudyInstanceUID == d["study_uid"] and study["identifier"][0]["value"] == "urn:oid:" + d["study_uid"]
        assert ds.SeriesInstanceUID == study["series"][0]["uid"]
        assert ds.SOPInstanceUID == study["series"][0]["instance"][0]["uid"]
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert ds.StudyDate == study["started"][:10].replace("-", "")
        assert ds.file_meta.TransferSyntaxUID == TS_UID[SYNTAXES[i]]
        side = {"L": "7771000", "R": "24028007"}[t["image"]["laterality"]]
        assert study["series"][0]["laterality"]["code"] == side
        assert ds.AccessionNumber == study["identifier"][1]["value"]
        # the serve-time preprocessing of the DICOM equals the training array, bit for bit
        np.testing.assert_array_equal(preprocess.preprocess_dataset(ds), arrays["images"][i])


def test_dcmdump_reads_every_file(cohort):
    files = sorted((cohort / "dicom").rglob("*.dcm"))
    assert len(files) == len(SYNTAXES)
    for f in files:
        r = subprocess.run(["dcmdump", "-q", str(f)], capture_output=True, text=True)
        assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
