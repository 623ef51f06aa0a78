"""Recalibration of the fitted risk part of hip-xray-v2 on the VALIDATION split's censored outcomes (observables
only): eta' = a_k + b_k * eta per outcome k.

Cox heads fitted on a bootstrap sample of 4,800 patients over-spread the risk on new patients (optimism): their
coefficients are too large in magnitude. The slope b_k maximises the Breslow partial likelihood on validation of the
served predictor, i.e. the log mixture-mean hazard multiplier log(sum_atoms w * exp(b * eta)) with T as served (a
measured DXA replaces the image estimate); partial likelihood does not see a constant, so b alone is fitted there.
b scales every member's base log-hazard (clinical coefficient, residual image weights, centring bias) and its
T-score coefficient gamma, so the exported model computes b * eta itself and the service needs no change.
The intercept a_k (calibration in the large) is fitted after the Breslow baseline has been re-estimated on training
with the scaled predictor: the maximum-likelihood shift of a proportional-hazards model with that baseline shape,
a = log(events / expected cumulative hazard) over validation follow-up up to the baseline grid's end; it multiplies
the baseline by exp(a). The MOF hip floor (per atom max of the two cumulative hazards) is not part of the fit.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from frcds.model.survival import MONTHLY_GRID, cum_hazard_at, partial_loglik

SLOPE_BOUNDS = (0.2, 2.0)


def served_log_multiplier(eta: np.ndarray, weights: np.ndarray, slope: float = 1.0) -> np.ndarray:
    """log sum_a w_a exp(slope * eta_a) per row of eta atoms [N, A] (weights [A], sum 1)."""
    return logsumexp(slope * np.asarray(eta, np.float64), b=np.asarray(weights, np.float64)[None], axis=1)


def fit_slope(eta: np.ndarray, weights: np.ndarray, time: np.ndarray, event: np.ndarray,
              bounds: tuple[float, float] = SLOPE_BOUNDS) -> dict:
    """b maximising the partial likelihood of served_log_multiplier(eta, weights, b) (bounded scalar search);
    also the partial likelihood at b = 1 and at b, per event."""
    event = np.asarray(event, bool)
    if not event.any():
        return {"slope": 1.0, "pl_at_1": float("nan"), "pl": float("nan"), "events": 0}

    def nll(b: float) -> float:
        return -partial_loglik(served_log_multiplier(eta, weights, b), time, event)

    res = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": 1e-5})
    return {"slope": float(res.x), "pl_at_1": -nll(1.0), "pl": -float(res.fun), "events": int(event.sum())}


def fit_intercept(log_mult: np.ndarray, h0_grid: np.ndarray, time: np.ndarray, event: np.ndarray,
                  grid: np.ndarray = MONTHLY_GRID) -> dict:
    """a = log(D / E): D events within the grid, E = sum of H0(min(t, grid end)) * exp(log_mult) (the likelihood
    maximiser of a multiplicative shift of the baseline)."""
    end = float(grid[-1])
    t = np.minimum(np.asarray(time, np.float64), end)
    d = np.asarray(event, bool) & (np.asarray(time, np.float64) <= end)
    expected = float(np.sum(cum_hazard_at(np.asarray(h0_grid, np.float64), t, grid) * np.exp(log_mult)))
    observed = int(d.sum())
    a = float(np.log(observed / expected)) if observed > 0 and expected > 0 else 0.0
    return {"intercept": a, "observed": observed, "expected": expected}


def scale_member_terms(slope: np.ndarray, beta: np.ndarray, gamma: np.ndarray, w: np.ndarray, bias: np.ndarray):
    """Per-outcome slope [2] folded into beta, gamma, bias [M,2] and residual weights w [M,2,C] (new arrays)."""
    s = np.asarray(slope, np.float64)
    return beta * s[None], gamma * s[None], w * s[None, :, None], bias * s[None]
