"""QFracture-2012 risk equations (10-year hip and major osteoporotic fracture risk).

QFracture-2012 equations, Copyright 2012 ClinRisk Ltd, published under LGPL-3.0-or-later; this is NOT the current
QFracture release. The coefficients are read from ``models/qfracture-2012/coefficients.json`` (located relative to
this file), never re-typed here, so the cohort generator and the TypeScript service share one source.

Written by hand rather than taken from a library because no maintained Python package ships the 2012 equations; the
arithmetic is short (risk = 100·(1 − S0(t)^exp(a))) and is tested against ClinRisk's five reference outputs.

Conventions:
- ``outcome`` is ``'hip'`` (ClinRisk ``nof``) or ``'mof'`` (``fracture4``: hip, wrist, spine, shoulder).
- ``sex`` is ``'female'`` or ``'male'``.
- Inputs out of ClinRisk's range raise :class:`QFractureInputError` (ClinRisk's C returns 0 instead); callers that
  want clamping (e.g. the simulator for BMI outside 20–40) must clamp explicitly with :func:`clamp_bmi`.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

COEFFICIENTS_PATH = Path(__file__).resolve().parents[2] / "qfracture-2012" / "coefficients.json"
ATTRIBUTION = "QFracture-2012 equations, Copyright 2012 ClinRisk Ltd, LGPL-3.0 (not the current QFracture release)"

OUTCOME_KEYS = {"hip": "nof", "mof": "fracture4"}
SEXES = ("female", "male")

#: Every boolean any of the four equations uses. An equation ignores booleans it does not list
#: (e.g. women's equations have no care-home term; men's no HRT or endocrine term).
BOOLEANS = (
    "b_antidepressant", "b_anycancer", "b_asthmacopd", "b_carehome", "b_corticosteroids", "b_cvd",
    "b_dementia", "b_endocrine", "b_epilepsy2", "b_falls", "b_fracture4", "b_hrt_oest", "b_liver",
    "b_malabsorption", "b_parkinsons", "b_ra_sle", "b_renal", "b_type1", "b_type2", "fh_osteoporosis",
)

AGE_RANGE = (30, 100)
BMI_RANGE = (20.0, 40.0)
ETHRISK_RANGE = (1, 9)
SMOKE_RANGE = (0, 4)
ALCOHOL_RANGE = (0, 5)
SURV_RANGE = (1, 18)

# The fractional-polynomial transforms that occur in the coefficient file, keyed by their literal text there.
_TRANSFORMS = {
    "dage": lambda d: d,
    "pow(dage,0.5)": np.sqrt,
    "pow(dage,2)": lambda d: d * d,
    "pow(dage,3)": lambda d: d * d * d,
    "pow(dage,3)*log(dage)": lambda d: d * d * d * np.log(d),
    "pow(dbmi,-1)": lambda d: 1.0 / d,
    "pow(dbmi,-0.5)": lambda d: 1.0 / np.sqrt(d),
    "pow(dbmi,-2)": lambda d: 1.0 / (d * d),
}


class QFractureInputError(ValueError):
    """An input is outside the range ClinRisk's program accepts."""


@lru_cache(maxsize=1)
def coefficients() -> dict:
    with open(COEFFICIENTS_PATH, encoding="utf-8") as f:
        data = json.load(f)
    for eq in data["equations"].values():
        for name, transform, _centre, _coef in eq["fp"]:
            if transform not in _TRANSFORMS:
                raise QFractureInputError(f"unknown fractional-polynomial transform {transform!r} ({name})")
    return data


def equation(outcome: str, sex: str) -> dict:
    if outcome not in OUTCOME_KEYS:
        raise QFractureInputError(f"outcome must be 'hip' or 'mof', got {outcome!r}")
    if sex not in SEXES:
        raise QFractureInputError(f"sex must be 'female' or 'male', got {sex!r}")
    return coefficients()["equations"][f"{OUTCOME_KEYS[outcome]}_{sex}"]


def survivor(outcome: str, sex: str) -> np.ndarray:
    """Baseline survivor S0(t) for t = 0..18 years (S0(0) = 1; ClinRisk's index 0 is unused)."""
    s = np.array(equation(outcome, sex)["survivor"], dtype=np.float64)
    s[0] = 1.0
    return s


def clamp_bmi(bmi: float) -> float:
    return float(min(max(bmi, BMI_RANGE[0]), BMI_RANGE[1]))


def _check_int(name: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise QFractureInputError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    return int(v)


def linear_predictor(outcome: str, sex: str, inputs: Mapping[str, object]) -> float:
    """The QFracture-2012 linear predictor ``a`` for one person.

    ``inputs``: age (integer years 30..100), bmi (20..40), ethrisk (1..9), smoke_cat (0..4), alcohol_cat6 (0..5),
    and any of :data:`BOOLEANS` (missing booleans count as 0).
    """
    eq = equation(outcome, sex)
    age = _check_int("age", inputs["age"], *AGE_RANGE)
    bmi = float(inputs["bmi"])  # type: ignore[arg-type]
    if not (BMI_RANGE[0] <= bmi <= BMI_RANGE[1]) or math.isnan(bmi):
        raise QFractureInputError(f"bmi must be in {BMI_RANGE[0]}..{BMI_RANGE[1]}, got {bmi!r}")
    eth = _check_int("ethrisk", inputs["ethrisk"], *ETHRISK_RANGE)
    smoke = _check_int("smoke_cat", inputs["smoke_cat"], *SMOKE_RANGE)
    alc = _check_int("alcohol_cat6", inputs["alcohol_cat6"], *ALCOHOL_RANGE)
    a = eq["Ialcohol"][alc] + eq["Iethrisk"][eth] + eq["Ismoke"][smoke]
    d = {"age": age / 10.0, "bmi": bmi / 10.0}
    for name, transform, centre, coef in eq["fp"]:
        x = d["age"] if name.startswith("age") else d["bmi"]
        a += coef * (float(_TRANSFORMS[transform](x)) - centre)
    for b, coef in eq["boolean"].items():
        v = inputs.get(b, 0)
        if v not in (0, 1, True, False):
            raise QFractureInputError(f"{b} must be 0 or 1, got {v!r}")
        a += coef * int(v)
    return float(a)


def risk_from_lp(lp: float | np.ndarray, outcome: str, sex: str, years: int = 10) -> float | np.ndarray:
    """Risk in PERCENT at ``years`` (1..18) for linear predictor(s) ``lp``."""
    t = _check_int("surv", years, *SURV_RANGE)
    s0 = equation(outcome, sex)["survivor"][t]
    return 100.0 * (1.0 - np.power(s0, np.exp(lp)))


def risk(outcome: str, sex: str, inputs: Mapping[str, object], years: int = 10) -> float:
    """QFracture-2012 risk (%) of ``outcome`` within ``years`` years."""
    return float(risk_from_lp(linear_predictor(outcome, sex, inputs), outcome, sex, years))
