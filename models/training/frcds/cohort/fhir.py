"""FHIR R4 chart of one synthetic patient as a transaction Bundle (contract 4; issue 2 item 7).

Every entry is ``PUT <Type>/<id>`` with a deterministic id, so seeding the same cohort twice is idempotent, and
references are ``<Type>/<id>``. Shared resources (the PACS Endpoint, the site's Organization) have one id and are
written by every bundle that refers to them, so each bundle stands alone. Every code comes from
``fhir-profiles/valuesets`` (:mod:`valuesets`). Nothing dated after the index date (the radiograph) is written:
outcomes live only in the truth files.

Hand-written dicts rather than a FHIR model library (fhir.resources is not packaged for Debian); the tests validate
every bundle against the official FHIR R4 JSON Schema.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from . import valuesets as vsets
from .dxa import DxaResult
from .ehr import ALCOHOL_UNITS, EhrView
from .population import NHS_ETHNIC_TO_ETHRISK, Person

MRN_SYSTEM = "urn:frcds:synthetic-mrn"
# The hospital of each site: Patient.managingOrganization and the MRN's assigner (and DICOM InstitutionName).
SITE_NAMES = {"A": "Synthetic hospital A", "B": "Synthetic hospital B"}
SITE_SYSTEM = "urn:frcds:site"
# DXA femoral-neck result codes (ValueSet dxa-result) by scanned side: (T-score, BMD).
DXA_CODES = {"L": ("80948-3", "80954-1"), "R": ("80947-5", "80953-3")}
PACS_ENDPOINT_ID = "frcds-pacs"
PACS_ADDRESS = "https://pacs.invalid/dicom-web"
DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
UK_ETHNIC_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
US_RACE_EXT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_ETH_EXT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
SYNTHETIC_TAG = {"system": "urn:frcds:tag", "code": "synthetic", "display": "Synthetic data (Fracture Risk CDS)"}
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
OMB_RACE = {1: "2106-3", 2: "2028-9", 3: "2028-9", 4: "2028-9", 5: "2028-9", 8: "2028-9", 6: "2054-5", 7: "2054-5",
            9: "2131-1"}
FRACTURE_CODE = {"hip": "5913000", "wrist": "65966004", "spine": "15724005", "shoulder": "66308002"}
CONDITION_FLAGS = ("b_asthmacopd", "b_anycancer", "b_cvd", "b_dementia", "b_endocrine", "b_epilepsy2", "b_falls",
                   "b_liver", "b_malabsorption", "b_parkinsons", "b_ra_sle", "b_renal", "b_type1", "b_type2",
                   "b_carehome")
MEDICATION_FLAGS = ("b_corticosteroids", "b_antidepressant", "b_hrt_oest")
GIVEN = {"female": ("Ada", "Brenda", "Carol", "Dorothy", "Edith", "Fatima", "Grace", "Hannah", "Iris", "Joan",
                    "Kamala", "Lin", "Margaret", "Nia", "Olive", "Priya", "Rose", "Sarah", "Valerie", "Yasmin"),
         "male": ("Arthur", "Bernard", "Chidi", "David", "Edward", "Frank", "George", "Harold", "Imran", "James",
                  "Kenneth", "Leon", "Mohammed", "Norman", "Oliver", "Peter", "Raj", "Stanley", "Thomas", "Wei")}
FAMILY = ("Synthetic-Abbott", "Synthetic-Baker", "Synthetic-Carter", "Synthetic-Dawson", "Synthetic-Evans",
          "Synthetic-Fisher", "Synthetic-Green", "Synthetic-Hughes", "Synthetic-Iqbal", "Synthetic-Jones",
          "Synthetic-Khan", "Synthetic-Lewis", "Synthetic-Mensah", "Synthetic-Nolan", "Synthetic-Okafor",
          "Synthetic-Patel", "Synthetic-Quinn", "Synthetic-Reid", "Synthetic-Singh", "Synthetic-Taylor")


@dataclass(frozen=True)
class StudyRefs:
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    laterality: str        # 'L' | 'R'
    started: dt.datetime   # index date + time
    report_text: str


def _date(d: dt.date) -> str:
    return d.isoformat()


def _dtm(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def years_before(index: dt.date, years: float) -> dt.date:
    return index - dt.timedelta(days=int(round(years * 365.25)))


def _cc(c: vsets.Code, text: str | None = None) -> dict:
    out = {"coding": [c.coding()]}
    if text:
        out["text"] = text
    return out


# Codes of a condition only one sex has (prostate), or that one sex has so rarely that a synthetic chart showing it
# would read as an error (breast cancer in men, about 1 % of cases): drawn only for that sex.
SEX_SPECIFIC_CODES = {"399068003": "male", "254837009": "female"}


def _pick(rng: np.random.Generator, vs_id: str, sex: str | None = None) -> vsets.Code:
    cs = vsets.codes(vs_id)
    c = cs[int(rng.integers(len(cs)))]
    if sex is None or SEX_SPECIFIC_CODES.get(c.code, sex) == sex:
        return c
    # A second draw only when the first does not fit the patient's sex, so every other chart is unchanged.
    fits = [x for x in cs if SEX_SPECIFIC_CODES.get(x.code, sex) == sex]
    return fits[int(rng.integers(len(fits)))]


def birth_date(index: dt.date, age: float) -> dt.date:
    return index - dt.timedelta(days=int(np.floor(age * 365.2425)))


def completed_years(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def site_organization_id(site: str) -> str:
    return f"frcds-site-{site.lower()}"


def build_bundle(*, pid: str, mrn: str, person: Person, ehr: EhrView, index: dt.date, birth: dt.date,
                 study: StudyRefs | None, rng: np.random.Generator, site: str,
                 dxa: DxaResult | None = None) -> dict:
    """The patient's chart as a FHIR R4 transaction Bundle (dict). ``rng`` is the chart stream; what is added
    without drawing from it (the site's Organization, the DXA result drawn from its own stream) goes after the
    other entries, so adding it leaves every earlier entry as it was."""
    entries: list[dict] = []

    def put(res: dict) -> dict:
        res.setdefault("meta", {"tag": [SYNTHETIC_TAG]})
        entries.append({"resource": res, "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}})
        return res

    pref = {"reference": f"Patient/{pid}"}
    # (the fracture loop below reuses the name ``site`` for a body site)
    org_id, org_name, site_code = site_organization_id(site), SITE_NAMES[site], site
    org = {"reference": f"Organization/{org_id}", "display": org_name}
    sex = person.sex
    given = GIVEN[sex][int(rng.integers(len(GIVEN[sex])))]
    family = FAMILY[int(rng.integers(len(FAMILY)))]
    eth_code = vsets.code(f"qfracture-ethrisk-{NHS_ETHNIC_TO_ETHRISK.get(ehr.nhs_ethnic, 1)}", ehr.nhs_ethnic)
    ext = [{"url": UK_ETHNIC_EXT, "valueCodeableConcept": _cc(eth_code)}]
    if ehr.nhs_ethnic != "Z":
        race = vsets.code("us-core-omb-race", OMB_RACE[NHS_ETHNIC_TO_ETHRISK[ehr.nhs_ethnic]])
        ext.append({"url": US_RACE_EXT, "extension": [{"url": "ombCategory", "valueCoding": race.coding()},
                                                      {"url": "text", "valueString": eth_code.display}]})
        not_hisp = vsets.code("us-core-omb-ethnicity", "2186-5")
        ext.append({"url": US_ETH_EXT, "extension": [{"url": "ombCategory", "valueCoding": not_hisp.coding()},
                                                     {"url": "text", "valueString": not_hisp.display}]})
    put({"resourceType": "Patient", "id": pid, "extension": ext,
         "identifier": [{"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                              "code": "MR", "display": "Medical record number"}]},
                         "system": MRN_SYSTEM, "value": mrn, "assigner": dict(org)}],
         "active": True, "name": [{"use": "official", "family": family, "given": [given]}],
         "gender": sex, "birthDate": _date(birth), "managingOrganization": dict(org)})

    # General-practice consultation where the measurements and lifestyle were last recorded.
    gp_date = years_before(index, ehr.obs_years_before)
    gp = put({"resourceType": "Encounter", "id": f"{pid}-enc-gp", "status": "finished",
              "class": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
              "type": [_cc(vsets.code("encounter-type", "11429006"))], "subject": pref,
              "period": {"start": _date(gp_date), "end": _date(gp_date)}})
    gref = {"reference": f"Encounter/{gp['id']}"}

    def obs(key: str, loinc: str, cat: str, value: dict) -> None:
        put({"resourceType": "Observation", "id": f"{pid}-obs-{key}", "status": "final",
             "category": [{"coding": [{"system": OBS_CAT, "code": cat}]}],
             "code": _cc(vsets.code("observation-codes", loinc)), "subject": pref, "encounter": gref,
             "effectiveDateTime": _date(gp_date), **value})

    if ehr.weight_kg is not None:
        obs("weight", "29463-7", "vital-signs",
            {"valueQuantity": {"value": ehr.weight_kg, "unit": "kg", "system": UCUM, "code": "kg"}})
        obs("height", "8302-2", "vital-signs",
            {"valueQuantity": {"value": ehr.height_cm, "unit": "cm", "system": UCUM, "code": "cm"}})
        obs("bmi", "39156-5", "vital-signs",
            {"valueQuantity": {"value": ehr.bmi, "unit": "kg/m2", "system": UCUM, "code": "kg/m2"}})
    if ehr.smoke_cat is not None:
        obs("smoking", "72166-2", "social-history",
            {"valueCodeableConcept": _cc(vsets.codes(f"qfracture-smoke-cat-{ehr.smoke_cat}")[0])})
    if ehr.alcohol_cat6 is not None:
        obs("alcohol", "74013-4", "social-history",
            {"valueQuantity": {"value": ALCOHOL_UNITS[ehr.alcohol_cat6], "unit": "units/day", "system": UCUM,
                               "code": "/d"}})

    for b in CONDITION_FLAGS:
        if not ehr.flags.get(b):
            continue
        onset = years_before(index, person.onset_years.get(b, 1.0))
        cat = "problem-list-item"
        put({"resourceType": "Condition", "id": f"{pid}-cond-{b[2:].replace('_', '-')}",
             "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": "active"}]},
             "verificationStatus": {"coding": [{"system": COND_VER, "code": "confirmed"}]},
             "category": [{"coding": [{"system": COND_CAT, "code": cat}]}],
             "code": _cc(_pick(rng, vsets.qf_valueset_id(b), person.sex)), "subject": pref,
             "onsetDateTime": _date(onset), "recordedDate": _date(onset)})
    for k, (site, yrs) in enumerate(ehr.fractures):
        onset = years_before(index, yrs)
        put({"resourceType": "Condition", "id": f"{pid}-fracture-{k + 1}",
             "clinicalStatus": {"coding": [{"system": COND_CLINICAL, "code": "resolved" if yrs > 1.0 else "active"}]},
             "verificationStatus": {"coding": [{"system": COND_VER, "code": "confirmed"}]},
             "category": [{"coding": [{"system": COND_CAT, "code": "encounter-diagnosis"}]}],
             "code": _cc(vsets.code("qfracture-b-fracture4", FRACTURE_CODE[site])), "subject": pref,
             "onsetDateTime": _date(onset), "recordedDate": _date(onset)})
    for b in MEDICATION_FLAGS:
        if not ehr.flags.get(b):
            continue
        authored = index - dt.timedelta(days=int(rng.integers(14, 150)))
        put({"resourceType": "MedicationRequest", "id": f"{pid}-med-{b[2:].replace('_', '-')}",
             "status": "active", "intent": "order",
             "medicationCodeableConcept": _cc(_pick(rng, vsets.qf_valueset_id(b))), "subject": pref,
             "authoredOn": _date(authored), "dosageInstruction": [{"text": "As directed (synthetic record)"}]})
    if ehr.flags.get("fh_osteoporosis"):
        put({"resourceType": "FamilyMemberHistory", "id": f"{pid}-fmh-osteoporosis", "status": "completed",
             "patient": pref, "date": _date(gp_date),
             "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                          "code": "MTH", "display": "mother"}]},
             "condition": [{"code": _cc(vsets.codes("qfracture-fh-osteoporosis")[0])}]})

    if study is not None:
        put({"resourceType": "Endpoint", "id": PACS_ENDPOINT_ID, "status": "active",
             "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                "code": "dicom-wado-rs"},
             "name": "Hospital PACS (DICOMweb)", "payloadType": [{"text": "DICOM"}],
             "payloadMimeType": ["application/dicom"], "address": PACS_ADDRESS})
        xr = put({"resourceType": "Encounter", "id": f"{pid}-enc-xr", "status": "finished",
                  "class": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
                  "type": [_cc(vsets.code("encounter-type", "363680008"))], "subject": pref,
                  "period": {"start": _dtm(study.started), "end": _dtm(study.started + dt.timedelta(minutes=20))}})
        side = {"L": ("26401-0", "7771000", "left"), "R": ("26402-8", "24028007", "right")}[study.laterality]
        proc = vsets.code("imaging-procedure", side[0])
        isref = f"ImagingStudy/{pid}-xr"
        put({"resourceType": "ImagingStudy", "id": f"{pid}-xr", "status": "available",
             "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_uid}"},
                            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                  "code": "ACSN"}]}, "value": study.accession}],
             "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"}],
             "subject": pref, "encounter": {"reference": f"Encounter/{xr['id']}"}, "started": _dtm(study.started),
             "endpoint": [{"reference": f"Endpoint/{PACS_ENDPOINT_ID}"}],
             "numberOfSeries": 1, "numberOfInstances": 1, "procedureCode": [_cc(proc)],
             "description": f"XR hip {side[2]} AP",
             "series": [{"uid": study.series_uid, "number": 1,
                         "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"},
                         "description": f"AP {side[2]} hip", "numberOfInstances": 1,
                         "endpoint": [{"reference": f"Endpoint/{PACS_ENDPOINT_ID}"}],
                         "bodySite": vsets.code("imaging-body-site", "24136001").coding(),
                         "laterality": vsets.code("imaging-body-site", side[1]).coding(),
                         "started": _dtm(study.started),
                         "instance": [{"uid": study.sop_uid, "number": 1,
                                       "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{DX_SOP_CLASS}"},
                                       "title": f"AP {side[2]} hip"}]}]})
        issued = study.started + dt.timedelta(hours=3)
        put({"resourceType": "DiagnosticReport", "id": f"{pid}-xr-report", "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                       "display": "Radiology"}]}],
             "code": _cc(proc), "subject": pref, "encounter": {"reference": f"Encounter/{xr['id']}"},
             "effectiveDateTime": _dtm(study.started), "issued": _dtm(issued),
             "imagingStudy": [{"reference": isref}], "conclusion": study.report_text})

    if dxa is not None:
        dxa_side = "left" if dxa.laterality == "L" else "right"
        t_code, bmd_code = DXA_CODES[dxa.laterality]
        common = {"status": "final",
                  "category": [{"coding": [{"system": OBS_CAT, "code": "imaging", "display": "Imaging"}]}],
                  "subject": pref, "effectiveDateTime": _date(dxa.date), "performer": [dict(org)],
                  "bodySite": {"text": f"Femoral neck, {dxa_side}"}}
        bmd = put({"resourceType": "Observation", "id": f"{pid}-dxa-bmd", **common,
                   "code": _cc(vsets.code("dxa-result", bmd_code), f"DXA femoral neck BMD ({dxa_side})"),
                   "valueQuantity": {"value": dxa.bmd_g_cm2, "unit": "g/cm2", "system": UCUM, "code": "g/cm2"}})
        put({"resourceType": "Observation", "id": f"{pid}-dxa-t-score", **common,
             "code": _cc(vsets.code("dxa-result", t_code), f"DXA femoral neck T-score ({dxa_side})"),
             "valueQuantity": {"value": dxa.t_score, "unit": "T-score", "system": UCUM, "code": "{T-score}"},
             "derivedFrom": [{"reference": f"Observation/{bmd['id']}"}]})
    put({"resourceType": "Organization", "id": org_id,
         "identifier": [{"system": SITE_SYSTEM, "value": site_code}], "active": True,
         "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov",
                               "display": "Healthcare Provider"}]}],
         "name": org_name})

    return {"resourceType": "Bundle", "id": f"{pid}-chart", "type": "transaction",
            "meta": {"tag": [SYNTHETIC_TAG]}, "entry": entries}


REPORT_TEXT = {
    None: "AP radiograph of the {side} hip. No fracture or dislocation. Joint space preserved. No focal bone lesion.",
    "hardware": "AP radiograph of the {side} hip. Orthopaedic metalwork in situ about the proximal femur; no "
                "periprosthetic fracture seen.",
    "motion": "AP radiograph of the {side} hip. Study degraded by patient motion; no gross fracture seen. "
              "Repeat if clinically indicated.",
    "underexposure": "AP radiograph of the {side} hip. Under-exposed image of limited diagnostic quality; no gross "
                     "fracture seen.",
    "cropped_neck": "AP radiograph of the {side} hip. The femoral neck is only partly included in the field; no "
                    "fracture seen in the included bone.",
}


def report_text(artefact: str | None, laterality: str) -> str:
    side = "left" if laterality == "L" else "right"
    return REPORT_TEXT.get(artefact, REPORT_TEXT[None]).format(side=side)
