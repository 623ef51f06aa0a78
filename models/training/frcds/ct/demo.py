"""The demo CT patients of the sandbox (``demo-ct-001`` …): routine chest/abdomen CTs read opportunistically.

    sh models/training/run -m frcds.ct.demo [--out server/sandbox/demo-cohort]

Run it after ``npm run cohort -- --demo`` (which regenerates ``fhir/`` and ``dicom/`` wholesale and so removes these
files). Writes, under the demo cohort folder:

- ``dicom/ct/<study>/<series>/<instance>.dcm``: an axial series (one CT Image Storage instance per slice, JPEG-LS
  lossless; RLE would double the size) and an AP localizer, picked up by the sandbox PACS like the hip studies;
- ``fhir/demo-ct-NNN.json``: the patient's chart (the cohort's person, bone state, EHR view and FHIR builder) plus
  the CT order (ServiceRequest coded with CPT and LOINC, as sites code CT orders), the Encounter, the ImagingStudy
  (modality CT, both series, the PACS Endpoint), and the final radiology report;
- ``ct/truth.json``: per patient, what the demo shows and the phantom truth (L1 HU, levels, heights, grades).

Each patient is drawn until it fits its role (``ROLES``): the draw depends only on (seed, patient, attempt), so the
output is deterministic. Roles: normal bone; osteoporotic L1 without a fracture; a moderate/severe thoracolumbar
fracture that is neither in the problem list nor in the report; a chest CT that ends above L1 (the pathway must
refuse it: L1 and L2 not in the field); a portal-venous abdomen-pelvis CT (contrast phase recorded).

Size: the phantom's quantum noise (≈11 HU SD at 2.5 mm) is what lossless coding cannot remove, so a 512² slice
takes ≈160 kB even in JPEG-LS. The demo studies are therefore 384² (0.9 mm pixels, a 346 mm display field) at
2.5 mm, over the field the ordered CT covers: an abdomen CT from just above the diaphragm dome to the iliac crests
(L4/L5 disc), abdomen-pelvis to below L5, a lumbar spine CT from T11 to below L5, a chest CT down to its lung
bases (here the T12/L1 disc) — ≈5–7 MB per readable study. The full-size 512² case is made at bench time
(``bench/ct.ts``), not committed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom

from ..cohort.bone import sample_bone
from ..cohort.ehr import record
from ..cohort.fhir import (PACS_ADDRESS, PACS_ENDPOINT_ID, SITE_NAMES, birth_date, build_bundle, completed_years,
                           SYNTHETIC_TAG, V3_ACT)
from ..cohort.population import sample_person
from ..cohort.streams import patient_streams
from .acquisition import CTAcquisition, acquire
from .dicom import CT_IMAGE_STORAGE, uid, write_study
from .phantom import Anatomy, sample_anatomy

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_OUT = REPO_ROOT / "server" / "sandbox" / "demo-cohort"
# A stream seed of its own, so the CT patients never share a random stream with the hip demo patients.
CT_DEMO_SEED = 2026_0015
SITE = "A"
# The CT patients are site-A patients of the demo (same hospital, MRN pattern DEMOA####), numbered from 901 so
# their MRNs cannot collide with the hip patients'.
MRN_BASE = 900
INDEX_START = dt.date(2026, 10, 1)
INDEX_SPAN_DAYS = 50
MAX_ATTEMPTS = 4000

CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
# Order codes: CPT (billing, what US order entry carries) and the LOINC/RSNA Radiology Playbook term (what the
# LOINC ConceptMap of fhir-profiles/conceptmaps maps to an order category). CPT descriptors are not reproduced.
ORDERS = {
    "ct-abdomen-wo": {"cpt": "74150", "loinc": ("36424-0", "CT Abdomen WO contrast"),
                      "text": "CT abdomen without contrast", "study": "CT ABDOMEN WO CONTRAST",
                      "body_part": "ABDOMEN", "site": ("818981001", "Abdomen")},
    "ct-chest-wo": {"cpt": "71250", "loinc": ("29252-4", "CT Chest WO contrast"),
                    "text": "CT chest without contrast", "study": "CT CHEST WO CONTRAST",
                    "body_part": "CHEST", "site": ("51185008", "Thoracic structure")},
    "ct-lspine-wo": {"cpt": "72131", "loinc": ("30620-9", "CT Lumbar spine WO contrast"),
                     "text": "CT lumbar spine without contrast", "study": "CT LUMBAR SPINE WO CONTRAST",
                     "body_part": "LSPINE", "site": ("122496007", "Lumbar spine structure")},
    "ct-abdpelvis-w": {"cpt": "74177", "loinc": ("36813-4", "CT Abdomen and Pelvis W contrast IV"),
                       "text": "CT abdomen and pelvis with IV contrast", "study": "CT ABDOMEN PELVIS W CONTRAST",
                       "body_part": "ABDOMENPELVIS", "site": ("818981001", "Abdomen")},
}


@dataclass(frozen=True)
class Role:
    """What one demo CT patient must show, and how the study is acquired."""
    key: str
    order: str
    reason: str                  # the clinical question on the order (why the CT was done)
    report: str                  # the radiologist's conclusion (bone not mentioned, as often in practice)
    sex: str | None = None
    age: tuple[float, float] = (50.0, 90.0)
    l1_hu: tuple[float, float] = (-1e9, 1e9)
    fracture_grade_min: int = 0  # 0: no fracture anywhere; 2: a grade ≥ 2 fracture at T12–L2 (and nothing else)
    vendor: str = "A"
    thickness: float = 2.5
    field: str = "abdomen"       # 'abdomen' (diaphragm → L4/L5), 'lspine' (T11 → L5), 'pelvis' (→ below L5), 'chest'
    phase: str = "non-contrast"
    syntax: str = "jpeg-ls"
    series_description: str = "Abdomen 2.5mm WO contrast"
    expect: str = "assessed"     # 'assessed' | 'refused'


ROLES = (
    Role("normal", "ct-lspine-wo", "Low back pain after lifting; assess for disc disease",
         "Mild degenerative disc disease L4-L5. Vertebral body heights maintained. No fracture.",
         age=(55.0, 68.0), l1_hu=(185.0, 240.0), vendor="A", field="lspine",
         series_description="L-spine 2.5mm soft WO contrast"),
    Role("osteoporotic", "ct-abdomen-wo", "Left flank pain; suspected renal calculus",
         "4 mm calculus at the left vesicoureteric junction with mild hydronephrosis. No other acute finding.",
         sex="female", age=(68.0, 82.0), l1_hu=(60.0, 95.0), vendor="A"),
    Role("fracture", "ct-abdomen-wo", "Right upper quadrant pain; suspected gallstones",
         "Cholelithiasis without cholecystitis. No other acute abdominal abnormality.",
         sex="female", age=(70.0, 85.0), l1_hu=(40.0, 120.0), fracture_grade_min=2, vendor="A"),
    Role("chest-refused", "ct-chest-wo", "Persistent cough; follow-up of a pulmonary nodule",
         "Stable 5 mm right lower lobe nodule. No new pulmonary abnormality.",
         sex="male", age=(60.0, 80.0), vendor="B", field="chest",
         series_description="Chest 2.5mm WO contrast", expect="refused"),
    Role("portal-venous", "ct-abdpelvis-w", "Abdominal pain and weight loss",
         "No intra-abdominal mass. Uncomplicated sigmoid diverticulosis.",
         age=(60.0, 78.0), l1_hu=(110.0, 150.0), vendor="A", field="pelvis", phase="portal-venous",
         series_description="Abd/Pelvis Portal venous 2.5mm"),
)
MATRIX, PIXEL_MM = 384, 0.9
# The benchmark's full-size study (bench/ct.ts; written at bench time, never committed): a thin-slice abdomen CT.
BENCH_ROLE = Role("bench", "ct-abdomen-wo", "Abdominal pain", "No acute abdominal abnormality.",
                  age=(55.0, 75.0), l1_hu=(120.0, 220.0), vendor="A", thickness=1.0, syntax="explicit",
                  series_description="Abdomen 1mm WO contrast")
BENCH_MATRIX, BENCH_PIXEL_MM = 512, 0.75


def pid_of(k: int) -> str:
    return f"demo-ct-{k + 1:03d}"


def study_key(k: int) -> str:
    return f"frcds-ct-demo|{CT_DEMO_SEED}|{k}"


def _fractures(an: Anatomy) -> list[tuple[str, int]]:
    return [(v.label, v.grade) for v in an.vertebrae if v.grade]


def _fits(role: Role, person, an: Anatomy, ehr) -> bool:
    if role.sex and person.sex != role.sex:
        return False
    if not role.age[0] <= person.age <= role.age[1]:
        return False
    if not role.l1_hu[0] <= an.l1_trab_hu <= role.l1_hu[1]:
        return False
    if an.hardware_level is not None or abs(an.scoliosis_mm) > 6.0:
        return False
    fr = _fractures(an)
    if role.fracture_grade_min == 0:
        return not fr
    # one fracture, moderate or severe, at the thoracolumbar junction; not in the chart (no recorded spine fracture)
    return (len(fr) == 1 and fr[0][1] >= role.fracture_grade_min and fr[0][0] in ("T12", "L1", "L2")
            and not any(s == "spine" for s, _ in ehr.fractures))


def draw_patient(k: int, role: Role):
    """The first (person, bone, EHR view, anatomy, streams) of patient ``k`` that fits its role."""
    for attempt in range(MAX_ATTEMPTS):
        st = patient_streams(CT_DEMO_SEED, SITE, k * MAX_ATTEMPTS + attempt)
        person = sample_person(st.population, SITE)
        if role.sex and person.sex != role.sex or not role.age[0] <= person.age <= role.age[1]:
            continue
        bone = sample_bone(person, st.bone)
        ehr = record(person, st.ehr, SITE)
        an = sample_anatomy(st.image, t_score=bone.bmd_t, age=person.age, sex=person.sex, bmi=person.bmi)
        if _fits(role, person, an, ehr):
            return person, bone, ehr, an, st, attempt
    raise RuntimeError(f"no patient fits the role {role.key!r} in {MAX_ATTEMPTS} attempts")


def acquisition_for(role: Role, an: Anatomy, rng: np.random.Generator, *, matrix: int = MATRIX,
                    pixel_mm: float = PIXEL_MM, slices: int | None = None) -> CTAcquisition:
    """The role's acquisition; with ``slices``, exactly that many contiguous slices from the top of the field."""
    t12, l4, l5 = an.level("T12"), an.level("L4"), an.level("L5")
    l4_bottom = l4.z_mid - l4.h_normal / 2
    if role.field == "chest":
        # a chest CT ends at the lung bases: here in the T12/L1 disc, so L1 and L2 are wholly outside the field (the
        # phantom starts at T10, so the field is ≈ 100 mm: enough for the series choice, which needs 90 mm)
        top, bottom = an.z_top + 10.0, t12.z_mid - t12.h_normal / 2 - 3.0
    elif role.field == "lspine":
        t11 = an.level("T11")
        top, bottom = t11.z_mid, an.z_bottom
    else:
        # an abdomen CT starts just above the dome of the diaphragm (T12 whole in the field, T11 partly) and ends
        # at the iliac crests (the L4/L5 disc), or for abdomen-pelvis below L5 (the phantom has no pelvis)
        top = max(an.z_diaphragm + 25.0, t12.z_mid + t12.h_normal / 2 + 10.0)
        bottom = an.z_bottom if role.field == "pelvis" else l4_bottom - 0.5 * (l4_bottom - (l5.z_mid + l5.h_normal / 2))
    if slices is not None:
        # grid_for takes floor(length / thickness) slices: aim between two counts so rounding cannot drop one
        top = an.z_top
        bottom = top - role.thickness * (slices + 0.5)
    pv = role.phase == "portal-venous"
    return CTAcquisition(vendor=role.vendor, protocol="chest" if role.field == "chest" else "abdomen",
                         slice_thickness=role.thickness, pixel_spacing=pixel_mm, matrix=matrix, kernel="soft",
                         phase=role.phase, phase_recorded=pv, rotation_deg=float(rng.normal(0, 2.0)),
                         z_top=float(top), z_bottom=float(bottom),
                         vessel_enhance_hu=float(rng.uniform(140, 180)) if pv else 0.0,
                         trab_enhance_hu=float(np.clip(rng.normal(10.0, 3.0), 4.0, 16.0)) if pv else 0.0)


