"""FHIR charts of the synthetic cohort: schema-valid R4 transaction Bundles, deterministic PUT ids, codes from the
ValueSets, nothing dated after the index radiograph, and the chart carries exactly what the EHR view says
(QFracture-2012 recomputed from the Bundle alone equals the generator's qf_lp); the site and MRN on every Patient;
DXA results as the truth has them."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from fhirschema import schema_errors
from frcds import qfracture
from frcds.cohort import dxa, fhir
from frcds.cohort import valuesets as vsets
from frcds.cohort.cli import generate
from frcds.cohort.ehr import alcohol_category
from frcds.cohort.patient import CohortConfig

N = 60


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fhir-cohort")
    generate([CohortConfig(seed=11, site="B", n=N, images=False)], str(out), workers=1, config={"test": True})
    return out


@pytest.fixture(scope="module")
def bundles(cohort) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((cohort / "fhir").glob("*.json"))}


@pytest.fixture(scope="module")
def truth(cohort) -> dict[str, dict]:
    return {t["patient_id"]: t for t in json.loads((cohort / "truth.json").read_text())["patients"]}


def test_one_bundle_per_patient(bundles, truth):
    assert len(bundles) == N and set(bundles) == set(truth)


def test_bundles_validate_against_fhir_r4_schema(bundles):
    errs = [e for b in bundles.values() for e in schema_errors(b)]
    assert errs == []


def test_schema_check_catches_errors(bundles):
    b = json.loads(json.dumps(next(iter(bundles.values()))))
    b["entry"][0]["resource"]["gender"] = "bogus"
    b["entry"][0]["request"]["method"] = "PATCHY"
    assert len(schema_errors(b)) == 2


ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def test_entries_are_idempotent_puts_with_resolvable_references(bundles):
    for b in bundles.values():
        assert b["type"] == "transaction"
        urls = set()
        for e in b["entry"]:
            r = e["resource"]
            assert ID.match(r["id"])
            assert e["request"] == {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
            urls.add(e["request"]["url"])
        refs = re.findall(r'"reference": "([^"]+)"', json.dumps(b))
        assert refs and all(ref in urls for ref in refs), set(refs) - urls


def _resources(b: dict, rt: str) -> list[dict]:
    return [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == rt]


def test_patient_identifier_and_imaging_uids_match_truth(bundles, truth):
    for pid, b in bundles.items():
        t = truth[pid]
        (pat,) = _resources(b, "Patient")
        assert pat["identifier"][0]["system"] == "urn:frcds:synthetic-mrn"
        assert pat["identifier"][0]["value"] == t["mrn"]
        (study,) = _resources(b, "ImagingStudy")
        assert study["identifier"][0]["value"] == "urn:oid:" + t["dicom"]["study_uid"]
        s = study["series"][0]
        assert s["uid"] == t["dicom"]["series_uid"] and s["instance"][0]["uid"] == t["dicom"]["sop_uid"]
        assert s["instance"][0]["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.1.1"
        assert s["bodySite"]["code"] == "24136001" and s["laterality"]["code"] in ("7771000", "24028007")
        (ep,) = _resources(b, "Endpoint")
        assert ep["connectionType"]["code"] == "dicom-wado-rs" and ep["address"] == "https://pacs.invalid/dicom-web"
        (rep,) = _resources(b, "DiagnosticReport")
        assert rep["status"] == "final" and rep["imagingStudy"] == [{"reference": f"ImagingStudy/{study['id']}"}]


def _codings(o):
    if isinstance(o, dict):
        if "system" in o and "code" in o and isinstance(o["code"], str):
            yield o
        for v in o.values():
            yield from _codings(v)
    elif isinstance(o, list):
        for v in o:
            yield from _codings(v)


CLINICAL_SYSTEMS = {"http://snomed.info/sct", "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", "urn:oid:2.16.840.1.113883.6.238"}


def test_every_clinical_code_comes_from_a_valueset(bundles):
    known = {(c.system, c.code) for vid in vsets.all_valuesets() for c in vsets.codes(vid)}
    used = {(c["system"], c["code"]) for b in bundles.values() for c in _codings(b) if c["system"] in CLINICAL_SYSTEMS}
    assert used and used <= known, used - known


DATE_KEYS = {"birthDate", "onsetDateTime", "recordedDate", "effectiveDateTime", "authoredOn", "issued", "started",
             "date", "start", "end"}


def _dates(o, key=None):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _dates(v, k)
    elif isinstance(o, list):
        for v in o:
            yield from _dates(v, key)
    elif isinstance(o, str) and key in DATE_KEYS:
        yield key, dt.date.fromisoformat(o[:10])


def test_nothing_in_the_chart_after_the_index_date(bundles, truth):
    n_dates = 0
    for pid, b in bundles.items():
        index = dt.date.fromisoformat(truth[pid]["index_datetime"][:10])
        for key, d in _dates(b):
            n_dates += 1
            assert d <= index, (pid, key, d, index)
    assert n_dates > 5 * N


def _qf_inputs_from_bundle(b: dict) -> tuple[str, dict]:
    """An independent reading of the chart, the way the service must do it (README, 'What the EHR knows')."""
    code_to_input = {}
    for vid in vsets.all_valuesets():
        m = re.match(r"qfracture-(b-.*|fh-osteoporosis)$", vid)
        if m:
            for c in vsets.codes(vid):
                code_to_input[(c.system, c.code)] = m.group(1).replace("-", "_")
    (pat,) = _resources(b, "Patient")
    (study,) = _resources(b, "ImagingStudy")
    index = dt.date.fromisoformat(study["started"][:10])
    birth = dt.date.fromisoformat(pat["birthDate"])
    age = index.year - birth.year - ((index.month, index.day) < (birth.month, birth.day))
    eth = 1
    for ext in pat.get("extension", []):
        if ext["url"].endswith("Extension-UKCore-EthnicCategory"):
            c = ext["valueCodeableConcept"]["coding"][0]["code"]
            eth = next(int(v.rsplit("-", 1)[1]) for v in vsets.all_valuesets()
                       if v.startswith("qfracture-ethrisk-") and c in {x.code for x in vsets.codes(v)})
    x = {"age": age, "bmi": 27.0, "ethrisk": eth, "smoke_cat": 0, "alcohol_cat6": 0}
    for o in _resources(b, "Observation"):
        code = o["code"]["coding"][0]["code"]
        if code == "39156-5":
            x["bmi"] = qfracture.clamp_bmi(o["valueQuantity"]["value"])
        elif code == "72166-2":
            c = o["valueCodeableConcept"]["coding"][0]["code"]
            x["smoke_cat"] = next(k for k in range(5) if c in {y.code for y in vsets.codes(f"qfracture-smoke-cat-{k}")})
        elif code == "74013-4":
            x["alcohol_cat6"] = alcohol_category(o["valueQuantity"]["value"])
    for rt, path in (("Condition", lambda r: r["code"]), ("MedicationRequest", lambda r: r["medicationCodeableConcept"]),
                     ("FamilyMemberHistory", lambda r: r["condition"][0]["code"])):
        for r in _resources(b, rt):
            c = path(r)["coding"][0]
            x[code_to_input[(c["system"], c["code"])]] = 1
    return pat["gender"], x


def test_qfracture_recomputed_from_the_chart_equals_the_generators_ehr_value(bundles, cohort):
    tab = np.load(cohort / "arrays" / "tabular.npz")
    order = {p: i for i, p in enumerate(tab["patient_id"].tolist())}
    for pid, b in bundles.items():
        sex, x = _qf_inputs_from_bundle(b)
        for o in ("hip", "mof"):
            lp = qfracture.linear_predictor(o, sex, x)
            assert math.isclose(lp, float(tab[f"qf_lp_{o}"][order[pid]]), abs_tol=1e-9), (pid, o)


def test_the_chart_has_realistic_gaps(bundles, truth):
    """Site B records BMI for ≈75 % and ethnicity for ≈75 %; falls are under-coded (sensitivity 0.6)."""
    no_bmi = sum(not any(r["code"]["coding"][0]["code"] == "39156-5" for r in _resources(b, "Observation"))
                 for b in bundles.values())
    assert 0.08 * N <= no_bmi <= 0.45 * N
    not_stated = sum(t["ehr"]["nhs_ethnic"] == "Z" for t in truth.values())
    assert 0.08 * N <= not_stated <= 0.45 * N
    assert all(t["ehr"]["flags"][b] <= t["flags"][b] for t in truth.values() for b in t["flags"] if b != "b_fracture4")


def test_patient_site_and_medical_record_number(bundles, truth):
    """Every Patient names its hospital (managingOrganization, the MRN's assigner) and the Organization is in the
    bundle; the MRN keeps the synthetic-mrn system (= DICOM PatientID) with the v2-0203 MR type."""
    for pid, b in bundles.items():
        (pat,) = _resources(b, "Patient")
        (org,) = _resources(b, "Organization")
        name = fhir.SITE_NAMES[truth[pid]["site"]]
        assert org["name"] == name and org["id"] == fhir.site_organization_id(truth[pid]["site"])
        ref = {"reference": f"Organization/{org['id']}", "display": name}
        assert pat["managingOrganization"] == ref
        mrn = pat["identifier"][0]
        assert mrn["type"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                                            "display": "Medical record number"}
        assert mrn["system"] == fhir.MRN_SYSTEM and mrn["value"] == truth[pid]["mrn"] and mrn["assigner"] == ref


def test_dxa_results_match_truth_and_the_valueset(bundles, truth):
    with_dxa = 0
    for pid, b in bundles.items():
        t = truth[pid]
        obs = {o["id"]: o for o in _resources(b, "Observation") if "-dxa-" in o["id"]}
        if t["dxa"] is None:
            assert obs == {}
            continue
        with_dxa += 1
        d = t["dxa"]
        bmd, ts = obs[f"{pid}-dxa-bmd"], obs[f"{pid}-dxa-t-score"]
        for o in (bmd, ts):
            c = o["code"]["coding"][0]
            assert c["code"] in {x.code for x in vsets.codes("dxa-result")} and c["system"] == "http://loinc.org"
            assert o["effectiveDateTime"] == d["date"] and o["status"] == "final"
            assert o["category"][0]["coding"][0]["code"] == "imaging"
        assert (ts["code"]["coding"][0]["code"], bmd["code"]["coding"][0]["code"]) == fhir.DXA_CODES[d["laterality"]]
        assert bmd["valueQuantity"] == {"value": d["bmd_g_cm2"], "unit": "g/cm2", "system": "http://unitsofmeasure.org",
                                        "code": "g/cm2"}
        assert ts["valueQuantity"]["value"] == d["t_score"] and ts["valueQuantity"]["code"] == "{T-score}"
        assert ts["derivedFrom"] == [{"reference": f"Observation/{bmd['id']}"}]
        mean, sd = dxa.REFERENCE[t["sex"]]
        assert d["t_score"] == round((d["bmd_g_cm2"] - mean) / sd, 1)   # the reported T-score is the reported BMD's
        days = (dt.date.fromisoformat(t["index_datetime"][:10]) - dt.date.fromisoformat(d["date"])).days
        assert dxa.MIN_DAYS_BEFORE <= days <= dxa.MAX_YEARS_BEFORE * 365.25 + 1
        loss = {"female": 0.05, "male": 0.03}[t["sex"]]
        assert math.isclose(d["true_t_at_scan"], t["bmd_t"] + loss * d["years_before_index"], abs_tol=1e-9)
    assert 0.12 * N <= with_dxa <= 0.55 * N, with_dxa
