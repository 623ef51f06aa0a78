"""Cox proportional-hazards pieces: the mini-batch partial-likelihood loss (torch), a full-batch ridge Cox fit (numpy +
scipy L-BFGS) used to refit the linear heads on frozen features, and the Breslow baseline cumulative hazard.

Hand-written rather than taken from lifelines/scikit-survival because neither is packaged in Debian (the only Python
this project may use) and the pieces are short: Breslow handling of ties, exact gradient.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

MONTHLY_GRID = np.arange(0, 121) / 12.0          # 0..10 years in months (issue 3, item 2)


def cox_loss(eta: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Breslow partial log-likelihood per event in the batch (0 if the batch has no event)."""
    order = torch.argsort(time, descending=True)
    eta_s, ev_s = eta[order], event[order].float()
    # risk set of the i-th longest time = all with time >= it = prefix of the descending order
    log_risk = torch.logcumsumexp(eta_s, dim=0)
    n_ev = ev_s.sum()
    if n_ev.item() == 0:
        return eta.sum() * 0.0
    return -((eta_s - log_risk) * ev_s).sum() / n_ev


def _risk_set_sums(time: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For times sorted ascending, sum of w over {j: t_j >= t_i}, with ties sharing the value of their first member."""
    rev = np.cumsum(w[::-1])[::-1]
    # ties: use the sum starting at the first index of each tie group
    first = np.searchsorted(time, time, side="left")
    return rev[first], first


def cox_nll(beta: np.ndarray, x: np.ndarray, time: np.ndarray, event: np.ndarray, l2: np.ndarray,
            offset: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean negative Breslow log partial likelihood (per event) + 0.5*sum(l2*beta^2); arrays sorted by time ascending."""
    eta = x @ beta + (offset if offset is not None else 0.0)
    c = eta.max()
    e = np.exp(eta - c)
    s0, first = _risk_set_sums(time, e)
    s1 = np.cumsum((e[:, None] * x)[::-1], axis=0)[::-1][first]
    d = event.astype(bool)
    n_ev = max(int(d.sum()), 1)
    ll = (eta[d] - c - np.log(s0[d])).sum()
    grad = (x[d] - s1[d] / s0[d][:, None]).sum(axis=0)
    return float(-ll / n_ev + 0.5 * np.sum(l2 * beta ** 2)), -grad / n_ev + l2 * beta


def fit_cox(x: np.ndarray, time: np.ndarray, event: np.ndarray, l2: float | np.ndarray = 0.0,
            offset: np.ndarray | None = None, weights_init: np.ndarray | None = None) -> np.ndarray:
    """Ridge Cox regression, full batch. ``l2`` per coefficient (array) or shared (float)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    o = np.argsort(time, kind="stable")
    xs, ts, es = x[o], np.asarray(time, np.float64)[o], np.asarray(event)[o]
    off = None if offset is None else np.asarray(offset, np.float64)[o]
    l2a = np.broadcast_to(np.asarray(l2, dtype=np.float64), (x.shape[1],)).copy()
    b0 = np.zeros(x.shape[1]) if weights_init is None else np.asarray(weights_init, np.float64)
    res = minimize(cox_nll, b0, args=(xs, ts, es, l2a, off), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-7})
    return res.x


def partial_loglik(eta: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Mean Breslow log partial likelihood per event of given linear predictors (used to pick ridge strength)."""
    o = np.argsort(time, kind="stable")
    v, _ = cox_nll(np.zeros(1), np.zeros((len(o), 1)), np.asarray(time)[o], np.asarray(event)[o], np.zeros(1),
                   offset=np.asarray(eta, np.float64)[o])
    return -v


def breslow(eta: np.ndarray, time: np.ndarray, event: np.ndarray, grid: np.ndarray = MONTHLY_GRID) -> np.ndarray:
    """Breslow baseline cumulative hazard H0(t) at the grid times (step function evaluated at each grid point)."""
    o = np.argsort(time, kind="stable")
    t, d, e = np.asarray(time, np.float64)[o], np.asarray(event, bool)[o], np.exp(np.asarray(eta, np.float64)[o])
    s0, _ = _risk_set_sums(t, e)
    inc = np.where(d, 1.0 / s0, 0.0)
    cum = np.cumsum(inc)
    idx = np.searchsorted(t, grid, side="right") - 1
    return np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0)


def cum_hazard_at(h0_grid: np.ndarray, t: np.ndarray | float, grid: np.ndarray = MONTHLY_GRID) -> np.ndarray:
    """Step-function lookup of the baseline cumulative hazard (the value at the last grid point <= t)."""
    idx = np.clip(np.searchsorted(grid, np.asarray(t, np.float64), side="right") - 1, 0, len(grid) - 1)
    return h0_grid[idx]


def risk(eta: np.ndarray, h0_t: np.ndarray | float) -> np.ndarray:
    """Cumulative incidence 1 - exp(-H0(t) exp(eta))."""
    return 1.0 - np.exp(-np.asarray(h0_t) * np.exp(np.asarray(eta)))
