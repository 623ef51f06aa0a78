"""The service's tier rule (server/risk/decision.ts, server/risk/numbers.ts) in Python, vectorised over patients,
so predictions made outside the service carry the tier a clinician would have seen.

- ``shown_percent``: the percentage as displayed (one decimal below 10 %, none from 10 %, JavaScript rounding
  Math.round = floor(x + 0.5)); tiers compare this number, never the unrounded risk.
- ``probability_above``: P(10-year risk >= threshold) when the cumulative hazard is the largest of log-normal
  components H = h0 * exp(eta + z*s) at every standard-normal quantile z (hip: its own head; MOF: MOF and hip heads),
  with the same erfc approximation as the service so a probability at the decision boundary falls the same side.
- ``tier``: high if an outcome's shown risk is at/above its threshold and (no probability, or probability >= p);
  moderate if at/above a threshold with less certainty, MOF >= the moderate band, or a probability >= 1 - p; else low.
"""
from __future__ import annotations

import numpy as np

#: service defaults (RISK_TIER_HIP_HIGH, RISK_TIER_MOF_HIGH, RISK_TIER_MOF_MODERATE, RISK_DECISION_PROBABILITY)
TIERS = {"hipHigh": 3.0, "mofHigh": 20.0, "mofModerate": 10.0}
DECISION_PROBABILITY = 0.8


def js_round(x: np.ndarray) -> np.ndarray:
    """JavaScript Math.round: halves go up (towards +infinity), unlike numpy's round-half-to-even."""
    return np.floor(np.asarray(x, np.float64) + 0.5)


def shown_percent(fraction: np.ndarray) -> np.ndarray:
    p = np.asarray(fraction, np.float64) * 100.0
    f = np.where(np.abs(p) < 9.95, 10.0, 1.0)
    return js_round(p * f) / f


def normal_upper_tail(x: np.ndarray) -> np.ndarray:
    """P(Z >= x) with the Numerical Recipes erfc the service uses (|error| < 1.2e-7)."""
    x = np.asarray(x, np.float64)
    zz = np.abs(np.where(np.isfinite(x), x, 0.0)) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * zz)
    erfc = t * np.exp(-zz * zz - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    p = np.where(x >= 0, erfc / 2.0, 1.0 - erfc / 2.0)
    return np.where(x == np.inf, 0.0, np.where(x == -np.inf, 1.0, p))


def probability_above(components: list[tuple[float, np.ndarray, np.ndarray]], threshold: float) -> np.ndarray:
    """P(risk >= threshold); ``components`` = [(h0 at 10 y, eta [N], s [N])], risk from the largest hazard."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be a fraction in (0, 1), got {threshold}")
    h_thr = -np.log1p(-threshold)
    # a component without baseline hazard never reaches the threshold: z = +inf (probability 0)
    z_cross = np.full(np.shape(components[0][1]), np.inf)
    for h0, eta, s in components:
        eta, s = np.asarray(eta, np.float64), np.asarray(s, np.float64)
        if not h0 > 0:
            continue
        eta_thr = np.log(h_thr / h0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, (eta_thr - eta) / np.where(s > 0, s, 1.0),
                         np.where(eta >= eta_thr, -np.inf, np.inf))
        z_cross = np.minimum(z_cross, z)
    return normal_upper_tail(z_cross)


def tier(hip_risk: np.ndarray, hip_p: np.ndarray, mof_risk: np.ndarray, mof_p: np.ndarray,
         tiers: dict = TIERS, p_decision: float = DECISION_PROBABILITY) -> np.ndarray:
    """Tier per patient from the shown 10-year risks (fractions) and probabilities above threshold (NaN = no
    interval, e.g. a clinical-only risk)."""
    hs, ms = shown_percent(hip_risk), shown_percent(mof_risk)
    hp, mp = np.asarray(hip_p, np.float64), np.asarray(mof_p, np.float64)
    over_h, over_m = hs >= tiers["hipHigh"], ms >= tiers["mofHigh"]
    sure_h = np.isnan(hp) | (hp >= p_decision)
    sure_m = np.isnan(mp) | (mp >= p_decision)
    likely = (~np.isnan(hp) & (hp >= 1 - p_decision)) | (~np.isnan(mp) & (mp >= 1 - p_decision))
    high = (over_h & sure_h) | (over_m & sure_m)
    moderate = ~high & (over_h | over_m | (ms >= tiers["mofModerate"]) | likely)
    return np.where(high, "high", np.where(moderate, "moderate", "low"))
