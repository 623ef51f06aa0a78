"""The v2 risk computation the service mirrors (v2 contract): per member m a calibrated Normal T-score predictive,
probabilists' Gauss-Hermite nodes x_j with weights w_j (sum 1), atoms T_mj = mean_m + sd_m * x_j with weight
w_j / M; eta_mkj = base_mk + gamma_mk * T_mj; H_k = H0_k(t) * exp(eta); MOF includes hip, so at every atom
H_mof = max(H_mof, H_hip) (server/risk/survival.ts, "Composite outcomes"), which makes every MOF quantile >= the hip
quantile. Point risk = weighted mean of the atom risks (the predictive probability of a fracture by t). Interval and
P(risk10 >= threshold) come from the EXACT mixture CDF, as server/risk/mediated.ts computes them: within a member
the cumulative hazard is monotone in T, so P(H >= h) is a normal tail per member (the union of two half-lines for
MOF with its hip floor), and each percentile is found by bisection on log H. No random numbers.

Also the tier rule of server/risk/decision.ts on the shown (rounded) percentages, for the predictions' 'tier' column.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

THRESHOLDS = {"hip": 0.03, "mof": 0.20}
MOF_MODERATE = 0.10
DECISION_PROBABILITY = 0.8


def gh(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum 1 (expectations under N(0,1))."""
    x, w = hermegauss(n)
    return x, w / w.sum()


def calibrate(raw_mean: np.ndarray, raw_sd: np.ndarray, cal: dict) -> tuple[np.ndarray, np.ndarray]:
    return cal["intercept"] + cal["slope"] * raw_mean, cal["sd_scale"] * raw_sd