def _compress(path: Path, syntax: str) -> None:
    if syntax == "explicit":
        return
    from ..imaging.dicom import compress
    compress(path, syntax, verify=True)


def write_dicom(out: Path, k: int | str, role: Role, an: Anatomy, vol, *, mrn: str, started: dt.datetime,
                birth: dt.date, name: str) -> dict:
    """Writes the study under ``out/dicom/ct/<study>/<series>/<sop>.dcm``; returns the writer's truth plus the
    files' layout. ``k``: the demo patient's index (its UIDs), or another patient id (the bench's own UIDs)."""
    key = study_key(k) if isinstance(k, int) else f"frcds-ct-demo|{CT_DEMO_SEED}|{k}"
    order = ORDERS[role.order]
    with tempfile.TemporaryDirectory(prefix="frcds-ctdemo-") as td:
        truth = write_study(td, key, an, vol, patient_id=mrn, study_date=started.strftime("%Y%m%d"))
        study_uid = truth["study_instance_uid"]
        dest = out / "dicom" / "ct" / study_uid
        if dest.exists():
            shutil.rmtree(dest)
        files = [(f, "axial") for f in truth["axial_files"]] + [(truth["localizer_file"], "localizer")]
        instances: dict[str, list[dict]] = {"axial": [], "localizer": []}
        for rel, kind in files:
            src = Path(td) / rel
            ds = pydicom.dcmread(src)
            # the chart's identity and the site's description of the order (the writer leaves these generic)
            ds.PatientName = name
            ds.PatientBirthDate = birth.strftime("%Y%m%d")
            ds.StudyTime = ds.SeriesTime = started.strftime("%H%M%S")
            ds.InstitutionName = SITE_NAMES[SITE]
            ds.StudyDescription = order["study"]
            ds.BodyPartExamined = order["body_part"]
            if kind == "axial":
                ds.SeriesDescription = role.series_description
            ds.save_as(src, write_like_original=False)
            if kind == "axial":
                _compress(src, role.syntax)
            series_dir = dest / str(ds.SeriesInstanceUID)
            series_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(series_dir / f"{ds.SOPInstanceUID}.dcm"))
            instances[kind].append({"uid": str(ds.SOPInstanceUID), "number": int(ds.InstanceNumber)})
    truth["instances"] = instances
    truth["accession"] = str(pydicom.dcmread(next((dest / truth["axial_series_uid"]).iterdir()),
                                             stop_before_pixels=True).AccessionNumber)
    return truth


