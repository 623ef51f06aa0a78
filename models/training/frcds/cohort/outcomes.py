"""Fracture outcomes (truth): proportional hazards on top of QFracture-2012, competing censoring.

The simulated hazard of outcome o ∈ {hip, mof} for person i at time t (years since the index radiograph) is

    h_o(t | i) = c_{o,sex} · h0_{o,sex}(t) · exp(η_o,i)
    η_o,i = a_o,i  −  log(HR_BMD_o) · bmd_resid_z_i  −  log(HR_MICRO) · micro_z_i

- a_o,i: the QFracture-2012 linear predictor computed from the person's TRUE inputs (``qfracture.py``; BMI clamped
  to the equation's 20–40 range, age in completed years).
- BMD effect: HR_BMD per SD LOWER femoral-neck BMD, applied to the BMD residual given the clinical factors
  (``bone.bmd_resid_z``). Marshall, Johnell & Wedel (BMJ 1996;312:1254) report age-adjusted gradients (≈2.6 per SD
  for hip fracture at the femoral neck, ≈1.6 for any fracture); applying them to the residual keeps them additive to
  QFracture's clinical factors, which already carry the part of BMD that age, BMI, glucocorticoids etc. explain.
- Microarchitecture: HR_MICRO per SD lower ``micro_z`` for both outcomes. micro_z correlates 0.4 with the BMD
  residual, so the MARGINAL gradient of the BMD residual is a little steeper (≈ log 2.6 + 0.4·log 1.3 for hip);
  the constants below are the CONDITIONAL hazard ratios, which a Cox fit on (bmd_resid_z, micro_z, a) recovers.
- h0: QFracture-2012's baseline survivor per sex gives the shape: H0(t) = −ln S0(t) at whole years, linear in
  between (piecewise-constant hazard within each year). c_{o,sex} rescales it so the MEAN simulated 10-year risk
  equals the MEAN QFracture-2012 10-year risk in a fixed reference population (``calibration.json``; recomputed
  and checked by the tests). The BMD and microarchitecture terms have mean zero but E[exp(·)] > 1, so without c
  the simulated incidence would exceed QFracture's by ≈60 % for hip.

MOF includes hip. To keep them consistent, hip fractures are simulated from h_hip and "other major" fractures
(wrist, spine, shoulder) from h_other = max(h_mof − h_hip, 0) (per year interval); the first MOF is
min(T_hip, T_other). So every hip fracture is also a MOF event, and the MOF hazard is max(h_mof, h_hip): h_mof
for most people, h_hip where that is higher — old people with very low BMD (the hip BMD gradient is steeper) and
some very old men for whom QFracture-2012 itself predicts hip > MOF (≈5 % of site-A patients, ≈9 % of the total
MOF hazard; the calibration of c_mof includes the floor). ``mof_floor_years`` in the truth counts the years
in which the floor bites.

Censoring (independent of fracture given covariates): death with a Gompertz hazard (ONS England life tables
2017–19: annual mortality ≈1.4 % (women) / 2.1 % (men) at 70, doubling every ≈7.3 years; comorbidity hazard
ratios below), loss to follow-up 2 %/year, administrative censoring at 10 years (or at the data cut-off for the
demo cohort). Fracture does not change the death hazard here (we stop at the first event of each outcome).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import qfracture
from .bone import BoneState
from .population import Person, qf_inputs


@dataclass(frozen=True)
class TrueEffects:
    """FIXED before any model was trained; never tune these to flatter a model."""
    hr_bmd_hip: float = 2.6    # per SD lower femoral-neck BMD (residual given clinical factors), hip fracture
    hr_bmd_mof: float = 1.6    # same, major osteoporotic fracture
    hr_micro: float = 1.3      # per SD lower microarchitecture score, both outcomes


TRUE_EFFECTS = TrueEffects()
HORIZON_YEARS = 10
LTFU_RATE = 0.02                                   # loss to follow-up per year
GOMPERTZ_B = 0.095                                 # ln 2 / 7.3 y
GOMPERTZ_A70 = {"female": 0.014, "male": 0.021}    # annual mortality hazard at age 70
DEATH_HR = {"b_dementia": 2.0, "b_anycancer": 1.6, "b_carehome": 2.0, "b_cvd": 1.4, "b_renal": 2.0,
            "b_liver": 2.0, "b_type1": 1.5, "b_type2": 1.3, "b_asthmacopd": 1.4, "b_parkinsons": 1.6}
DEATH_HR_FRAILTY = 1.3                             # per SD of latent frailty
CALIBRATION_PATH = Path(__file__).resolve().parent / "calibration.json"
CALIBRATION_N = 20000
CALIBRATION_SEED = 20121


def baseline_cumhaz(outcome: str, sex: str) -> np.ndarray:
    """QFracture-2012 baseline cumulative hazard H0(t), t = 0..HORIZON_YEARS (H0(0) = 0)."""
    return -np.log(qfracture.survivor(outcome, sex)[: HORIZON_YEARS + 1])


@dataclass(frozen=True)
class Predictors:
    qf_lp_hip: float      # QFracture-2012 linear predictor from TRUE inputs
    qf_lp_mof: float
    true_lp_hip: float    # full simulated log-hazard (QFracture + BMD + microarchitecture)
    true_lp_mof: float


def predictors(p: Person, b: BoneState, eff: TrueEffects = TRUE_EFFECTS, age_years: int | None = None) -> Predictors:
    x = qf_inputs(p, age_years)
    a_hip = qfracture.linear_predictor("hip", p.sex, x)
    a_mof = qfracture.linear_predictor("mof", p.sex, x)
    micro = -math.log(eff.hr_micro) * b.micro_z
    return Predictors(
        qf_lp_hip=a_hip, qf_lp_mof=a_mof,
        true_lp_hip=a_hip - math.log(eff.hr_bmd_hip) * b.bmd_resid_z + micro,
        true_lp_mof=a_mof - math.log(eff.hr_bmd_mof) * b.bmd_resid_z + micro,
    )


def cumhaz_grids(lp_hip: float, lp_mof: float, sex: str, calib: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Cumulative hazards at t = 0..10 of hip fracture and of 'other major' fracture (MOF minus hip)."""
    h_hip = calib[f"hip_{sex}"] * baseline_cumhaz("hip", sex) * math.exp(lp_hip)
    h_mof = calib[f"mof_{sex}"] * baseline_cumhaz("mof", sex) * math.exp(lp_mof)
    d_hip, d_mof = np.diff(h_hip), np.diff(h_mof)
    d_oth = np.maximum(d_mof - d_hip, 0.0)
    floor_years = int(np.sum(d_mof < d_hip))
    return h_hip, np.concatenate([[0.0], np.cumsum(d_oth)]), floor_years


