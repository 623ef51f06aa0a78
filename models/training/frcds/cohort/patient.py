"""One synthetic patient end to end: person → bone → outcomes → EHR view → radiograph (+ DICOM) → FHIR chart.
Pure function of (config, patient index) through :mod:`streams`, so it can run in any worker process."""
from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from .bone import sample_bone
from .dxa import sample_dxa
from .ehr import qf_from_ehr, record
from .fhir import SITE_NAMES, StudyRefs, birth_date, build_bundle, completed_years, report_text
from .outcomes import calibration, simulate
from .population import sample_person
from .streams import patient_streams

SYNTAXES = ("explicit", "jpeg-lossless", "jpeg-ls", "rle", "jpeg2000")
SYNTAX_P = (0.60, 0.10, 0.10, 0.10, 0.10)   # share of written studies per transfer syntax (explicit = uncompressed)


@dataclass(frozen=True)
class Override:
    """Demo-cohort adjustments applied to one patient (see :mod:`demo`)."""
    recent_fracture_years: float | None = None   # add a prior fracture this many years before the index date
    artefact: str = "auto"                       # 'auto' (acquisition draws), 'none', or an artefact kind
    size: str | None = None                      # 'full' | 'demo'
    syntax: str | None = None                    # force a transfer syntax
    crop_mm: float | None = None                 # demo only: crop the image to this field (see crop_centred)


@dataclass(frozen=True)
class CohortConfig:
    seed: int
    site: str
    n: int
    n_dicom: int = 0
    images: bool = True
    size: str = "full"
    namespace: str = "cohort"                    # 'cohort' | 'demo' (ids, UIDs and streams differ)
    index_start: dt.date = dt.date(2012, 1, 1)
    index_end: dt.date = dt.date(2015, 12, 31)
    admin_cutoff: dt.date | None = None          # data cut-off (demo); None = full 10-year follow-up
    overrides: dict = field(default_factory=dict)  # patient index -> Override
    write_arrays: bool = True                    # the committed demo skips arrays/ to stay small

    @property
    def stream_seed(self) -> int:
        return self.seed if self.namespace == "cohort" else self.seed + 1_000_003

    def pid(self, i: int) -> str:
        if self.namespace == "demo":
            return f"demo-{self.site.lower()}-{i + 1:03d}"
        return f"frcds-{self.site.lower()}{self.seed}-{i + 1:05d}"

    def mrn(self, i: int) -> str:
        if self.namespace == "demo":
            return f"DEMO{self.site}{i + 1:04d}"
        return f"SYN{self.site}{self.seed}-{i + 1:06d}"


def study_key(cfg: CohortConfig, i: int) -> str:
    return f"frcds|{cfg.namespace}|{cfg.seed}|{cfg.site}|{i}"


def dicom_uid(cfg: CohortConfig, i: int, kind: str) -> str:
    """Deterministic DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2): 2.25.<128-bit integer>."""
    h = hashlib.sha256(f"{study_key(cfg, i)}|{kind}".encode()).digest()
    return "2.25." + str(int.from_bytes(h[:16], "big"))


def _index_datetime(cfg: CohortConfig, rng: np.random.Generator) -> dt.datetime:
    span = (cfg.index_end - cfg.index_start).days
    day = cfg.index_start + dt.timedelta(days=int(rng.integers(0, span + 1)))
    minute = int(rng.integers(8 * 60, 17 * 60))
    return dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60)


def _num(x: float) -> float | None:
    return None if (x is None or not math.isfinite(x)) else float(x)


_IMAGING = None


def imaging():
    """Imports the imaging half lazily (tabular-only runs do not need it)."""
    global _IMAGING
    if _IMAGING is None:
        from ..imaging import acquisition, dicom, phantom  # noqa: F401
        from .. import preprocess
        _IMAGING = (phantom, acquisition, dicom, preprocess)
    return _IMAGING


def _call(fn, *args, **kwargs):
    """Passes only the keyword arguments ``fn`` accepts (the DICOM writer's optional header fields)."""
    sig = inspect.signature(fn)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in sig.parameters})


