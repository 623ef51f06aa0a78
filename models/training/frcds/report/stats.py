"""The report's metrics, each a small function of arrays so it can be checked on hand-computable cases.

Harrell's C, Kaplan-Meier and the AUROC come from the training package (frcds.model.metrics, frcds.model.ood: the
same estimators v1 was evaluated with); what v2's targets add is here:

- KM-decile calibration: patients sorted by predicted 10-year risk and cut into ten equal groups; in each, the mean
  predicted risk and the Kaplan-Meier cumulative incidence at 10 y; the calibration slope is the ordinary
  least-squares slope of observed on predicted over the groups (1 = predictions move exactly with the observed).
- Interval score (Gneiting & Raftery 2007, JASA 102:359, eq. 43) of a central (1 - alpha) interval [l, u] for the
  value x: (u - l) + (2/alpha)(l - x)[x < l] + (2/alpha)(x - u)[x > u]; lower is better.
- Brier score and reliability table of a probability against a 0/1 outcome.
- Percentile bootstrap with a seeded generator: a statistic of one or more index sets resampled with replacement.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from frcds.model.metrics import calibration_deciles, harrell_c, km
from frcds.model.ood import auroc

__all__ = ["harrell_c", "km", "auroc", "km_decile_calibration", "top_decile", "interval_score", "coverage",
           "pearson", "brier", "reliability", "bootstrap", "percentile_ci", "events_by"]

TAU = 10.0


def km_decile_calibration(time, event, pred, tau: float = TAU, groups: int = 10) -> dict:
    """Groups of predicted risk vs KM observed at tau; OLS slope and intercept of observed on predicted."""
    table = calibration_deciles(np.asarray(time, np.float64), np.asarray(event, bool), np.asarray(pred, np.float64),
                                tau, groups)
    x = np.array([g["predicted"] for g in table])
    y = np.array([g["observed_km"] for g in table])
    if np.ptp(x) == 0:
        return {"table": table, "slope": float("nan"), "intercept": float("nan")}
    slope, intercept = np.polyfit(x, y, 1)
    return {"table": table, "slope": float(slope), "intercept": float(intercept)}


def top_decile(time, event, pred, tau: float = TAU, truth=None) -> dict:
    """Highest tenth of predicted risk (the last of calibration_deciles' groups): mean predicted, KM observed at tau,
    relative difference (pred - obs) / obs, and with ``truth`` the group's mean of it."""
    pred = np.asarray(pred, np.float64)
    g = calibration_deciles(np.asarray(time, np.float64), np.asarray(event, bool), pred, tau, 10)[-1]
    obs, prd = g["observed_km"], g["predicted"]
    out = {"n": g["n"], "predicted": prd, "observed_km": obs,
           "relative_difference": (prd - obs) / obs if obs > 0 else float("nan")}
    if truth is not None:
        top = np.array_split(np.argsort(pred, kind="stable"), 10)[-1]
        out["true"] = float(np.mean(np.asarray(truth, np.float64)[top]))
    return out


def interval_score(lo, hi, x, alpha: float = 0.05) -> np.ndarray:
    """Per-row interval score of the central (1 - alpha) interval [lo, hi] for the true value x."""
    lo, hi, x = (np.asarray(v, np.float64) for v in (lo, hi, x))
    return (hi - lo) + (2.0 / alpha) * np.maximum(lo - x, 0.0) + (2.0 / alpha) * np.maximum(x - hi, 0.0)


def coverage(lo, hi, x) -> float:
    lo, hi, x = (np.asarray(v, np.float64) for v in (lo, hi, x))
    return float(np.mean((x >= lo) & (x <= hi)))


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc ** 2).sum() * (yc ** 2).sum())
    return float((xc * yc).sum() / den) if den > 0 else float("nan")


def brier(p, y) -> float:
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    return float(np.mean((p - y) ** 2))


def reliability(p, y, bins: int = 10) -> list[dict]:
    """Equal-width bins of p on [0, 1] (last bin closed): n, mean p, observed fraction of y; empty bins omitted."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    b = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for k in range(bins):
        s = b == k
        if s.any():
            out.append({"bin": [k / bins, (k + 1) / bins], "n": int(s.sum()), "mean_p": float(p[s].mean()),
                        "observed": float(y[s].mean())})
    return out


def events_by(time, event, tau: float = TAU) -> int:
    """Events at or before tau."""
    return int((np.asarray(event, bool) & (np.asarray(time, np.float64) <= tau)).sum())


def percentile_ci(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    a = (1.0 - level) / 2.0
    return [float(np.quantile(v, a)), float(np.quantile(v, 1.0 - a))]


def bootstrap(stat: Callable[..., float], sizes: tuple[int, ...], n_boot: int, seed: int) -> np.ndarray:
    """``stat(idx_1, ..., idx_k)`` on ``n_boot`` resamples: each index set drawn with replacement from range(size_j)
    independently (several sets = several samples, e.g. site A and site B). Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        out[b] = stat(*(rng.integers(0, n, n) for n in sizes))
    return out