def _dtm(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def ct_entries(pid: str, role: Role, truth: dict, started: dt.datetime) -> list[dict]:
    """The CT order, encounter, ImagingStudy and final report (resources, in write order)."""
    order = ORDERS[role.order]
    pref = {"reference": f"Patient/{pid}"}
    loinc_code, loinc_display = order["loinc"]
    proc = {"coding": [{"system": LOINC, "code": loinc_code, "display": loinc_display}], "text": order["text"]}
    order_code = {"coding": [{"system": CPT, "code": order["cpt"]},
                             {"system": LOINC, "code": loinc_code, "display": loinc_display}],
                  "text": order["text"]}
    tag = {"tag": [SYNTHETIC_TAG]}
    enc_id, sr_id, is_id = f"{pid}-enc-ct", f"{pid}-ct-order", f"{pid}-ct"
    accession = truth["accession"]
    acsn = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": accession}
    ordered = started - dt.timedelta(days=2, hours=3)
    endpoint = [{"reference": f"Endpoint/{PACS_ENDPOINT_ID}"}]
    ct_mod = {"system": DCM, "code": "CT"}
    sop = {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{CT_IMAGE_STORAGE}"}
    site_code, site_display = order["site"]
    n_ax, n_loc = len(truth["instances"]["axial"]), len(truth["instances"]["localizer"])
    thk = truth["acquisition"]["slice_thickness"]
    series = [
        {"uid": truth["localizer_series_uid"], "number": 1, "modality": ct_mod, "description": "Topogram AP",
         "numberOfInstances": n_loc, "endpoint": endpoint, "started": _dtm(started),
         "instance": [{"uid": i["uid"], "number": i["number"], "sopClass": sop} for i in truth["instances"]["localizer"]]},
        {"uid": truth["axial_series_uid"], "number": 2, "modality": ct_mod, "description": role.series_description,
         "numberOfInstances": n_ax, "endpoint": endpoint,
         "bodySite": {"system": SNOMED, "code": site_code, "display": site_display}, "started": _dtm(started),
         "instance": [{"uid": i["uid"], "number": i["number"], "sopClass": sop} for i in truth["instances"]["axial"]]},
    ]
    return [
        {"resourceType": "Endpoint", "id": PACS_ENDPOINT_ID, "meta": tag, "status": "active",
         "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                            "code": "dicom-wado-rs"},
         "name": "Hospital PACS (DICOMweb)", "payloadType": [{"text": "DICOM"}],
         "payloadMimeType": ["application/dicom"], "address": PACS_ADDRESS},
        {"resourceType": "ServiceRequest", "id": sr_id, "meta": tag, "status": "completed", "intent": "order",
         "identifier": [acsn],
         "category": [{"coding": [{"system": SNOMED, "code": "363679005", "display": "Imaging"}]}],
         "code": order_code, "subject": pref, "authoredOn": _dtm(ordered),
         "reasonCode": [{"text": role.reason}]},
        {"resourceType": "Encounter", "id": enc_id, "meta": tag, "status": "finished",
         "class": {"system": V3_ACT, "code": "AMB", "display": "ambulatory"},
         "type": [{"coding": [{"system": SNOMED, "code": "363680008", "display": "Radiographic imaging procedure"}]}],
         "subject": pref, "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
         "period": {"start": _dtm(started), "end": _dtm(started + dt.timedelta(minutes=25))}},
        {"resourceType": "ImagingStudy", "id": is_id, "meta": tag, "status": "available",
         "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{truth['study_instance_uid']}"}, acsn],
         "modality": [ct_mod], "subject": pref, "encounter": {"reference": f"Encounter/{enc_id}"},
         "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}], "started": _dtm(started), "endpoint": endpoint,
         "numberOfSeries": 2, "numberOfInstances": n_ax + n_loc, "procedureCode": [proc],
         "reasonCode": [{"text": role.reason}], "description": f"{order['text']} ({thk:g} mm)", "series": series},
        {"resourceType": "DiagnosticReport", "id": f"{pid}-ct-report", "meta": tag, "status": "final",
         "identifier": [acsn], "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                   "display": "Radiology"}]},
                      {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CT",
                                   "display": "CAT Scan"}]}],
         "code": proc, "subject": pref, "encounter": {"reference": f"Encounter/{enc_id}"},
         "effectiveDateTime": _dtm(started), "issued": _dtm(started + dt.timedelta(hours=4)),
         "imagingStudy": [{"reference": f"ImagingStudy/{is_id}"}], "conclusion": role.report},
    ]