def invert_cumhaz(grid: np.ndarray, e: float) -> float:
    """Time at which the piecewise-linear cumulative hazard reaches e (inf if beyond the horizon)."""
    if e >= grid[-1]:
        return math.inf
    k = int(np.searchsorted(grid, e, side="right"))      # grid[k-1] <= e < grid[k]
    lo, hi = grid[k - 1], grid[k]
    return (k - 1) + (e - lo) / (hi - lo)


def death_time(p: Person, e: float) -> float:
    lin = sum(math.log(hr) for k, hr in DEATH_HR.items() if p.flags[k]) + math.log(DEATH_HR_FRAILTY) * p.frailty
    lam = GOMPERTZ_A70[p.sex] * math.exp(GOMPERTZ_B * (p.age - 70.0) + lin)
    return math.log1p(GOMPERTZ_B * e / lam) / GOMPERTZ_B


@dataclass(frozen=True)
class Outcome:
    predictors: Predictors
    true_risk_hip: list[float]     # 1..10 y, fraction (not %)
    true_risk_mof: list[float]
    t_hip: float                   # latent event times (inf = none within 10 y)
    t_mof: float
    t_death: float
    t_ltfu: float
    t_admin: float
    time_hip: float                # observed: min(event, censoring)
    event_hip: int
    time_mof: float
    event_mof: int
    censor_reason: str             # for the MOF follow-up: 'event' | 'death' | 'ltfu' | 'admin'
    mof_floor_years: int
    cumhaz_hip_at_time: float      # Λ_i(time_hip): sums to the expected event count (martingale check)
    cumhaz_mof_at_time: float


def _cumhaz_at(grid: np.ndarray, t: float) -> float:
    t = min(t, float(HORIZON_YEARS))
    k = min(int(math.floor(t)), HORIZON_YEARS - 1)
    return float(grid[k] + (t - k) * (grid[k + 1] - grid[k]))


