"""Mahalanobis out-of-distribution distance on pooled penultimate features (Lee et al. 2018), with a Ledoit-Wolf
shrunk covariance because the concatenated features of all members (M*C dims) are many relative to the training set.
Hand-written: scikit-learn is not packaged for this project; the Ledoit-Wolf formula is a few lines."""
from __future__ import annotations

import numpy as np


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance (1-a) S + a mu I with the Ledoit-Wolf (2004) optimal a; returns (cov, a)."""
    n, p = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    delta = np.sum((s - mu * np.eye(p)) ** 2) / p
    beta_bar = _beta_bar(xc, s) / p
    beta = min(beta_bar, delta)
    a = beta / delta if delta > 0 else 1.0
    return (1 - a) * s + a * mu * np.eye(p), float(a)


def _beta_bar(xc: np.ndarray, s: np.ndarray) -> float:
    # sum_k ||x_k x_k^T - S||_F^2 / n^2 = (sum_k ||x_k||^4 - n ||S||_F^2) / n^2, expanded without forming outer products
    n = xc.shape[0]
    sq = np.sum(xc ** 2, axis=1)
    return float((np.sum(sq ** 2) - n * np.sum(s ** 2)) / (n * n))


def fit(features: np.ndarray) -> dict:
    """Training mean and precision of features [N, D]. The shrinkage works on standardised features (so the
    identity target suits dimensions of different scales); the precision is mapped back to the original units."""
    mu, sd = features.mean(0), features.std(0) + 1e-8
    cov, a = ledoit_wolf((features - mu) / sd)
    prec = np.linalg.inv(cov) / sd[:, None] / sd[None, :]
    return {"mean": mu, "precision": (prec + prec.T) / 2, "shrinkage": a}


def distance(features: np.ndarray, stats: dict) -> np.ndarray:
    d = features - stats["mean"]
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, stats["precision"], d), 0.0))


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie): higher distance should mean out-of-distribution."""
    neg = np.sort(np.asarray(neg, np.float64))
    lo = np.searchsorted(neg, pos, side="left")
    hi = np.searchsorted(neg, pos, side="right")
    return float(np.mean((lo + 0.5 * (hi - lo)) / len(neg)))