def crop_centred(img, field_mm: float, preprocess):
    """Crops a rendered image symmetrically to about ``field_mm`` (a tighter collimation), removing the same number
    of rows from top and bottom and of columns from left and right, so the centred window that the preprocessing
    takes (``preprocess.FOV_MM``, smaller than ``field_mm``) covers exactly the same pixels: the model input is
    unchanged (asserted). Used only to fit the committed demo cohort into its size budget."""
    if field_mm < preprocess.FOV_MM:
        raise ValueError(f"crop field {field_mm} mm is smaller than the preprocessing window {preprocess.FOV_MM} mm")
    rows, cols = img.pixels.shape
    sr, sc = img.pixel_spacing_mm
    kr = max((rows - int(field_mm / sr)) // 2, 0)
    kc = max((cols - int(field_mm / sc)) // 2, 0)
    if kr == 0 and kc == 0:
        return img
    kw = dict(laterality=img.laterality, pixel_spacing_mm=img.pixel_spacing_mm)
    px = dict(rescale_slope=img.rescale_slope, rescale_intercept=img.rescale_intercept, photometric=img.photometric)
    before = preprocess.preprocess_pixels(img.pixels, **px, **kw)
    acq = dict(img.acquisition)
    acq["demo_crop"] = {"field_mm": field_mm, "rows_removed_each_side": kr, "cols_removed_each_side": kc,
                        "rows_before": rows, "cols_before": cols}
    out = replace(img, pixels=np.ascontiguousarray(img.pixels[kr:rows - kr, kc:cols - kc]),
                  signal_mask=np.ascontiguousarray(img.signal_mask[kr:rows - kr, kc:cols - kc]), acquisition=acq)
    if not np.array_equal(before, preprocess.preprocess_pixels(out.pixels, **px, **kw)):
        raise AssertionError("demo crop changed the preprocessed image")
    return out


def simulate_patient(cfg: CohortConfig, i: int, out_dir: str | None) -> dict:
    t0 = time.perf_counter()
    timing = {}
    st = patient_streams(cfg.stream_seed, cfg.site, i)
    ov: Override = cfg.overrides.get(i, Override())
    p = sample_person(st.population, cfg.site)
    if ov.recent_fracture_years is not None:
        p.flags["b_fracture4"] = 1
        p.prior_fractures = sorted(p.prior_fractures + [("wrist" if i % 2 else "spine", ov.recent_fracture_years)],
                                   key=lambda x: -x[1])
    b = sample_bone(p, st.bone)
    started = _index_datetime(cfg, st.chart)
    index = started.date()
    birth = birth_date(index, p.age)
    age_years = completed_years(birth, index)
    admin = 10.0 if cfg.admin_cutoff is None else max((cfg.admin_cutoff - index).days / 365.25, 0.0)
    o = simulate(p, b, st.outcomes, calibration(), admin_years=admin, age_years=age_years)
    ehr = record(p, st.ehr, cfg.site)
    qf = qf_from_ehr(ehr, p.sex, age_years)
    dxa = sample_dxa(p, b, index, bool(ehr.fractures), st.dxa)
    timing["clinical"] = time.perf_counter() - t0

    pid, mrn = cfg.pid(i), cfg.mrn(i)
    img_out = None
    image_truth: dict = {"rendered": False}
    laterality = "L" if st.chart.random() < 0.5 else "R"
    artefact = None
    if cfg.images:
        phantom, acquisition, dicom, preprocess = imaging()
        t1 = time.perf_counter()
        size = ov.size or cfg.size
        acq = acquisition.sample_acquisition(cfg.site, st.image, size=size,
                                             artefact=None if ov.artefact == "none" else ov.artefact)
        subj = phantom.PhantomSubject(sex=p.sex, age=float(p.age), bmi=float(p.bmi), height_cm=float(p.height_cm),
                                      bmd_t=float(b.bmd_t), micro_z=float(b.micro_z))
        img = phantom.render_hip(subj, acq, st.image)
        if ov.crop_mm is not None:
            img = crop_centred(img, ov.crop_mm, preprocess)
        t2 = time.perf_counter()
        arr = preprocess.preprocess_pixels(img.pixels, rescale_slope=img.rescale_slope,
                                           rescale_intercept=img.rescale_intercept, photometric=img.photometric,
                                           laterality=img.laterality, pixel_spacing_mm=img.pixel_spacing_mm)
        msk = preprocess.preprocess_mask(img.signal_mask, laterality=img.laterality,
                                         pixel_spacing_mm=img.pixel_spacing_mm)
        t3 = time.perf_counter()
        timing["render"], timing["preprocess"] = t2 - t1, t3 - t2
        img_out = (np.asarray(arr, dtype=np.float32), np.asarray(msk, dtype=np.float32))
        laterality, artefact = img.laterality, img.artefact
        image_truth = {"rendered": True, "artefact": img.artefact, "should_exclude": bool(img.should_exclude),
                       "laterality": img.laterality, "photometric": img.photometric,
                       "bits_stored": int(img.bits_stored), "rows": int(img.pixels.shape[0]),
                       "columns": int(img.pixels.shape[1]),
                       "pixel_spacing_mm": [float(x) for x in img.pixel_spacing_mm],
                       "manufacturer": img.manufacturer, "model_name": img.model_name,
                       "mask_fraction": float(np.mean(img.signal_mask)), "acquisition": img.acquisition}
    accession = "ACC" + hashlib.sha256(study_key(cfg, i).encode()).hexdigest()[:13].upper()   # SH: <= 16 chars
    study = StudyRefs(study_uid=dicom_uid(cfg, i, "study"), series_uid=dicom_uid(cfg, i, "series"),
                      sop_uid=dicom_uid(cfg, i, "instance"), accession=accession, laterality=laterality,
                      started=started, report_text=report_text(artefact, laterality))
    dicom_info = {"written": False, "study_uid": study.study_uid, "series_uid": study.series_uid,
                  "sop_uid": study.sop_uid, "accession": study.accession}
    u = st.dicom.random()
    syntax = ov.syntax or SYNTAXES[int(np.searchsorted(np.cumsum(SYNTAX_P), u, side="right"))]
    if cfg.images and out_dir is not None and i < cfg.n_dicom:
        t4 = time.perf_counter()
        rel = os.path.join("dicom", study.study_uid, study.series_uid, f"{study.sop_uid}.dcm")
        path = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _call(dicom.write_dx, path, img, patient_id=mrn, study_uid=study.study_uid, series_uid=study.series_uid,
              sop_uid=study.sop_uid, study_date=index.strftime("%Y%m%d"), study_time=started.strftime("%H%M%S"),
              accession=study.accession, patient_sex="F" if p.sex == "female" else "M",
              patient_birth_date=birth.strftime("%Y%m%d"), patient_name=f"Synthetic^{pid}",
              patient_age=f"{min(age_years, 999):03d}Y", institution_name=SITE_NAMES[cfg.site],
              study_description=f"XR hip {'left' if laterality == 'L' else 'right'} AP",
              series_description=f"AP {'left' if laterality == 'L' else 'right'} hip")
        if syntax != "explicit":
            dicom.compress(path, syntax)
        dicom_info.update({"written": True, "syntax": syntax, "path": rel.replace(os.sep, "/")})
        timing["dicom"] = time.perf_counter() - t4

    t5 = time.perf_counter()
    bundle = build_bundle(pid=pid, mrn=mrn, person=p, ehr=ehr, index=index, birth=birth,
                          study=study, rng=st.chart, site=cfg.site, dxa=dxa)
    if out_dir is not None:
        with open(os.path.join(out_dir, "fhir", f"{pid}.json"), "w", encoding="utf-8") as f:
            json.dump(bundle, f, indent=1, ensure_ascii=False)
            f.write("\n")
    timing["fhir"] = time.perf_counter() - t5

    pr = o.predictors
    truth = {
        "patient_id": pid, "mrn": mrn, "site": cfg.site, "sex": p.sex, "age": p.age, "age_years": age_years,
        "index_datetime": started.isoformat(), "birth_date": birth.isoformat(),
        "nhs_ethnic": p.nhs_ethnic, "ethrisk": p.ethrisk, "height_cm": p.height_cm, "weight_kg": p.weight_kg,
        "bmi": p.bmi, "smoke_cat": p.smoke_cat, "alcohol_cat6": p.alcohol_cat6, "frailty": p.frailty,
        "flags": dict(p.flags), "prior_fractures": [{"site": s, "years_before_index": y} for s, y in p.prior_fractures],
        "bmd_t": b.bmd_t, "bmd_expected": b.bmd_expected, "bmd_resid_z": b.bmd_resid_z, "micro_z": b.micro_z,
        "qf_lp_hip_truth_inputs": pr.qf_lp_hip, "qf_lp_mof_truth_inputs": pr.qf_lp_mof,
        "true_lp_hip": pr.true_lp_hip, "true_lp_mof": pr.true_lp_mof,
        "true_risk_hip": o.true_risk_hip, "true_risk_mof": o.true_risk_mof,
        "latent_t_hip": _num(o.t_hip), "latent_t_mof": _num(o.t_mof), "t_death": o.t_death, "t_ltfu": o.t_ltfu,
        "t_admin": o.t_admin, "time_hip": o.time_hip, "event_hip": o.event_hip, "time_mof": o.time_mof,
        "event_mof": o.event_mof, "censor_reason": o.censor_reason, "mof_floor_years": o.mof_floor_years,
        "cumhaz_hip_at_time": o.cumhaz_hip_at_time, "cumhaz_mof_at_time": o.cumhaz_mof_at_time,
        "ehr": {"nhs_ethnic": ehr.nhs_ethnic, "bmi": ehr.bmi, "weight_kg": ehr.weight_kg, "height_cm": ehr.height_cm,
                "smoke_cat": ehr.smoke_cat, "alcohol_cat6": ehr.alcohol_cat6, "flags": dict(ehr.flags),
                "fractures": [{"site": s, "years_before_index": y} for s, y in ehr.fractures], **qf},
        "image": image_truth, "dicom": dicom_info,
        "dxa": None if dxa is None else dxa.truth(),
    }
    timing["total"] = time.perf_counter() - t0
    return {"truth": truth, "image": img_out, "timing": timing}
