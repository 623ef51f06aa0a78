"""The data-access layer of hip-xray-v2 training: what a hospital could hand over, and nothing else.

Training code gets an :class:`ObservableCohort`: the preprocessed radiograph, the QFracture-2012 risk computed from
the CHART (the EHR view of the risk factors, with its missing values and defaults), the censored outcomes, a quality
review flag, and the measured DXA femoral-neck T-score read from the patient's FHIR Bundle with its date relative to
the index radiograph. The generator's hidden variables (true BMD T-score, BMD residual, microarchitecture, true
linear predictors and risks, the truth signal masks) are never loaded by :func:`load_observables`; asking the
table for one raises :class:`HiddenVariableError`. Evaluation code reads them through :func:`load_truth`, which the
training stage never calls (tests/test_model2_observables.py checks both).

``should_exclude`` is treated as observable: it marks images with hardware, motion, underexposure or a cropped
femoral neck, which a radiographer's quality review sees on the image. Its kind (``artefact``) is kept for
evaluation only.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

#: tabular columns a hospital has: chart-derived QFracture inputs/outputs, demographics, outcomes, quality review
OBSERVABLE_COLUMNS = (
    "patient_id", "site", "sex", "age", "qf_lp_hip", "qf_lp_mof", "qf_risk10_hip", "qf_risk10_mof",
    "time_hip", "event_hip", "time_mof", "event_mof", "should_exclude",
)
#: generator truth: evaluation only
HIDDEN_COLUMNS = (
    "bmd_t", "bmd_resid_z", "micro_z", "true_lp_hip", "true_lp_mof", "true_risk_hip", "true_risk_mof", "artefact",
)
OUTCOMES = ("hip", "mof")
#: LOINC codes of a femur (femoral neck) DXA T-score, the subset of fhir-profiles/valuesets/dxa-result.json the
#: synthetic charts write; total-hip T-scores are a different region and are not used as the target
FEMUR_TSCORE_LOINC = ("38263-0", "80948-3", "80947-5")


class HiddenVariableError(KeyError):
    """Training code asked for a generator variable a hospital would not have."""


class ObservableTable(Mapping):
    """Read-only per-patient columns restricted to :data:`OBSERVABLE_COLUMNS` (plus the DXA columns)."""

    def __init__(self, cols: dict[str, np.ndarray]):
        bad = [k for k in cols if k in HIDDEN_COLUMNS]
        if bad:
            raise HiddenVariableError(f"hidden columns offered to the observable table: {bad}")
        self._cols = cols

    def __getitem__(self, key: str) -> np.ndarray:
        if key in HIDDEN_COLUMNS or key.startswith("true_"):
            raise HiddenVariableError(f"'{key}' is a hidden simulator variable; training may not read it")
        return self._cols[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)

    def subset(self, idx: np.ndarray) -> "ObservableTable":
        return ObservableTable({k: v[idx] for k, v in self._cols.items()})


def cloglog_risk(r: np.ndarray) -> np.ndarray:
    return np.log(-np.log1p(-np.clip(np.asarray(r, np.float64), 1e-12, 1 - 1e-12)))


@dataclass
class ObservableCohort:
    """Per-patient arrays in one order; ``tab`` also holds ``dxa_t`` (NaN when the chart has no DXA) and
    ``dxa_years`` (years between the scan and the index radiograph, NaN when none)."""
    images: np.ndarray
    tab: ObservableTable
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> "ObservableCohort":
        idx = np.asarray(idx)
        return ObservableCohort(self.images[idx], self.tab.subset(idx), self.source, self.meta)

    def clinical(self) -> np.ndarray:
        """[N, 2] cloglog of the chart QFracture-2012 10-year risks (hip, MOF): the model's clinical input."""
        return np.stack([cloglog_risk(self.tab["qf_risk10_hip"] / 100.0),
                         cloglog_risk(self.tab["qf_risk10_mof"] / 100.0)], axis=1).astype(np.float32)

    def time(self, outcome: str) -> np.ndarray:
        return np.asarray(self.tab[f"time_{outcome}"], np.float64)

    def event(self, outcome: str) -> np.ndarray:
        return np.asarray(self.tab[f"event_{outcome}"]).astype(bool)

    @property
    def has_dxa(self) -> np.ndarray:
        return np.isfinite(self.tab["dxa_t"])


def _date(s: str) -> dt.date:
    return dt.date.fromisoformat(s[:10])


