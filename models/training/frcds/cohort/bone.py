"""Latent bone state (truth): femoral-neck BMD T-score and a microarchitecture score.

BMD T-score = E[T | age, sex, BMI, ethnicity, clinical factors] + residual, residual ~ N(0, RESID_SD²).
- Age/sex means follow NHANES III femoral-neck data as summarised by Looker et al. (Osteoporos Int 1998;8:468):
  women lose ≈0.5 T per decade after 50 (mean ≈ −0.7 at 50, ≈ −2.2 at 80+ where ≈35–40 % have T ≤ −2.5);
  men ≈ −0.3 at 50 falling ≈0.3 per decade (≈10–15 % osteoporotic at 80+). Both on their own sex's reference.
- Clinical effects (approximate, in T units): BMI +0.07 per kg/m² (weight is the strongest determinant of BMD),
  glucocorticoids −0.35, RA/SLE −0.30, malabsorption −0.30, endocrine (thyrotoxicosis, hyperparathyroidism,
  Cushing's) −0.25, type 1 diabetes −0.30, type 2 diabetes +0.15, current smoking −0.20, ≥7 units alcohol/day −0.25,
  HRT +0.40, Black ethnicity +0.50, prior fragility fracture −0.35, immobility (care home, dementia, Parkinson's)
  −0.20, CKD 4–5 −0.20, chronic liver disease −0.25, epilepsy (anticonvulsants) −0.20.
- ``bmd_resid_z`` = residual / RESID_SD is what carries the BMD hazard effect in :mod:`outcomes` (an age- and
  clinical-factor-adjusted gradient, as in Marshall, Johnell & Wedel, BMJ 1996;312:1254), so the BMD effect ADDS
  to QFracture rather than double-counting what its clinical factors already explain.

Microarchitecture score ``micro_z`` (SD units, higher = healthier): correlated with the BMD residual
(``MICRO_BMD_CORR``) but partly independent of it, and independent of the clinical factors given that residual, so
the image can carry information that neither BMD nor the chart holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .population import BLACK, Person

RESID_SD = 0.90          # T-score units; total within-age-sex SD ≈ 1.0 once clinical effects are added
MICRO_BMD_CORR = 0.40    # corr(micro_z, bmd_resid_z)
# T units lost per year of age (the age slopes of expected_t_score), used to date a T-score back to an earlier scan
T_LOSS_PER_YEAR = {"female": 0.05, "male": 0.03}


@dataclass(frozen=True)
class BoneState:
    bmd_t: float          # femoral-neck T-score (truth)
    bmd_expected: float   # E[T | clinical factors]
    bmd_resid_z: float    # (bmd_t − bmd_expected) / RESID_SD  ~ N(0, 1)
    micro_z: float        # microarchitecture, ~ N(0, 1), higher = healthier


def expected_t_score(p: Person) -> float:
    f = p.flags
    if p.sex == "female":
        m = -0.4 - T_LOSS_PER_YEAR["female"] * (p.age - 50.0)
    else:
        m = -0.15 - T_LOSS_PER_YEAR["male"] * (p.age - 50.0)
    m += 0.07 * (p.bmi - 27.0)
    m += -0.35 * f["b_corticosteroids"] - 0.30 * f["b_ra_sle"] - 0.30 * f["b_malabsorption"]
    m += -0.25 * f["b_endocrine"] - 0.30 * f["b_type1"] + 0.15 * f["b_type2"]
    m += -0.20 * (p.smoke_cat >= 2) - 0.25 * (p.alcohol_cat6 >= 4) + 0.40 * f["b_hrt_oest"]
    m += 0.50 * (p.ethrisk in BLACK) - 0.35 * f["b_fracture4"]
    m += -0.20 * bool(f["b_carehome"] or f["b_dementia"] or f["b_parkinsons"])
    m += -0.20 * f["b_renal"] - 0.25 * f["b_liver"] - 0.20 * f["b_epilepsy2"]
    return float(m)


def sample_bone(p: Person, rng: np.random.Generator) -> BoneState:
    e = expected_t_score(p)
    z = float(rng.normal())
    micro = MICRO_BMD_CORR * z + math.sqrt(1.0 - MICRO_BMD_CORR**2) * float(rng.normal())
    return BoneState(bmd_t=e + RESID_SD * z, bmd_expected=e, bmd_resid_z=z, micro_z=micro)
