"""DXA results in the chart: a femoral-neck T-score and BMD measured some time before the index radiograph.

Who has one (approximate, UK practice, where DXA follows a risk assessment rather than population screening, and
US practice, where women from 65 are screened): women 65+ 45 %, women under 65 25 %, men 15 %, each raised by
``P_AFTER_FRACTURE`` when the chart codes a prior fragility fracture (fracture liaison services send those
patients for DXA). Together about a third of a hip-radiograph population.

When: uniform 30 days – 5 years before the index date (at least a month, so the scan is not part of the same
episode as the radiograph).

What: the TRUE femoral-neck T-score at the scan date is the index-date truth (:mod:`bone`) plus the bone lost
between the scan and the index date, at the cross-sectional rate of :func:`bone.expected_t_score`
(``bone.T_LOSS_PER_YEAR``: women 0.05, men 0.03 T units a year). The scanner measures BMD with precision error
``PRECISION_BMD`` = 0.015 g/cm² (1 SD): same-day femoral-neck precision of 0.010–0.020 g/cm² across
technologists (Nelson et al., J Clin Densitom 2010;13:18), about 2 % of a typical femoral-neck BMD, inside the
International Society for Clinical Densitometry's minimum acceptable femoral-neck precision of 2.5 % (least
significant change 2.77 × precision). In T units that is 0.015 / 0.120 ≈ 0.13 for women and ≈ 0.11 for men.
BMD and T-score are linked by the young-adult reference (NHANES III non-Hispanic white adults aged 20–29, femoral
neck; Looker et al., Osteoporos Int 1998;8:468): women 0.858 ± 0.120 g/cm², men 0.934 ± 0.137 g/cm² — each on its
own sex's reference, as :mod:`bone` defines the T-score. The chart gets BMD to 3 decimals and the T-score computed
from that rounded BMD, to 1 decimal, as densitometer reports give them.

The draws come from the patient's own ``dxa`` stream (:mod:`streams`), so adding DXA results changes no other
output of the generator.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .bone import T_LOSS_PER_YEAR, BoneState
from .population import Person

# (sex, age ≥ 65) → probability of a charted DXA result
P_DXA = {("female", True): 0.45, ("female", False): 0.25, ("male", True): 0.15, ("male", False): 0.15}
P_AFTER_FRACTURE = 0.15
MIN_DAYS_BEFORE, MAX_YEARS_BEFORE = 30, 5.0
PRECISION_BMD = 0.015                       # g/cm², 1 SD
REFERENCE = {"female": (0.858, 0.120), "male": (0.934, 0.137)}   # young-adult femoral-neck BMD mean, SD (g/cm²)
LEFT_SHARE = 0.8                            # the left hip is scanned unless it is unsuitable (metalwork, fracture)


@dataclass(frozen=True)
class DxaResult:
    date: dt.date
    years_before_index: float
    laterality: str            # 'L' | 'R'
    true_t: float              # true femoral-neck T-score on the scan date
    bmd_g_cm2: float           # measured BMD as reported (3 decimals)
    t_score: float             # reported T-score (1 decimal), computed from the reported BMD

    def truth(self) -> dict:
        return {"date": self.date.isoformat(), "years_before_index": self.years_before_index,
                "laterality": self.laterality, "true_t_at_scan": self.true_t, "bmd_g_cm2": self.bmd_g_cm2,
                "t_score": self.t_score, "precision_sd_bmd_g_cm2": PRECISION_BMD}


def probability(p: Person, coded_prior_fracture: bool) -> float:
    base = P_DXA[(p.sex, p.age >= 65.0)]
    return min(base + (P_AFTER_FRACTURE if coded_prior_fracture else 0.0), 1.0)


def sample_dxa(p: Person, b: BoneState, index: dt.date, coded_prior_fracture: bool,
               rng: np.random.Generator) -> DxaResult | None:
    """One femoral-neck DXA result before ``index``, or None. Always makes the same four draws, so whether a
    patient has a scan does not change what the draws mean for another patient's stream."""
    u_has, u_when, u_side = rng.random(3)
    noise = float(rng.normal())
    if u_has >= probability(p, coded_prior_fracture):
        return None
    span = int(round(MAX_YEARS_BEFORE * 365.25)) - MIN_DAYS_BEFORE
    days = MIN_DAYS_BEFORE + int(u_when * (span + 1))
    years = days / 365.25
    true_t = b.bmd_t + T_LOSS_PER_YEAR[p.sex] * years
    mean, sd = REFERENCE[p.sex]
    bmd = round(mean + sd * true_t + PRECISION_BMD * noise, 3)
    t_score = round((bmd - mean) / sd, 1) + 0.0   # + 0.0: no '-0.0' in the chart
    return DxaResult(date=index - dt.timedelta(days=days), years_before_index=years,
                     laterality="L" if u_side < LEFT_SHARE else "R", true_t=true_t, bmd_g_cm2=bmd,
                     t_score=t_score)
