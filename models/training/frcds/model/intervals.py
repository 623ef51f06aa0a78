"""95 % intervals from the ensemble spread (issue 3, item 4).

Per person and outcome the members give log-hazards eta_1..eta_M. The interval on the log-hazard scale is
mean(eta) +/- k * 1.96 * sd(eta) (sample sd, ddof=1), mapped to risk through the monotone
risk(t) = 1 - exp(-H0(t) exp(eta)). Ensemble spread alone measures only epistemic uncertainty, so k is calibrated on
the VALIDATION set so that the TRUE simulated 10-year risk lies inside the interval for 95 % of people; because risk is
monotone in eta, that is the 95th percentile of |eta_true_equiv - mean(eta)| / (1.96 sd), where eta_true_equiv is
the log-hazard that maps to the true risk under the model's baseline.
"""
from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054


def eta_equivalent(true_risk: np.ndarray, h0_tau: float) -> np.ndarray:
    r = np.clip(np.asarray(true_risk, np.float64), 1e-9, 1 - 1e-9)
    return np.log(-np.log1p(-r) / h0_tau)


def calibrate_factor(eta_members: np.ndarray, true_risk: np.ndarray, h0_tau: float, target: float = 0.95) -> float:
    """k such that a fraction ``target`` of the rows have the true risk inside the interval."""
    mean, sd = eta_members.mean(1), np.maximum(eta_members.std(1, ddof=1), 1e-9)
    ratio = np.abs(eta_equivalent(true_risk, h0_tau) - mean) / (Z95 * sd)
    return float(np.quantile(ratio, target))


def interval(eta_members: np.ndarray, k: float, h0_t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point risk, lower, upper) at the time whose baseline cumulative hazard is h0_t."""
    mean, sd = eta_members.mean(1), eta_members.std(1, ddof=1)
    f = lambda e: 1.0 - np.exp(-h0_t * np.exp(e))
    return f(mean), f(mean - k * Z95 * sd), f(mean + k * Z95 * sd)


def coverage(lo: np.ndarray, hi: np.ndarray, true_risk: np.ndarray) -> float:
    return float(np.mean((true_risk >= lo) & (true_risk <= hi)))
