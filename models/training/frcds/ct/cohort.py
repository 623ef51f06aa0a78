"""The CT cohort with outcomes: per patient the hip cohort's person, bone state, chart and DXA, the CT phantom
anatomy (with its prevalent fractures) and acquisition, outcomes with the prevalent-fracture hazard ratios
(:mod:`frcds.ct.outcomes`), and the CT measurements AS THE SERVICE MAKES THEM.

Streams: the person, bone, outcomes, chart (EHR), DXA and index-date draws use the hip cohort's per-patient streams
(``cohort.streams.patient_streams(seed, site, i)``); the anatomy, acquisition and rendering noise use a CT stream of
their own, ``SeedSequence([seed, site, 0xC7], spawn_key=(i,))``; the measurement-error draws another
(``0xE7``). Every patient is a pure function of (seed, site, i).

Site A scans on vendor A (signed int16, padding), site B on vendor B (unsigned) with site B's population and chart
recording: the second-vendor check.

Measurements (observables), two sources, recorded per patient in ``ct_source``:

- ``measured``: the patient's study was rendered at its realistic acquisition (``render`` below, DICOM via
  :func:`frcds.ct.dicom.write_study`) and read by the service's own analysis
  (``server/pathways/ct-spine/measure-cli.ts``: selection, assembly, localisation, L1 ROI, morphometry); the JSON
  line of findings is parsed by :func:`findings_observation`.
- ``error-model``: rendering every patient at full size does not fit the time on two shared cores (measured in
  MODEL_CARD.md), so the other patients get the analyser's error as measured on the rendered ones
  (:func:`fit_error_model`): refusal rate by protocol, HU error (measured − true ROI HU) by kernel, the phase the
  series reports given the true phase and whether an agent is recorded, morphometry availability by slice
  thickness, and the confusion of the worst grade (measured | true in the field).

Observable columns (``OBSERVABLE_COLUMNS``) and the generator truth (``HIDDEN_COLUMNS``) are written to separate
files; training reads only the first (:func:`load_observables`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..cohort.bone import sample_bone
from ..cohort.dxa import sample_dxa
from ..cohort.ehr import qf_from_ehr, record
from ..cohort.fhir import birth_date, completed_years
from ..cohort.population import sample_person
from ..cohort.streams import SITE_CODES, patient_streams
from ..model2.observables import ObservableTable
from .acquisition import CTAcquisition, acquire, sample_acquisition
from .outcomes import simulate_ct_outcome
from .phantom import Anatomy, sample_anatomy

CT_STREAM, ERROR_STREAM = 0xC7, 0xE7
INDEX_START, INDEX_DAYS = dt.date(2014, 1, 1), 3 * 365
#: the levels the analysis labels and grades
GRADED_LEVELS = ("T11", "T12", "L1", "L2", "L3", "L4")
PHASES = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")

OBSERVABLE_COLUMNS = (
    "patient_id", "site", "sex", "age", "qf_risk10_hip", "qf_risk10_mof", "time_hip", "event_hip", "time_mof",
    "event_mof", "dxa_t", "dxa_years",
    # DICOM header (observable): protocol from the study description, thickness, kernel, vendor, contrast agent tag
    "protocol", "slice_thickness", "kernel", "vendor", "contrast_agent_recorded",
    # what the analysis returned
    "ct_source", "ct_status", "ct_hu", "ct_phase", "ct_level", "ct_morphometry", "ct_grade",
)
HIDDEN_COLUMNS = (
    "bmd_t", "true_lp_hip", "true_lp_mof", "true_risk10_hip", "true_risk10_mof", "true_grade", "true_grade_field",
    "true_roi_hu", "true_l1_hu", "true_phase", "hardware_level",
)


@dataclass
class CtPatient:
    obs: dict
    truth: dict
    anatomy: Anatomy
    acq: CTAcquisition
    ct_rng: np.random.Generator       # the CT stream after the acquisition draw (rendering noise continues it)
    study_date: dt.date


def patient_id(seed: int, site: str, i: int) -> str:
    return f"ctc-{site.lower()}{seed}-{i + 1:05d}"


def _stream(seed: int, site: str, i: int, part: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=[int(seed), SITE_CODES[site], part],
                                                        spawn_key=(int(i),)))


def in_field(an: Anatomy, acq: CTAcquisition, label: str) -> bool:
    v = an.level(label)
    return v.z_mid - v.h_normal / 2 >= acq.z_bottom and v.z_mid + v.h_normal / 2 <= acq.z_top


def simulate_ct_patient(seed: int, site: str, i: int) -> CtPatient:
    st = patient_streams(seed, site, i)
    ct = _stream(seed, site, i, CT_STREAM)
    p = sample_person(st.population, site)
    b = sample_bone(p, st.bone)
    index = INDEX_START + dt.timedelta(days=int(st.chart.integers(0, INDEX_DAYS)))
    age_years = completed_years(birth_date(index, p.age), index)
    an = sample_anatomy(ct, t_score=b.bmd_t, age=p.age, sex=p.sex, bmi=p.bmi)
    acq = replace(sample_acquisition(ct, an, size="full"), vendor=site)
    worst = max(v.grade for v in an.vertebrae)
    o = simulate_ct_outcome(p, b, worst, st.outcomes, age_years)
    ehr = record(p, st.ehr, site)
    qf = qf_from_ehr(ehr, p.sex, age_years)
    dxa = sample_dxa(p, b, index, bool(ehr.fractures), st.dxa)
    obs = {"patient_id": patient_id(seed, site, i), "site": site, "sex": int(p.sex == "male"),
           "age": float(age_years), "qf_risk10_hip": qf["qf_risk10_hip"], "qf_risk10_mof": qf["qf_risk10_mof"],
           "time_hip": o.time_hip, "event_hip": o.event_hip, "time_mof": o.time_mof, "event_mof": o.event_mof,
           "dxa_t": math.nan if dxa is None else dxa.t_score,
           "dxa_years": math.nan if dxa is None else dxa.years_before_index,
           "protocol": acq.protocol, "slice_thickness": acq.slice_thickness, "kernel": acq.kernel,
           "vendor": acq.vendor, "contrast_agent_recorded": bool(acq.phase == "portal-venous" and acq.phase_recorded)}
    field = [v.grade for v in an.vertebrae if v.label in GRADED_LEVELS and in_field(an, acq, v.label)]
    truth = {"patient_id": obs["patient_id"], "bmd_t": b.bmd_t, "true_lp_hip": o.predictors.true_lp_hip,
             "true_lp_mof": o.predictors.true_lp_mof, "true_risk10_hip": o.true_risk_hip[9],
             "true_risk10_mof": o.true_risk_mof[9], "true_grade": worst,
             "true_grade_field": max(field) if field else 0, "true_l1_hu": an.l1_trab_hu,
             "true_roi_hu": an.l1_trab_hu + acq.trab_enhance_hu, "true_phase": acq.phase,
             "hardware_level": an.hardware_level or "", "phase_recorded": acq.phase_recorded}
    return CtPatient(obs, truth, an, acq, ct, index)


# ------------------------------------------------------------------------------------------- rendering (subset)

def render(patient: CtPatient, out: Path, syntax: str = "explicit") -> Path:
    """Writes the patient's study (axial series, localizer, truth.json) under ``out/<patient_id>``; ``syntax``
    'rle' keeps a measured subset on disk at about half the size, for re-measuring after an analyser change."""
    from .dicom import write_study
    vol = acquire(patient.anatomy, patient.acq, patient.ct_rng, keep_clean=False)
    d = out / patient.obs["patient_id"]
    write_study(d, f"frcds-ctc|{patient.obs['patient_id']}", patient.anatomy, vol,
                patient_id=patient.obs["patient_id"].upper(), study_date=patient.study_date.strftime("%Y%m%d"),
                syntax=syntax)
    return d


# ------------------------------------------------------------------------------------------- measurements

def findings_observation(line: dict) -> dict:
    """The observable CT columns from one measure-cli JSON line ({study, refusal?, findings?})."""
    if line.get("refusal") or not line.get("findings"):
        code = (line.get("refusal") or {}).get("code", "no-findings")
        return {"ct_status": str(code), "ct_hu": math.nan, "ct_phase": "unknown", "ct_level": "",
                "ct_morphometry": False, "ct_grade": 0}
    f = line["findings"]
    att = f.get("attenuation")
    return {"ct_status": "ok", "ct_hu": math.nan if att is None else float(att["medianHu"]),
            "ct_phase": "unknown" if att is None else str(att["phase"]),
            "ct_level": "" if att is None else str(att["level"]),
            "ct_morphometry": f.get("morphometry") is not None, "ct_grade": int(f.get("worstGrade", 0))}


def read_measured(paths: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            for ln in fh:
                r = json.loads(ln) if ln.strip() else {}
                if "study" in r:           # the CLI's closing summary line has no study
                    out[str(r["study"])] = findings_observation(r)
    return out


#: the error model used before the analyser had measured anything: ASSUMED values, replaced by a fitted model
ASSUMED_ERROR_MODEL = {
    "source": "assumed (no rendered subset measured yet)",
    "refusal": {"chest": 0.35, "abdomen": 0.02},
    "hu_error": {"soft": {"mean": 0.0, "sd": 6.0}, "bone": {"mean": 0.0, "sd": 10.0}},
    "phase_reported": {"non-contrast|False": {"unknown": 1.0}, "non-contrast|True": {"unknown": 1.0},
                       "portal-venous|False": {"unknown": 1.0}, "portal-venous|True": {"unknown": 1.0}},
    "morphometry_max_thickness": 2.5,
    "morphometry_available": {"thin": 1.0, "thick": 0.0},
    "grade_confusion": [[0.97, 0.03, 0.0, 0.0], [0.15, 0.75, 0.10, 0.0], [0.0, 0.08, 0.85, 0.07],
                        [0.0, 0.0, 0.08, 0.92]],
}


def fit_error_model(truths: list[dict], obs: list[dict], measured: list[dict]) -> dict:
    """The analyser's error on the rendered subset: pairs (truth, header observables, measure-cli observation)."""
    def rate(xs: list[bool]) -> float:
        return float(np.mean(xs)) if xs else 0.0
    em: dict = {"source": f"fitted on {len(measured)} rendered and measured studies", "n": len(measured)}
    em["refusal"] = {pr: rate([m["ct_status"] != "ok" for o, m in zip(obs, measured) if o["protocol"] == pr])
                     for pr in ("chest", "abdomen")}
    em["refusal_codes"] = {}
    for m in measured:
        if m["ct_status"] != "ok":
            em["refusal_codes"][m["ct_status"]] = em["refusal_codes"].get(m["ct_status"], 0) + 1
    em["attenuation_missing"] = rate([not math.isfinite(m["ct_hu"]) for m in measured if m["ct_status"] == "ok"])
    em["hu_error"] = {}
    for k in ("soft", "bone"):
        # the truth is L1's ROI HU; a fallback level (T12, L2) differs by the level trend, so L1 pairs only
        e = np.array([m["ct_hu"] - t["true_roi_hu"] for t, o, m in zip(truths, obs, measured)
                      if o["kernel"] == k and m["ct_level"] == "L1" and math.isfinite(m["ct_hu"])
                      and not t["hardware_level"]])
        em["hu_error"][k] = {"mean": float(e.mean()) if len(e) else 0.0,
                             "sd": float(e.std(ddof=1)) if len(e) > 2 else 8.0, "n": int(len(e)),
                             "mae": float(np.abs(e).mean()) if len(e) else None}
    ph: dict[str, dict[str, float]] = {}
    for t, m in zip(truths, measured):
        if m["ct_status"] == "ok" and math.isfinite(m["ct_hu"]):
            key = f"{t['true_phase']}|{bool(t['phase_recorded'])}"
            ph.setdefault(key, {})
            ph[key][m["ct_phase"]] = ph[key].get(m["ct_phase"], 0) + 1
    em["phase_reported"] = {k: {p: c / sum(v.values()) for p, c in v.items()} for k, v in ph.items()}
    em["morphometry_max_thickness"] = 2.5
    ok = [(o, m) for o, m in zip(obs, measured) if m["ct_status"] == "ok"]
    em["morphometry_available"] = {
        "thin": rate([m["ct_morphometry"] for o, m in ok if o["slice_thickness"] <= 2.5]) if ok else 1.0,
        "thick": rate([m["ct_morphometry"] for o, m in ok if o["slice_thickness"] > 2.5]) if ok else 0.0}
    conf = np.zeros((4, 4))
    for t, m in zip(truths, measured):
        if m["ct_status"] == "ok" and m["ct_morphometry"]:
            conf[int(t["true_grade_field"]), int(m["ct_grade"])] += 1
    em["grade_confusion_counts"] = conf.astype(int).tolist()
    # rows with few studies borrow from the identity (a prior worth 2 studies) so a rare grade is not left empty
    sm = conf + 2.0 * np.eye(4)
    em["grade_confusion"] = (sm / sm.sum(1, keepdims=True)).tolist()
    return em


