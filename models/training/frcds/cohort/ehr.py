"""What the electronic health record knows (the chart), as opposed to the truth in :mod:`population`.

Recording model (approximate, UK primary care; QFracture's own derivation had BMI missing for ≈30 % and smoking
for ≈10 % of people, and ethnicity not stated for ≈30 % in older GP records):
- ethnicity recorded with probability ``p_ethnicity``; otherwise NHS ethnic category 'Z' (not stated) → ethrisk 1,
- weight and height (hence BMI) recorded with probability ``p_bmi``; recorded values carry measurement error
  (weight SD 1 kg, height SD 1 cm),
- smoking and alcohol status recorded with probabilities ``p_smoking``, ``p_alcohol``,
- a true condition is coded with probability ``SENSITIVITY`` (falls and family history are often not coded),
  never coded when absent (no false positives); each prior fracture is coded with probability 0.85 (0.97 if
  within 2 years).

QFracture-2012 inputs from the chart (the service must do the same; documented in models/training/README.md):
- age = completed years between birthDate and the index date,
- BMI not recorded → ``BMI_IMPUTE`` = 27.0 kg/m² (adult 50+ mean, Health Survey for England 2019); recorded BMI is
  clamped to 20–40 (the equation's range),
- ethnicity not recorded → 1, smoking not recorded → 0 (non-smoker), alcohol not recorded → 0 (none),
- a boolean is 1 when a coded Condition / MedicationRequest / FamilyMemberHistory in its ValueSet exists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import qfracture
from ..qfracture import BOOLEANS
from .population import NHS_ETHNIC_TO_ETHRISK, Person

SITE_RECORDING = {
    "A": {"p_ethnicity": 0.85, "p_bmi": 0.85, "p_smoking": 0.95, "p_alcohol": 0.80},
    "B": {"p_ethnicity": 0.75, "p_bmi": 0.75, "p_smoking": 0.90, "p_alcohol": 0.70},
}
SENSITIVITY = {"b_falls": 0.60, "fh_osteoporosis": 0.50, "b_dementia": 0.90, "b_carehome": 0.90}
DEFAULT_SENSITIVITY = 0.97
FRACTURE_SENSITIVITY = 0.85
RECENT_FRACTURE_SENSITIVITY = 0.97
BMI_IMPUTE = 27.0
# Alcohol intake written as UK units/day (LOINC 74013-4); one representative value per category so the
# category can be read back exactly (valueset observation-codes documents the cut points).
ALCOHOL_UNITS = (0.0, 0.5, 2.0, 4.0, 8.0, 12.0)


def alcohol_category(units_per_day: float) -> int:
    u = units_per_day
    if u <= 0:
        return 0
    if u < 1:
        return 1
    if u < 3:
        return 2
    if u < 7:
        return 3
    if u <= 9:
        return 4
    return 5


@dataclass
class EhrView:
    nhs_ethnic: str                       # recorded letter, 'Z' if not stated
    weight_kg: float | None
    height_cm: float | None
    bmi: float | None                     # recorded BMI (from recorded weight/height), None if not recorded
    smoke_cat: int | None
    alcohol_cat6: int | None
    flags: dict[str, int]                 # booleans as coded in the chart
    fractures: list[tuple[str, float]]    # recorded prior fractures (site, years before index)
    obs_years_before: float               # when the last weight/height/smoking/alcohol was recorded

    def qf_inputs(self, age_years: int) -> dict:
        bmi = BMI_IMPUTE if self.bmi is None else qfracture.clamp_bmi(self.bmi)
        d = {"age": min(max(age_years, 30), 100), "bmi": bmi,
             "ethrisk": NHS_ETHNIC_TO_ETHRISK.get(self.nhs_ethnic, 1),
             "smoke_cat": 0 if self.smoke_cat is None else self.smoke_cat,
             "alcohol_cat6": 0 if self.alcohol_cat6 is None else self.alcohol_cat6}
        d.update(self.flags)
        return d


def record(p: Person, rng: np.random.Generator, site: str) -> EhrView:
    r = SITE_RECORDING[site]
    u = rng.random(8)
    eth = p.nhs_ethnic if u[0] < r["p_ethnicity"] else "Z"
    if u[1] < r["p_bmi"]:
        w = round(p.weight_kg + float(rng.normal(0.0, 1.0)), 1)
        h = round(p.height_cm + float(rng.normal(0.0, 1.0)))
        bmi = round(w / (h / 100.0) ** 2, 1)
    else:
        w = h = bmi = None
    smoke = p.smoke_cat if u[2] < r["p_smoking"] else None
    alc = p.alcohol_cat6 if u[3] < r["p_alcohol"] else None
    obs_years = float(u[4] * 2.0)
    # recent fractures (< 2 years) are nearly always coded; older ones less often
    fractures = [fr for fr in p.prior_fractures
                 if rng.random() < (RECENT_FRACTURE_SENSITIVITY if fr[1] < 2.0 else FRACTURE_SENSITIVITY)]
    flags = {}
    su = rng.random(len(BOOLEANS))
    for b, x in zip(BOOLEANS, su):
        if b == "b_fracture4":
            flags[b] = int(bool(fractures))
        else:
            flags[b] = int(bool(p.flags[b]) and x < SENSITIVITY.get(b, DEFAULT_SENSITIVITY))
    return EhrView(nhs_ethnic=eth, weight_kg=w, height_cm=h, bmi=bmi, smoke_cat=smoke, alcohol_cat6=alc,
                   flags=flags, fractures=fractures, obs_years_before=obs_years)


def qf_from_ehr(view: EhrView, sex: str, age_years: int) -> dict[str, float]:
    x = view.qf_inputs(age_years)
    out = {}
    for o in ("hip", "mof"):
        lp = qfracture.linear_predictor(o, sex, x)
        out[f"qf_lp_{o}"] = lp
        out[f"qf_risk10_{o}"] = float(qfracture.risk_from_lp(lp, o, sex, 10))
    assert all(math.isfinite(v) for v in out.values())
    return out