def simulate(p: Person, b: BoneState, rng: np.random.Generator, calib: dict | None = None,
             admin_years: float = float(HORIZON_YEARS), age_years: int | None = None,
             extra_lp: tuple[float, float] = (0.0, 0.0)) -> Outcome:
    """``extra_lp`` (hip, MOF) adds fixed log hazard ratios to the true linear predictors (the CT cohort's prevalent
    vertebral fracture, :mod:`frcds.ct.outcomes`); (0, 0) leaves the hip cohort's outcomes unchanged."""
    calib = calib or calibration()
    pr = predictors(p, b, age_years=age_years)
    if extra_lp != (0.0, 0.0):
        pr = Predictors(pr.qf_lp_hip, pr.qf_lp_mof, pr.true_lp_hip + extra_lp[0], pr.true_lp_mof + extra_lp[1])
    g_hip, g_oth, floor_years = cumhaz_grids(pr.true_lp_hip, pr.true_lp_mof, p.sex, calib)
    g_mof = g_hip + g_oth
    e_hip, e_oth, e_death, e_ltfu = (float(x) for x in rng.exponential(size=4))
    t_hip = invert_cumhaz(g_hip, e_hip)
    t_mof = min(t_hip, invert_cumhaz(g_oth, e_oth))
    t_death = death_time(p, e_death)
    t_ltfu = e_ltfu / LTFU_RATE
    t_admin = float(min(admin_years, HORIZON_YEARS))
    c = min(t_death, t_ltfu, t_admin)
    time_hip, ev_hip = (t_hip, 1) if t_hip <= c else (c, 0)
    time_mof, ev_mof = (t_mof, 1) if t_mof <= c else (c, 0)
    reason = "event" if ev_mof else ("death" if c == t_death else ("ltfu" if c == t_ltfu else "admin"))
    return Outcome(
        predictors=pr,
        true_risk_hip=[float(x) for x in -np.expm1(-g_hip[1:])],
        true_risk_mof=[float(x) for x in -np.expm1(-g_mof[1:])],
        t_hip=t_hip, t_mof=t_mof, t_death=t_death, t_ltfu=t_ltfu, t_admin=t_admin,
        time_hip=float(time_hip), event_hip=ev_hip, time_mof=float(time_mof), event_mof=ev_mof,
        censor_reason=reason, mof_floor_years=floor_years,
        cumhaz_hip_at_time=_cumhaz_at(g_hip, time_hip), cumhaz_mof_at_time=_cumhaz_at(g_mof, time_mof),
    )


# --- calibration of the baseline constants c_{o,sex} ------------------------------------------------------------

def compute_calibration(n: int = CALIBRATION_N, seed: int = CALIBRATION_SEED, site: str = "A") -> dict:
    """Solves c_{o,sex} so that mean simulated 10-y risk = mean QFracture-2012 10-y risk (truth inputs) in a
    reference population of ``n`` site-``site`` persons drawn with the cohort's own per-patient streams."""
    from scipy.optimize import brentq

    from .streams import patient_streams
    from .bone import sample_bone
    from .population import sample_person

    rows = {"female": [], "male": []}
    for i in range(n):
        st = patient_streams(seed, site, i)
        p = sample_person(st.population, site)
        b = sample_bone(p, st.bone)
        rows[p.sex].append(predictors(p, b))
    out: dict = {"_about": "Baseline-hazard multipliers c_{outcome,sex}; see outcomes.py. Regenerate with "
                           "`sh models/training/run -m frcds.cohort.outcomes --calibrate`.",
                 "n": n, "seed": seed, "site": site, "effects": TRUE_EFFECTS.__dict__}
    for sex, prs in rows.items():
        qf_hip = np.array([p.qf_lp_hip for p in prs]); qf_mof = np.array([p.qf_lp_mof for p in prs])
        lp_hip = np.array([p.true_lp_hip for p in prs]); lp_mof = np.array([p.true_lp_mof for p in prs])
        target_hip = float(np.mean(qfracture.risk_from_lp(qf_hip, "hip", sex))) / 100.0
        target_mof = float(np.mean(qfracture.risk_from_lp(qf_mof, "mof", sex))) / 100.0
        h0_hip, h0_mof = baseline_cumhaz("hip", sex), baseline_cumhaz("mof", sex)
        e_hip, e_mof = np.exp(lp_hip), np.exp(lp_mof)

        def mean_hip(c: float) -> float:
            return float(np.mean(-np.expm1(-c * h0_hip[-1] * e_hip)))

        c_hip = brentq(lambda c: mean_hip(c) - target_hip, 1e-3, 100.0, xtol=1e-12)
        d_hip = c_hip * np.outer(e_hip, np.diff(h0_hip))

        def mean_mof(c: float) -> float:
            d_mof = c * np.outer(e_mof, np.diff(h0_mof))
            return float(np.mean(-np.expm1(-np.maximum(d_mof, d_hip).sum(axis=1))))

        c_mof = brentq(lambda c: mean_mof(c) - target_mof, 1e-3, 100.0, xtol=1e-12)
        out[f"hip_{sex}"] = c_hip
        out[f"mof_{sex}"] = c_mof
        out[f"target_risk10_hip_{sex}"] = target_hip
        out[f"target_risk10_mof_{sex}"] = target_mof
        out[f"n_{sex}"] = len(prs)
    return out


@lru_cache(maxsize=1)
def calibration() -> dict:
    with open(CALIBRATION_PATH, encoding="utf-8") as f:
        return json.load(f)


def write_calibration(path: Path = CALIBRATION_PATH) -> dict:
    cal = compute_calibration()
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cal, f, indent=2, sort_keys=True)
        f.write("\n")
    return cal


if __name__ == "__main__":
    import sys
    if "--calibrate" in sys.argv:
        print(json.dumps(write_calibration(), indent=2, sort_keys=True))
    else:
        print("usage: python -m frcds.cohort.outcomes --calibrate")