def apply_error_model(em: dict, pt: CtPatient, seed: int, site: str, i: int) -> dict:
    """The patient's CT observation drawn from the analyser's error model (its own stream)."""
    rng = _stream(seed, site, i, ERROR_STREAM)
    u = rng.random(6)
    z = float(rng.normal())
    o, t = pt.obs, pt.truth
    if u[0] < em["refusal"][o["protocol"]]:
        code = "l1-l2-not-in-field" if o["protocol"] == "chest" else "no-spine"
        return {"ct_status": code, "ct_hu": math.nan, "ct_phase": "unknown", "ct_level": "",
                "ct_morphometry": False, "ct_grade": 0}
    he = em["hu_error"][o["kernel"]]
    hu = t["true_roi_hu"] + he["mean"] + he["sd"] * z
    if u[1] < em.get("attenuation_missing", 0.0):
        hu = math.nan
    dist = em["phase_reported"].get(f"{t['true_phase']}|{bool(t['phase_recorded'])}", {"unknown": 1.0})
    names = sorted(dist)
    cum = np.cumsum([dist[n] for n in names])
    phase = names[min(int(np.searchsorted(cum, u[2] * cum[-1], side="right")), len(names) - 1)]
    thin = o["slice_thickness"] <= em["morphometry_max_thickness"]
    morph = bool(u[3] < em["morphometry_available"]["thin" if thin else "thick"])
    grade = 0
    if morph:
        row = np.asarray(em["grade_confusion"][int(t["true_grade_field"])], float)
        grade = int(min(np.searchsorted(np.cumsum(row), u[4] * row.sum(), side="right"), 3))
    return {"ct_status": "ok", "ct_hu": hu, "ct_phase": phase if math.isfinite(hu) else "unknown",
            "ct_level": "L1" if math.isfinite(hu) else "", "ct_morphometry": morph, "ct_grade": grade}