def simulate_demo_patient(out: Path, k: int, role: Role, *, pid: str | None = None, mrn: str | None = None,
                          acquisition: dict | None = None) -> dict:
    t0 = time.perf_counter()
    person, bone, ehr, an, st, attempt = draw_patient(k, role)
    day = INDEX_START + dt.timedelta(days=int(st.chart.integers(0, INDEX_SPAN_DAYS + 1)))
    minute = int(st.chart.integers(8 * 60, 17 * 60))
    started = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60)
    birth = birth_date(day, person.age)
    pid, mrn = pid or pid_of(k), mrn or f"DEMO{SITE}{MRN_BASE + k + 1:04d}"
    acq = acquisition_for(role, an, st.image, **(acquisition or {}))
    vol = acquire(an, acq, st.image)
    t1 = time.perf_counter()
    bundle = build_bundle(pid=pid, mrn=mrn, person=person, ehr=ehr, index=day, birth=birth, study=None,
                          rng=st.chart, site=SITE, dxa=None)
    patient = bundle["entry"][0]["resource"]
    name = f"{patient['name'][0]['family']}^{patient['name'][0]['given'][0]}"
    truth = write_dicom(out, k if pid == pid_of(k) else pid, role, an, vol, mrn=mrn, started=started, birth=birth,
                        name=name)
    t2 = time.perf_counter()
    for res in ct_entries(pid, role, truth, started):
        bundle["entry"].append({"resource": res, "request": {"method": "PUT",
                                                             "url": f"{res['resourceType']}/{res['id']}"}})
    bundle["entry"] = _dedupe(bundle["entry"])
    with open(out / "fhir" / f"{pid}.json", "w", encoding="utf-8") as f:
        json.dump(bundle, f, indent=1, ensure_ascii=False)
        f.write("\n")
    study_dir = out / "dicom" / "ct" / truth["study_instance_uid"]
    mb = sum(p.stat().st_size for p in study_dir.rglob("*.dcm")) / 1e6
    l1 = next(v for v in truth["levels"] if v["label"] == "L1")
    return {
        "patient_id": pid, "mrn": mrn, "role": role.key, "expect": role.expect, "order": role.order,
        "cpt": ORDERS[role.order]["cpt"], "sex": person.sex, "age_years": completed_years(birth, day),
        "started": started.isoformat(), "draw_attempt": attempt, "bmd_t": float(bone.bmd_t),
        "l1_hu_noncontrast": float(an.l1_trab_hu), "l1_hu_scan": float(l1["trabecular_hu_scan"]),
        "l1_in_field": l1["in_field"], "fractures": [{"level": lab, "grade": g} for lab, g in _fractures(an)],
        "ehr_spine_fracture_recorded": any(s == "spine" for s, _ in ehr.fractures),
        "study_instance_uid": truth["study_instance_uid"], "axial_series_uid": truth["axial_series_uid"],
        "accession": truth["accession"], "slices": truth["geometry"]["n_slices"], "syntax": role.syntax,
        "mb": round(mb, 2), "seconds": {"volume": round(t1 - t0, 2), "dicom": round(t2 - t1, 2)},
        "phantom": {k2: v for k2, v in truth.items() if k2 not in ("instances", "axial_files")},
    }