def dxa_from_bundle(bundle: dict) -> tuple[float, float]:
    """(T-score, years before the index radiograph) of the most recent final femur DXA T-score dated on or before
    the index date (the ImagingStudy's start), or (NaN, NaN)."""
    index = None
    found: list[tuple[dt.date, float]] = []
    for e in bundle.get("entry", []):
        r = e.get("resource", {})
        if r.get("resourceType") == "ImagingStudy" and r.get("started"):
            index = _date(r["started"])
        elif r.get("resourceType") == "Observation" and r.get("status") in ("final", "amended", "corrected"):
            codes = {c.get("code") for c in r.get("code", {}).get("coding", []) if c.get("system") == "http://loinc.org"}
            vq = r.get("valueQuantity", {})
            if codes & set(FEMUR_TSCORE_LOINC) and "value" in vq and r.get("effectiveDateTime"):
                found.append((_date(r["effectiveDateTime"]), float(vq["value"])))
    if index is None or not found:
        return float("nan"), float("nan")
    before = [(d, v) for d, v in found if d <= index]
    if not before:
        return float("nan"), float("nan")
    d, v = max(before)
    return v, (index - d).days / 365.25


def read_dxa(directory: str, patient_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.full(len(patient_ids), np.nan)
    y = np.full(len(patient_ids), np.nan)
    for i, pid in enumerate(patient_ids):
        p = os.path.join(directory, "fhir", f"{pid}.json")
        if not os.path.exists(p):
            continue
        with open(p, encoding="utf-8") as f:
            t[i], y[i] = dxa_from_bundle(json.load(f))
    return t, y


def _first_image_per_patient(patient_index: np.ndarray, n: int | None) -> np.ndarray:
    pidx = patient_index.astype(np.int64)
    n = int(pidx.max()) + 1 if n is None else n
    first = np.full(n, -1, dtype=np.int64)
    for i in range(len(pidx) - 1, -1, -1):
        first[pidx[i]] = i
    if (first < 0).any():
        raise ValueError(f"{int((first < 0).sum())} patients have no image")
    return first


def load_observables(directory: str, limit: int | None = None) -> ObservableCohort:
    """Images (index image per patient), observable columns and measured DXA of a generated cohort directory; with
    ``limit`` only the first ``limit`` patients (the generator draws every patient from its own streams, so they are
    the patients a cohort of that size with the same seed would have). Reads only the whitelisted members of the npz
    files (np.load is lazy per member)."""
    with np.load(os.path.join(directory, "arrays", "tabular.npz"), allow_pickle=False) as z:
        missing = [k for k in OBSERVABLE_COLUMNS if k not in z.files]
        if missing:
            raise ValueError(f"tabular.npz lacks {missing}")
        cols = {k: np.asarray(z[k])[:limit] for k in OBSERVABLE_COLUMNS}
    cols["patient_id"] = cols["patient_id"].astype(str)
    cols["site"] = cols["site"].astype(str)
    cols["should_exclude"] = cols["should_exclude"].astype(bool)
    for k in ("qf_risk10_hip", "qf_risk10_mof"):
        if not np.isfinite(cols[k].astype(np.float64)).all():
            raise ValueError(f"{k} has non-finite values; the clinical term needs a value for every patient")
    n = len(cols["patient_id"])
    with np.load(os.path.join(directory, "arrays", "images.npz"), allow_pickle=False) as z:
        first = _first_image_per_patient(z["patient_index"], None)[:n]
        images = z["images"][first].astype(np.float32)
    cols["dxa_t"], cols["dxa_years"] = read_dxa(directory, cols["patient_id"])
    meta = {}
    cj = os.path.join(directory, "cohort.json")
    if os.path.exists(cj):
        with open(cj, encoding="utf-8") as f:
            meta = {k: v for k, v in json.load(f).items() if k in ("timings", "config", "counts")}
    return ObservableCohort(images, ObservableTable(cols), directory, meta)


def load_truth(directory: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """Hidden generator variables for EVALUATION: true risks, true T-score, artefact kind, truth masks."""
    out: dict[str, np.ndarray] = {}
    with np.load(os.path.join(directory, "arrays", "tabular.npz"), allow_pickle=False) as z:
        for k in HIDDEN_COLUMNS + ("patient_id",):
            if k in z.files:
                out[k] = np.asarray(z[k])[:limit]
        n = len(out["patient_id"])
    out["patient_id"] = out["patient_id"].astype(str)
    out["artefact"] = out.get("artefact", np.array([""] * n)).astype(str)
    with np.load(os.path.join(directory, "arrays", "images.npz"), allow_pickle=False) as z:
        if "masks" in z.files:
            out["masks"] = z["masks"][_first_image_per_patient(z["patient_index"], None)[:n]].astype(np.float32)
    return out
