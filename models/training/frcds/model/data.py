"""Loading a generated cohort (contract 4: ``DIR/arrays/images.npz`` + ``DIR/arrays/tabular.npz``) and splitting it
by patient.

One image per patient is what the generator writes today; if a patient ever has several, the first one in file order
is that patient's index image (the cohort defines outcomes from the index image).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

#: tabular keys the model pipeline relies on (contract 4); anything else in the file is carried along untouched.
REQUIRED_TABULAR = (
    "patient_id", "site", "sex", "age", "qf_lp_hip", "qf_lp_mof", "qf_risk10_hip", "qf_risk10_mof", "time_hip", "event_hip", "time_mof", "event_mof",
    "true_lp_hip", "true_lp_mof", "true_risk_hip", "true_risk_mof", "bmd_t", "micro_z", "artefact", "should_exclude",
)
OUTCOMES = ("hip", "mof")


def cloglog_risk(r: np.ndarray) -> np.ndarray:
    return np.log(-np.log1p(-np.clip(np.asarray(r, np.float64), 1e-12, 1 - 1e-12)))


class CohortFormatError(ValueError):
    """The cohort directory does not hold arrays in the contract-4 format."""


@dataclass
class Cohort:
    """Per-patient arrays in one order: ``images[i]`` is patient ``tab['patient_id'][i]``."""
    images: np.ndarray          # float32 [N, S, S]
    masks: np.ndarray           # float32 [N, S, S]
    tab: dict[str, np.ndarray]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> "Cohort":
        idx = np.asarray(idx)
        return Cohort(self.images[idx], self.masks[idx], {k: v[idx] for k, v in self.tab.items()}, self.source,
                      self.meta)

    def clinical(self) -> np.ndarray:
        """The clinical input of the fused model [N, 2] (hip, MOF): log(-log(1 - r)) of the QFracture-2012 10-year
        risk r, i.e. the QFracture linear predictor a PLUS its sex-specific baseline term log(-log S0_sex(10)).
        The bare linear predictor is not comparable across the sexes (separate equations with different baselines:
        e.g. hip -6.31 women vs -7.03 men), so entering it alone would throw away QFracture's sex effect."""
        return np.stack([cloglog_risk(self.tab["qf_risk10_hip"] / 100.0),
                         cloglog_risk(self.tab["qf_risk10_mof"] / 100.0)], axis=1).astype(np.float32)

    def oracle_score(self, outcome: str) -> np.ndarray:
        """Oracle linear predictor on the same scale: log(-log(1 - true 10-year risk))."""
        return cloglog_risk(self.tab[f"true_risk_{outcome}"][:, 9])

    def time(self, outcome: str) -> np.ndarray:
        return self.tab[f"time_{outcome}"].astype(np.float64)

    def event(self, outcome: str) -> np.ndarray:
        return self.tab[f"event_{outcome}"].astype(bool)


def _load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise CohortFormatError(f"missing {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError:
        # object arrays (e.g. strings saved as dtype=object) need pickle; files are our own generator's output
        with np.load(path, allow_pickle=True) as z:
            return {k: z[k] for k in z.files}


def load_cohort(directory: str) -> Cohort:
    """Reads ``directory/arrays/*.npz`` and orders images by patient (index image per patient)."""
    img = _load_npz(os.path.join(directory, "arrays", "images.npz"))
    tab = _load_npz(os.path.join(directory, "arrays", "tabular.npz"))
    for k in ("images", "masks", "patient_index"):
        if k not in img:
            raise CohortFormatError(f"images.npz lacks '{k}'")
    missing = [k for k in REQUIRED_TABULAR if k not in tab]
    if missing:
        raise CohortFormatError(f"tabular.npz lacks {missing}")
    n = len(tab["patient_id"])
    pidx = img["patient_index"].astype(np.int64)
    first = np.full(n, -1, dtype=np.int64)
    for i in range(len(pidx) - 1, -1, -1):
        first[pidx[i]] = i
    if (first < 0).any():
        raise CohortFormatError(f"{int((first < 0).sum())} patients have no image")
    tab = {k: np.asarray(v) for k, v in tab.items()}
    tab["artefact"] = tab["artefact"].astype(str)
    tab["site"] = tab["site"].astype(str)
    tab["patient_id"] = tab["patient_id"].astype(str)
    tab["should_exclude"] = tab["should_exclude"].astype(bool)
    for k in ("qf_lp_hip", "qf_lp_mof", "qf_risk10_hip", "qf_risk10_mof"):
        if not np.isfinite(tab[k].astype(np.float64)).all():
            raise CohortFormatError(f"{k} has non-finite values; the clinical term needs a value for every patient")
    meta = {}
    cj = os.path.join(directory, "cohort.json")
    if os.path.exists(cj):
        with open(cj, encoding="utf-8") as f:
            meta = json.load(f)
    images = img["images"][first].astype(np.float32)
    masks = img["masks"][first].astype(np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise CohortFormatError(f"images must be [N,S,S], got {images.shape}")
    return Cohort(images, masks, tab, directory, meta)


def split_by_patient(n: int, n_train: int, n_val: int, seed: int) -> dict[str, np.ndarray]:
    """Random patient-level split; everything not in train/val is test (so test is never smaller than asked)."""
    if n_train + n_val >= n:
        raise ValueError(f"cohort of {n} is too small for train {n_train} + val {n_val} + a test set")
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(perm[:n_train]), "val": np.sort(perm[n_train:n_train + n_val]),
            "test": np.sort(perm[n_train + n_val:])}
