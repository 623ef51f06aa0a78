"""Population model: who is in the cohort (adults 50–90 with an AP hip radiograph) and what is true about them.

Everything here is TRUTH (what is really the case); :mod:`frcds.cohort.ehr` decides what the chart records.
Prevalences are approximate, for plausibility not epidemiology; each number is commented with its source:

- [HSE]   Health Survey for England 2019 (NHS Digital): BMI, smoking, alcohol by age and sex.
- [ONS]   ONS 2011 census, ethnic group of people aged 50+ (England; London for site B).
- [QF09]  Hippisley-Cox & Coupland, BMJ 2009;339:b4229 (QFracture derivation cohort, baseline table) and the
          2012 update (QFracture-2012): prevalences of the risk factors in UK primary care aged 30–85.
- [QOF]   NHS Quality and Outcomes Framework registers (diabetes, COPD, asthma, CKD, dementia, epilepsy, RA).
- [lit]   general epidemiology (e.g. dementia doubling every ~5 years of age; Parkinson's ~1 % at 70).

Correlations come from a latent frailty score (raises cardiovascular, renal, dementia, falls, care home,
antidepressant odds), BMI (type 2 diabetes), smoking (COPD, CVD), alcohol (liver), and condition → condition links
(COPD/RA → glucocorticoids, dementia → care home, Parkinson's/dementia/antidepressants → falls, falls and
glucocorticoids → prior fracture).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..qfracture import BOOLEANS

# Site population mixes. Site A: an English district general hospital; site B: an inner-London hospital with an
# older, more ethnically diverse population (for external validation).  [ONS]
NHS_ETHNIC_TO_ETHRISK = {
    "A": 1, "B": 1, "C": 1, "H": 2, "J": 3, "K": 4, "L": 5, "M": 6, "N": 7, "R": 8,
    "D": 9, "E": 9, "F": 9, "G": 9, "P": 9, "S": 9,
}
SITES = {
    "A": {
        "p_female": 0.62,          # hip radiographs 50+: ~60 % women (OA and falls clinics)
        "age_mean": 69.0, "age_sd": 10.5,
        "ethnic": {"A": 0.850, "B": 0.012, "C": 0.035, "H": 0.022, "J": 0.012, "K": 0.004, "L": 0.008,
                   "M": 0.012, "N": 0.010, "R": 0.004, "D": 0.003, "E": 0.001, "F": 0.002, "G": 0.002,
                   "P": 0.002, "S": 0.021},
    },
    "B": {
        "p_female": 0.56,
        "age_mean": 72.0, "age_sd": 10.0,
        "ethnic": {"A": 0.550, "B": 0.030, "C": 0.080, "H": 0.070, "J": 0.030, "K": 0.025, "L": 0.040,
                   "M": 0.050, "N": 0.050, "R": 0.015, "D": 0.005, "E": 0.003, "F": 0.004, "G": 0.005,
                   "P": 0.010, "S": 0.033},
    },
}
AGE_MIN, AGE_MAX = 50.0, 90.0
SOUTH_ASIAN = (2, 3, 4)
BLACK = (6, 7)
FRACTURE_SITES = ("wrist", "spine", "shoulder", "hip")
FRACTURE_SITE_P = (0.40, 0.25, 0.20, 0.15)   # distribution of prior fragility fractures by site [lit]

# Prevalence model: logit p = logit(p_ref) + log(or_age)·(age−70)/10 + log(or_male)·male + log(or_frail)·frailty
# + condition-specific terms. p_ref = prevalence in a 70-year-old woman of average frailty.  [QF09][QOF][lit]
PREVALENCE = {
    #                 p_ref   or_age  or_male  or_frail
    "b_type1":        (0.004, 0.90, 1.20, 1.00),
    "b_type2":        (0.100, 1.20, 1.50, 1.30),   # + BMI, ethnicity
    "b_asthmacopd":   (0.120, 1.10, 1.00, 1.30),   # + smoking
    "b_anycancer":    (0.070, 1.50, 1.10, 1.20),
    "b_cvd":          (0.110, 1.80, 1.90, 1.60),   # + T2D, smoking
    "b_dementia":     (0.025, 3.50, 0.90, 1.80),
    "b_epilepsy2":    (0.012, 1.00, 1.10, 1.30),
    "b_parkinsons":   (0.007, 2.20, 1.50, 1.50),
    "b_liver":        (0.008, 1.00, 1.40, 1.30),   # + alcohol
    "b_renal":        (0.008, 2.00, 1.20, 1.60),   # CKD 4–5; + T2D
    "b_malabsorption": (0.012, 1.00, 1.00, 1.00),
    "b_endocrine":    (0.015, 1.10, 0.33, 1.00),
    "b_ra_sle":       (0.015, 1.10, 0.50, 1.20),
    "b_carehome":     (0.010, 3.00, 1.00, 2.00),   # + dementia
    "b_antidepressant": (0.130, 0.95, 0.55, 1.50),  # + dementia
    "b_corticosteroids": (0.025, 1.10, 1.00, 1.20),  # + COPD, RA/SLE
    "fh_osteoporosis": (0.020, 0.90, 0.50, 1.00),
    "b_falls":        (0.070, 1.70, 0.90, 2.00),   # + Parkinson's, dementia, epilepsy, antidepressants
    "b_fracture4":    (0.090, 1.60, 0.50, 1.30),   # + falls, glucocorticoids, low BMI
}
HRT_P_AT_60, HRT_OR_DECADE = 0.06, 0.30          # women only; HRT use falls steeply with age [lit]


@dataclass
class Person:
    sex: str                      # 'female' | 'male'
    age: float                    # exact age at the index radiograph, years
    nhs_ethnic: str               # NHS ethnic category letter (truth)
    ethrisk: int                  # QFracture ethnicity 1..9 (truth)
    height_cm: float
    weight_kg: float
    bmi: float
    smoke_cat: int                # 0..4
    alcohol_cat6: int             # 0..5
    frailty: float                # latent, N(0, 1)
    flags: dict[str, int]         # every QFracture boolean (truth)
    onset_years: dict[str, float]  # years before index at which each true condition started
    prior_fractures: list[tuple[str, float]] = field(default_factory=list)  # (site, years before index)

    @property
    def age_years(self) -> int:
        return int(np.floor(self.age))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _bern(rng: np.random.Generator, lin: float) -> int:
    return int(rng.random() < 1.0 / (1.0 + math.exp(-float(lin))))


def _truncnorm(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    while True:
        x = rng.normal(mean, sd)
        if lo <= x < hi:
            return float(x)


def _cat(rng: np.random.Generator, weights) -> int:
    # Inverse-CDF draw (rng.choice with p= is ~10x slower per call and this runs ~10 times per patient).
    u = rng.random() * math.fsum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1


def sample_person(rng: np.random.Generator, site: str) -> Person:
    """Draws one person of ``site``'s population. Uses only ``rng`` (deterministic per patient stream)."""
    sp = SITES[site]
    sex = "female" if rng.random() < sp["p_female"] else "male"
    male = sex == "male"
    age = _truncnorm(rng, sp["age_mean"], sp["age_sd"], AGE_MIN, AGE_MAX)
    letters = list(sp["ethnic"])
    nhs = letters[_cat(rng, [sp["ethnic"][k] for k in letters])]
    eth = NHS_ETHNIC_TO_ETHRISK[nhs]
    frailty = float(rng.normal())
    a10 = (age - 70.0) / 10.0

    # Anthropometry [HSE]: mean BMI ~27–28, slight fall after 70; South Asian and Chinese lower, Black women higher.
    bmi_mean = (27.3 if not male else 27.8) - 0.8 * max(a10, 0.0)
    bmi_mean += {2: -0.8, 3: -0.5, 4: -1.5, 5: -1.0, 8: -3.0}.get(eth, 0.0)
    if eth in BLACK and not male:
        bmi_mean += 1.5
    bmi = float(np.exp(rng.normal(np.log(bmi_mean) - 0.5 * 0.17**2, 0.17)))   # CV ≈ 17 %
    bmi = float(min(max(bmi, 15.0), 55.0))
    height = rng.normal(161.5 if not male else 175.0, 6.5 if not male else 7.0) - 1.0 * max(a10 + 2.0, 0.0)
    if eth in (2, 3, 4, 5, 8):
        height -= 4.0
    height = float(min(max(height, 135.0), 205.0))
    weight = bmi * (height / 100.0) ** 2

    # Smoking [HSE]: current smoking falls with age; men more often ex-smokers; South Asian women rarely smoke.
    p_current = max(0.17 - 0.03 * (age - 50.0) / 10.0, 0.04) * (1.15 if male else 1.0)
    if eth in SOUTH_ASIAN and not male:
        p_current *= 0.2
    p_ex = 0.28 + 0.03 * (age - 50.0) / 10.0 + (0.10 if male else 0.0)
    smoke_w = [1.0 - p_current - p_ex, p_ex, p_current * 0.45, p_current * 0.37, p_current * 0.18]
    smoke = _cat(rng, smoke_w)
    # Alcohol, units/day [HSE]: 0 none, 1 <1, 2 1–2, 3 3–6, 4 7–9, 5 >9.
    alc_w = [0.30, 0.42, 0.18, 0.09, 0.008, 0.002] if not male else [0.22, 0.30, 0.25, 0.19, 0.03, 0.01]
    if eth in (2, 3, 4, 7):
        alc_w = [alc_w[0] * 4.0] + alc_w[1:]
    if age >= 80:
        alc_w = [alc_w[0] * 1.5] + alc_w[1:]
    alc = _cat(rng, alc_w)

    f: dict[str, int] = {b: 0 for b in BOOLEANS}

    def lin(name: str) -> float:
        p, or_age, or_male, or_frail = PREVALENCE[name]
        return _logit(p) + np.log(or_age) * a10 + np.log(or_male) * male + np.log(or_frail) * frailty

    f["b_type1"] = _bern(rng, lin("b_type1"))
    t2 = lin("b_type2") + np.log(1.9) * (bmi - 27.5) / 5.0
    t2 += np.log(2.5) if eth in SOUTH_ASIAN else (np.log(1.8) if eth in BLACK else 0.0)
    f["b_type2"] = 0 if f["b_type1"] else _bern(rng, t2)
    ever_smoked = smoke >= 1
    f["b_asthmacopd"] = _bern(rng, lin("b_asthmacopd") + np.log(1.8) * ever_smoked + np.log(1.5) * (smoke >= 2))
    f["b_anycancer"] = _bern(rng, lin("b_anycancer") + np.log(1.3) * ever_smoked)
    f["b_cvd"] = _bern(rng, lin("b_cvd") + np.log(1.8) * (f["b_type2"] or f["b_type1"]) + np.log(1.5) * (smoke >= 2))
    f["b_dementia"] = _bern(rng, lin("b_dementia"))
    f["b_epilepsy2"] = _bern(rng, lin("b_epilepsy2"))
    f["b_parkinsons"] = _bern(rng, lin("b_parkinsons"))
    f["b_liver"] = _bern(rng, lin("b_liver") + np.log(6.0) * (alc >= 4) + np.log(1.5) * (alc == 3))
    f["b_renal"] = _bern(rng, lin("b_renal") + np.log(2.0) * (f["b_type2"] or f["b_type1"]))
    f["b_malabsorption"] = _bern(rng, lin("b_malabsorption"))
    f["b_endocrine"] = _bern(rng, lin("b_endocrine"))
    f["b_ra_sle"] = _bern(rng, lin("b_ra_sle"))
    f["b_carehome"] = _bern(rng, lin("b_carehome") + np.log(8.0) * f["b_dementia"] + np.log(3.0) * f["b_parkinsons"])
    f["b_antidepressant"] = _bern(rng, lin("b_antidepressant") + np.log(1.5) * f["b_dementia"])
    f["b_corticosteroids"] = _bern(rng, lin("b_corticosteroids") + np.log(3.0) * f["b_asthmacopd"]
                                   + np.log(5.0) * f["b_ra_sle"])
    if not male:
        f["b_hrt_oest"] = _bern(rng, _logit(HRT_P_AT_60) + np.log(HRT_OR_DECADE) * (age - 60.0) / 10.0)
    f["fh_osteoporosis"] = _bern(rng, lin("fh_osteoporosis"))
    f["b_falls"] = _bern(rng, lin("b_falls") + np.log(3.0) * f["b_parkinsons"] + np.log(2.5) * f["b_dementia"]
                         + np.log(1.5) * f["b_epilepsy2"] + np.log(1.5) * f["b_antidepressant"])
    f["b_fracture4"] = _bern(rng, lin("b_fracture4") + np.log(2.0) * f["b_falls"] + np.log(1.7) * f["b_corticosteroids"]
                             + np.log(0.85) * (bmi - 27.5) / 5.0 + np.log(1.5) * f["b_ra_sle"])

    # Onset: how long before the index date each true condition began (for Condition.onsetDateTime).
    onset: dict[str, float] = {}
    for b, v in f.items():
        if not v or b in ("b_fracture4", "b_corticosteroids", "b_antidepressant", "b_hrt_oest", "fh_osteoporosis"):
            continue
        if b == "b_type1":
            hi = age - 15.0
        elif b in ("b_carehome", "b_falls"):
            hi = 3.0
        elif b == "b_dementia":
            hi = 8.0
        else:
            hi = min(20.0, age - 35.0)
        onset[b] = float(rng.uniform(0.2, hi))

    fractures: list[tuple[str, float]] = []
    if f["b_fracture4"]:
        n = 1 + int(rng.random() < 0.15)
        for _ in range(n):
            site_ = FRACTURE_SITES[_cat(rng, FRACTURE_SITE_P)]
            fractures.append((site_, float(rng.uniform(0.1, min(15.0, age - 45.0)))))
        fractures.sort(key=lambda x: -x[1])
    return Person(sex=sex, age=age, nhs_ethnic=nhs, ethrisk=eth, height_cm=height, weight_kg=weight, bmi=bmi,
                  smoke_cat=smoke, alcohol_cat6=alc, frailty=frailty, flags=f, onset_years=onset,
                  prior_fractures=fractures)


def qf_inputs(p: Person, age_years: int | None = None) -> dict:
    """QFracture-2012 inputs from the TRUE values (BMI clamped to 20–40, the equation's range; documented).
    ``age_years``: completed years from the charted birth date (defaults to floor(age))."""
    from ..qfracture import clamp_bmi
    ay = p.age_years if age_years is None else age_years
    d = {"age": min(max(ay, 30), 100), "bmi": clamp_bmi(p.bmi), "ethrisk": p.ethrisk,
         "smoke_cat": p.smoke_cat, "alcohol_cat6": p.alcohol_cat6}
    d.update(p.flags)
    return d