def atoms(mean: np.ndarray, sd: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """T atoms [N, M*J] and their weights [M*J] from per-member means/sds [N, M]."""
    x, w = gh(n_nodes)
    n, m = mean.shape
    t = (mean[:, :, None] + sd[:, :, None] * x[None, None]).reshape(n, m * len(x))
    return t, np.tile(w, m) / m


def mixture_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Row-wise weighted quantile (left-continuous inverse CDF) of values [N, A] with shared weights [A]."""
    o = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, o, axis=1)
    cw = np.cumsum(weights[o], axis=1)
    k = np.argmax(cw >= q - 1e-12, axis=1)
    return v[np.arange(len(v)), k]


def normal_mixture_quantile(mean: np.ndarray, sd: np.ndarray, q: float, iters: int = 60) -> np.ndarray:
    """Quantile of the equal-weight mixture of Normal(mean_m, sd_m) per row (bisection on the mixture CDF)."""
    from scipy.special import ndtr
    lo = (mean - 8 * sd).min(1)
    hi = (mean + 8 * sd).max(1)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        c = ndtr((mid[:, None] - mean) / sd).mean(1)
        lo, hi = np.where(c < q, mid, lo), np.where(c < q, hi, mid)
    return 0.5 * (lo + hi)


def member_atoms(base: np.ndarray, gamma: np.ndarray, t_mean: np.ndarray, t_sd: np.ndarray, n_nodes: int):
    """eta atoms [N, 2, M*J] and weights [M*J]: base [N,M,2], gamma [M,2], calibrated T mean/sd [N,M]."""
    x, w = gh(n_nodes)
    t = t_mean[:, :, None] + t_sd[:, :, None] * x[None, None]                    # [N,M,J]
    eta = base[:, :, :, None] + gamma[None, :, :, None] * t[:, :, None, :]       # [N,M,2,J]
    n, m = t_mean.shape
    eta = eta.transpose(0, 2, 1, 3).reshape(n, 2, m * len(x))
    return eta, np.tile(w, m) / m


def atom_cumhaz(eta: np.ndarray, h0_hip: np.ndarray | float, h0_mof: np.ndarray | float) -> np.ndarray:
    """Cumulative hazards [N,2,A] at one time (h0 scalars) with the composite MOF >= hip rule per atom."""
    h_hip = np.asarray(h0_hip) * np.exp(eta[:, 0])
    h_mof = np.maximum(np.asarray(h0_mof) * np.exp(eta[:, 1]), h_hip)
    return np.stack([h_hip, h_mof], axis=1)


def _tail(log_h: np.ndarray, heads: list[tuple[float, np.ndarray, np.ndarray]], t_mean: np.ndarray,
          t_sd: np.ndarray) -> np.ndarray:
    """P(log H >= log_h [N]) under the mixture; heads = [(H0, base [N,M], gamma [M])] (own head, then floors);
    T ~ N(t_mean, t_sd) per member [N,M] (mediated.ts #tail)."""
    from scipy.special import ndtr
    n, m = t_mean.shape
    le, ge = np.full((n, m), -np.inf), np.full((n, m), np.inf)
    every = np.zeros((n, m), bool)
    for h0, base, gamma in heads:
        if not h0 > 0:
            continue
        c = log_h[:, None] - np.log(h0) - base
        g = np.broadcast_to(gamma[None, :], c.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c / g
        le = np.where(g < 0, np.maximum(le, r), le)
        ge = np.where(g > 0, np.minimum(ge, r), ge)
        every |= (g == 0) & (c <= 0)

    def below(t):
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(t_sd > 0, ndtr((t - t_mean) / np.where(t_sd > 0, t_sd, 1.0)), (t_mean <= t).astype(float))
        return np.where(t == -np.inf, 0.0, np.where(t == np.inf, 1.0, z))

    p = np.where(every | (le >= ge), 1.0, below(le) + 1.0 - below(ge))
    return np.clip(p.mean(1), 0.0, 1.0)


def _quantile(heads, t_mean, t_sd, q: float) -> np.ndarray:
    """q-quantile of the risk: the smallest log H with CDF >= q, bisection to 1e-9 (mediated.ts #quantile)."""
    lo = np.full(len(t_mean), np.inf)
    hi = np.full(len(t_mean), -np.inf)
    for h0, base, gamma in heads:
        if not h0 > 0:
            continue
        for sign in (-9.0, 9.0):
            x = np.log(h0) + base + gamma[None] * (t_mean + sign * t_sd)
            lo, hi = np.minimum(lo, x.min(1)), np.maximum(hi, x.max(1))
    lo, hi = lo - 1e-9, hi + 1e-9
    while (hi - lo).max() > 1e-9:
        mid = 0.5 * (lo + hi)
        ok = 1.0 - _tail(mid, heads, t_mean, t_sd) >= q
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return -np.expm1(-np.exp(0.5 * (lo + hi)))


def summarise(eta: np.ndarray, weights: np.ndarray, h0_10: dict[str, float], base: np.ndarray | None = None,
              gamma: np.ndarray | None = None, t_mean: np.ndarray | None = None,
              t_sd: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per outcome at 10 years: point (Gauss-Hermite mixture mean of the risk), lo/hi (2.5/97.5 percentiles) and
    pthr from the exact mixture CDF when base [N,M,2], gamma [M,2] and the T distribution [N,M] are given (else from
    the atoms, left-continuous), and the log-hazard mean and sd over the atoms."""
    h = atom_cumhaz(eta, h0_10["hip"], h0_10["mof"])
    risk = -np.expm1(-h)
    out = {}
    for k, o in enumerate(("hip", "mof")):
        r = risk[:, k]
        em = (eta[:, k] * weights).sum(1)
        es = np.sqrt(np.maximum(((eta[:, k] - em[:, None]) ** 2 * weights).sum(1), 0.0))
        thr = THRESHOLDS[o]
        if base is not None:
            heads = [(h0_10[o], base[:, :, k], gamma[:, k])]
            if o == "mof":
                heads.append((h0_10["hip"], base[:, :, 0], gamma[:, 0]))
            lo, hi = _quantile(heads, t_mean, t_sd, 0.025), _quantile(heads, t_mean, t_sd, 0.975)
            pthr = _tail(np.full(len(r), np.log(-np.log1p(-thr))), heads, t_mean, t_sd)
        else:
            lo, hi = mixture_quantile(r, weights, 0.025), mixture_quantile(r, weights, 0.975)
            pthr = (weights * (r >= thr)).sum(1)
        out[o] = {"pred": (r * weights).sum(1), "lo": lo, "hi": hi, "pthr": pthr, "eta_mean": em, "eta_sd": es,
                  "cumhaz_mean": (h[:, k] * weights).sum(1)}
    return out


def risk_summary(base: np.ndarray, gamma: np.ndarray, t_mean: np.ndarray, t_sd: np.ndarray, n_nodes: int,
                 h0_10: dict[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """The served numbers for base [N,M,2], gamma [M,2] and per-member T distributions [N,M] (exact CDF)."""
    eta, w = member_atoms(base, gamma, t_mean, t_sd, n_nodes)
    return summarise(eta, w, h0_10, base, gamma, t_mean, t_sd)


def shown_percent(fraction: np.ndarray) -> np.ndarray:
    """numbers.ts shownPercent: one decimal below 9.95 %, whole percent from there."""
    p = np.asarray(fraction, np.float64) * 100.0
    d = np.where(np.abs(p) < 9.95, 10.0, 1.0)
    return np.floor(p * d + 0.5) / d


def tier(pred_hip, pthr_hip, pred_mof, pthr_mof) -> np.ndarray:
    """server/risk/decision.ts tierOf with the default settings (hip 3 %, MOF 20 %, MOF moderate 10 %, p 0.8)."""
    sh, sm = shown_percent(pred_hip), shown_percent(pred_mof)
    over_h, over_m = sh >= 100 * THRESHOLDS["hip"], sm >= 100 * THRESHOLDS["mof"]
    high = (over_h & (pthr_hip >= DECISION_PROBABILITY)) | (over_m & (pthr_mof >= DECISION_PROBABILITY))
    moderate = over_h | over_m | (sm >= 100 * MOF_MODERATE) | (pthr_hip >= 1 - DECISION_PROBABILITY) | \
        (pthr_mof >= 1 - DECISION_PROBABILITY)
    return np.where(high, "high", np.where(moderate, "moderate", "low"))