# ------------------------------------------------------------------------------------------- cohort files

def build(seed: int, site: str, n: int, em: dict, measured: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Observable and hidden columns of patients 0..n-1; a patient in ``measured`` takes the analyser's own
    findings, any other the error model's draw."""
    measured = measured or {}
    obs_rows, truth_rows = [], []
    for i in range(n):
        pt = simulate_ct_patient(seed, site, i)
        m = measured.get(pt.obs["patient_id"])
        row = dict(pt.obs)
        row.update(m if m is not None else apply_error_model(em, pt, seed, site, i))
        row["ct_source"] = "measured" if m is not None else "error-model"
        obs_rows.append(row)
        truth_rows.append({**pt.truth, "patient_id": pt.obs["patient_id"]})
    return _columns(obs_rows, OBSERVABLE_COLUMNS), _columns(truth_rows, HIDDEN_COLUMNS + ("patient_id",))


def _columns(rows: list[dict], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for k in names:
        v = [r[k] for r in rows]
        out[k] = np.array(v, dtype=str) if isinstance(v[0], str) else np.array(v)
    return out


def save(directory: str, obs: dict, truth: dict, meta: dict) -> None:
    os.makedirs(directory, exist_ok=True)
    np.savez_compressed(os.path.join(directory, "observables.npz"), **obs)
    np.savez_compressed(os.path.join(directory, "truth.npz"), **truth)
    with open(os.path.join(directory, "cohort.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def load_observables(directory: str) -> ObservableTable:
    """The observable columns only (``observables.npz``); the truth file is never opened here."""
    with np.load(os.path.join(directory, "observables.npz"), allow_pickle=False) as z:
        missing = [k for k in OBSERVABLE_COLUMNS if k not in z.files]
        if missing:
            raise ValueError(f"observables.npz lacks {missing}")
        return ObservableTable({k: np.asarray(z[k]) for k in OBSERVABLE_COLUMNS})


def load_truth(directory: str) -> dict[str, np.ndarray]:
    """Hidden generator variables, for EVALUATION only."""
    with np.load(os.path.join(directory, "truth.npz"), allow_pickle=False) as z:
        return {k: np.asarray(z[k]) for k in z.files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="frcds.ct.cohort", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="write DICOM studies of patients [--start, --start + --patients)")
    b = sub.add_parser("build", help="write observables.npz / truth.npz / cohort.json")
    e = sub.add_parser("fit-errors", help="fit the analyser's error model on rendered, measured patients")
    for p in (r, b):
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--site", default="A")
        p.add_argument("--patients", type=int, required=True)
    e.add_argument("--cohorts", nargs="+", required=True, help="SEED:SITE:N of the rendered patients' cohorts")
    r.add_argument("--start", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--syntax", choices=("explicit", "rle"), default="explicit")
    b.add_argument("--out", required=True)
    b.add_argument("--error-model", required=True)
    b.add_argument("--measured", nargs="*", default=[])
    e.add_argument("--measured", nargs="+", required=True)
    e.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "render":
        import time
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        for i in range(a.start, a.start + a.patients):
            t0 = time.perf_counter()
            d = render(simulate_ct_patient(a.seed, a.site, i), out, a.syntax)
            print(json.dumps({"study": d.name, "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    elif a.cmd == "fit-errors":
        meas = read_measured(a.measured)
        pts = []
        for spec in a.cohorts:
            seed, site, n = spec.split(":")
            pts += [p for p in (simulate_ct_patient(int(seed), site, i) for i in range(int(n)))
                    if p.obs["patient_id"] in meas]
        em = fit_error_model([p.truth for p in pts], [p.obs for p in pts],
                             [meas[p.obs["patient_id"]] for p in pts])
        Path(a.out).write_text(json.dumps(em, indent=1))
        print(json.dumps(em))
    else:
        with open(a.error_model, encoding="utf-8") as f:
            em = json.load(f)
        obs, truth = build(a.seed, a.site, a.patients, em, read_measured(a.measured) if a.measured else None)
        save(a.out, obs, truth, {"seed": a.seed, "site": a.site, "patients": a.patients, "error_model": em,
                                 "measured": int((obs["ct_source"] == "measured").sum())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
