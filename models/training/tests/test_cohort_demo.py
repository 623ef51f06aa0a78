"""The committed demo cohort (server/sandbox/demo-cohort) has what the demo and the service tests rely on."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pydicom
import pytest

from frcds.cohort.demo import DATA_CUTOFF, INDEX_END, INDEX_START, N_SITE_A, N_SITE_B
from frcds.cohort.fhir import SITE_NAMES
from frcds.cohort.patient import SYNTAXES

DEMO = Path(__file__).resolve().parents[3] / "server" / "sandbox" / "demo-cohort"


@pytest.fixture(scope="module")
def truth() -> list[dict]:
    return json.loads((DEMO / "truth.json").read_text())["patients"]


def _ct_demo_file(p: Path) -> bool:
    rel = p.relative_to(DEMO).parts
    return rel[:2] == ("dicom", "ct") or rel[0] == "ct" or p.name.startswith("demo-ct-")


def test_size_budget():
    # the demo CT patients (frcds.ct.demo: dicom/ct, ct/, fhir/demo-ct-*) have their own budget (test_ct_demo.py)
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file() and not _ct_demo_file(p))
    assert total <= 30_000_000, total


def test_composition(truth):
    assert sum(t["site"] == "A" for t in truth) == N_SITE_A and sum(t["site"] == "B" for t in truth) == N_SITE_B
    assert {t["dicom"]["syntax"] for t in truth} == set(SYNTAXES)
    assert sum(bool(t["image"]["artefact"]) for t in truth) >= 1
    assert all(t["image"]["should_exclude"] == bool(t["image"]["artefact"]) for t in truth)
    full = [t for t in truth if min(t["image"]["rows"], t["image"]["columns"]) >= 1900]   # full size: ≈2,000–2,500 px
    assert len(full) >= 2
    assert len(list((DEMO / "fhir").glob("demo-[ab]-*.json"))) == len(truth)


def test_recent_imaging_and_no_future_outcomes(truth):
    for t in truth:
        d = dt.date.fromisoformat(t["index_datetime"][:10])
        assert INDEX_START <= d <= INDEX_END
        assert t["event_hip"] == 0 and t["event_mof"] == 0
        assert t["time_mof"] <= (DATA_CUTOFF - d).days / 365.25 + 1e-9


def test_recent_prior_fractures_in_the_charts(truth):
    recent = 0
    for t in truth:
        b = json.loads((DEMO / "fhir" / f"{t['patient_id']}.json").read_text())
        index = dt.date.fromisoformat(t["index_datetime"][:10])
        for e in b["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Condition" and "-fracture-" in r["id"]:
                onset = dt.date.fromisoformat(r["onsetDateTime"])
                recent += (index - onset).days < 2 * 365
    assert recent >= 3


def test_dicom_files_present_and_readable(truth):
    for t in truth:
        ds = pydicom.dcmread(DEMO / t["dicom"]["path"], stop_before_pixels=True)
        assert ds.PatientID == t["mrn"] and ds.StudyInstanceUID == t["dicom"]["study_uid"]


def _bundle(t: dict) -> dict:
    return json.loads((DEMO / "fhir" / f"{t['patient_id']}.json").read_text())


def test_every_patient_has_a_site_and_an_mrn(truth):
    """Site = the hospital that holds the chart (managingOrganization, the MRN's assigner, the radiograph's
    InstitutionName); MRN = the DICOM PatientID, typed MR."""
    for t in truth:
        (pat,) = [e["resource"] for e in _bundle(t)["entry"] if e["resource"]["resourceType"] == "Patient"]
        name = SITE_NAMES[t["site"]]
        assert pat["managingOrganization"]["display"] == name
        mrn = next(i for i in pat["identifier"] if i["type"]["coding"][0]["code"] == "MR")
        assert mrn["value"] == t["mrn"] and mrn["system"] == "urn:frcds:synthetic-mrn"
        assert mrn["assigner"]["display"] == name
        ds = pydicom.dcmread(DEMO / t["dicom"]["path"], stop_before_pixels=True)
        assert ds.InstitutionName == name and ds.PatientID == mrn["value"]


def test_about_a_third_have_a_dxa_result_in_the_chart(truth):
    with_dxa = [t for t in truth if t["dxa"] is not None]
    assert 0.25 * len(truth) <= len(with_dxa) <= 0.45 * len(truth)
    assert {t["site"] for t in with_dxa} == {"A", "B"}
    for t in truth:
        ts = [e["resource"] for e in _bundle(t)["entry"] if e["resource"]["id"].endswith("-dxa-t-score")]
        if t["dxa"] is None:
            assert ts == []
        else:
            assert ts[0]["valueQuantity"]["value"] == t["dxa"]["t_score"]
            assert ts[0]["effectiveDateTime"] == t["dxa"]["date"] < t["index_datetime"][:10]
