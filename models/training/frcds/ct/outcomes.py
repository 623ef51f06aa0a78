"""Fracture outcomes of the CT cohort: the hip cohort's simulation (:mod:`frcds.cohort.outcomes`) plus a FIXED
hazard ratio for the worst prevalent vertebral compression fracture in the phantom anatomy.

    η_o,i = (the hip cohort's true linear predictor: QFracture-2012 + BMD residual + microarchitecture)
            + log HR_o[worst true Genant grade of T10–L5]

    grade      1     2     3
    MOF HR   1.8   2.4   3.2
    hip HR   1.4   1.8   2.3

The hazard ratios are those the issue fixes (a prevalent vertebral fracture roughly doubles the risk of the next
one and raises hip risk less; the gradient with grade follows the Genant severity literature). They were set
before any model was fitted and must not be tuned to flatter one. Everything else — baseline shape and its
calibration constants, MOF ⊇ hip, death, loss to follow-up, administrative censoring — is the hip cohort's code,
unchanged; the baseline constants are NOT re-solved, so a CT population with prevalent fractures has a somewhat
higher incidence than QFracture predicts for it (which is what such a fracture means).
"""
from __future__ import annotations

import math

import numpy as np

from ..cohort.bone import BoneState
from ..cohort.outcomes import Outcome, calibration, simulate
from ..cohort.population import Person

#: hazard ratio by worst prevalent Genant grade (index 0 = no fracture)
HR_MOF = (1.0, 1.8, 2.4, 3.2)
HR_HIP = (1.0, 1.4, 1.8, 2.3)


def fracture_log_hr(worst_grade: int) -> tuple[float, float]:
    """(hip, MOF) log hazard ratio of a worst prevalent grade 0..3."""
    g = int(worst_grade)
    if not 0 <= g <= 3:
        raise ValueError(f"Genant grade {g} outside 0..3")
    return math.log(HR_HIP[g]), math.log(HR_MOF[g])


def simulate_ct_outcome(p: Person, b: BoneState, worst_grade: int, rng: np.random.Generator,
                        age_years: int | None = None) -> Outcome:
    """The hip cohort's outcome simulation with the prevalent-fracture term added to both true linear predictors."""
    return simulate(p, b, rng, calibration(), age_years=age_years, extra_lp=fracture_log_hr(worst_grade))