def _dedupe(entries: list[dict]) -> list[dict]:
    """Keeps the first entry of each ``<Type>/<id>`` (the shared Endpoint is written once per bundle)."""
    seen, out = set(), []
    for e in entries:
        if e["request"]["url"] not in seen:
            seen.add(e["request"]["url"])
            out.append(e)
    return out


def clear(out: Path) -> None:
    """Removes the previous CT demo files (only these)."""
    if (out / "dicom" / "ct").is_dir():
        shutil.rmtree(out / "dicom" / "ct")
    for f in (out / "fhir").glob("demo-ct-*.json"):
        f.unlink()
    if (out / "ct").is_dir():
        shutil.rmtree(out / "ct")


def write_bench(out: Path, slices: int, syntax: str) -> int:
    """The benchmark study: ``slices`` × 512² at 1 mm (FHIR chart in ``out/fhir``, DICOM in ``out/dicom/ct``)."""
    (out / "fhir").mkdir(parents=True, exist_ok=True)
    role = replace(BENCH_ROLE, syntax=syntax)
    r = simulate_demo_patient(out, len(ROLES), role, pid="bench-ct-001", mrn="BENCHCT0001",
                              acquisition={"matrix": BENCH_MATRIX, "pixel_mm": BENCH_PIXEL_MM, "slices": slices})
    if r["slices"] != slices:
        raise RuntimeError(f"the bench study has {r['slices']} slices, not {slices}")
    print(json.dumps({x: r[x] for x in ("patient_id", "study_instance_uid", "slices", "mb", "l1_hu_scan", "fractures",
                                        "seconds")}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="frcds.ct.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="the demo cohort folder (default: the sandbox's)")
    ap.add_argument("--only", type=int, default=None, help="write only the first N roles (quick checks)")
    ap.add_argument("--bench", default=None, metavar="DIR",
                    help="instead: write the benchmark's full-size study (patient bench-ct-001) under DIR")
    ap.add_argument("--slices", type=int, default=250, help="--bench: number of axial slices")
    ap.add_argument("--syntax", choices=("explicit", "jpeg-ls"), default="explicit", help="--bench: transfer syntax")
    a = ap.parse_args(argv)
    if a.bench:
        return write_bench(Path(a.bench), a.slices, a.syntax)
    out = Path(a.out)
    (out / "fhir").mkdir(parents=True, exist_ok=True)
    clear(out)
    (out / "ct").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, role in enumerate(ROLES[: a.only] if a.only else ROLES):
        r = simulate_demo_patient(out, k, role)
        print(json.dumps({x: r[x] for x in ("patient_id", "role", "l1_hu_scan", "fractures", "slices", "mb",
                                            "seconds")}), flush=True)
        rows.append(r)
    total = sum(r["mb"] for r in rows) + sum(os.path.getsize(out / "fhir" / f"{r['patient_id']}.json")
                                             for r in rows) / 1e6
    (out / "ct" / "truth.json").write_text(json.dumps(
        {"generator": "frcds.ct.demo", "seed": CT_DEMO_SEED, "matrix": MATRIX, "pixel_spacing_mm": PIXEL_MM,
         "total_mb": round(total, 2), "patients": rows}, indent=1) + "\n")
    print(json.dumps({"patients": len(rows), "total_mb": round(total, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
