"""The v2 risk computation the service mirrors (v2 contract): per member m a calibrated Normal T-score predictive,
probabilists' Gauss-Hermite nodes x_j with weights w_j (sum 1), atoms T_mj = mean_m + sd_m * x_j with weight
w_j / M; eta_mkj = base_mk + gamma_mk * T_mj; H_k = H0_k(t) * exp(eta); MOF includes hip, so at every atom
H_mof = max(H_mof, H_hip) (server/risk/survival.ts, "Composite outcomes"), which makes every MOF quantile >= the hip
quantile. Point risk = weighted mean of the atom risks (the predictive probability of a fracture by t). Interval and
P(risk10 >= threshold) come from the EXACT mixture CDF, as server/risk/mediated.ts computes them: within a member
the cumulative hazard is monotone in T, so P(H >= h) is a normal tail per member (the union of two half-lines for
MOF with its hip floor), and each percentile is found by bisection on log H. No random numbers.

Unmeasured determinants (keyword ``sigma_u``, the manifest's uncertainty.unmeasured_log_hazard_sd; 0 = none, every
number exactly as without it): a person's hazard also depends on what neither the chart, the DXA nor the model
measures (bone quality beyond BMD, chart errors). One log-hazard offset u ~ N(-sigma_u^2/2, sigma_u), independent of
T, is shared by all heads and members: eta_mk(T, u) = base_mk + gamma_mk * T + u. Centred so E exp(u) = 1: the mean
hazard is unchanged and the Breslow baselines stay valid. The atoms add u's Gauss-Hermite nodes (same count) to the
T nodes (MOF floor per atom, u shared, so MOF >= hip holds per atom); the tail stays exact: per member each head's
log H is normal (mean log H0 + base + gamma * mean_m - sigma_u^2/2, variance gamma^2 sd_m^2 + sigma_u^2), one head's
tail is a normal tail, MOF's with its hip floor P(hip) + max(0, P(MOF head) - P(both)) with P(both) a bivariate
normal probability (mediated.ts bivariateUpperTail, the same method).

Also the tier rule of server/risk/decision.ts on the shown (rounded) percentages, for the predictions' 'tier' column.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

THRESHOLDS = {"hip": 0.03, "mof": 0.20}
MOF_MODERATE = 0.10
ROWS_PER_BLOCK = 1000
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


def member_atoms(base: np.ndarray, gamma: np.ndarray, t_mean: np.ndarray, t_sd: np.ndarray, n_nodes: int,
                 sigma_u: float = 0.0):
    """eta atoms [N, 2, M*J] and weights [M*J]: base [N,M,2], gamma [M,2], calibrated T mean/sd [N,M]. With
    sigma_u > 0 every (member, T node) atom is split over u's nodes u_i = -sigma_u^2/2 + sigma_u * x_i (weights
    w_j * w_i / M, order member, T node, u node): [N, 2, M*J*J]."""
    x, w = gh(n_nodes)
    t = t_mean[:, :, None] + t_sd[:, :, None] * x[None, None]                    # [N,M,J]
    eta = base[:, :, :, None] + gamma[None, :, :, None] * t[:, :, None, :]       # [N,M,2,J]
    n, m = t_mean.shape
    eta = eta.transpose(0, 2, 1, 3).reshape(n, 2, m * len(x))
    weights = np.tile(w, m) / m
    if sigma_u > 0:
        u = -0.5 * sigma_u ** 2 + sigma_u * x
        eta = (eta[:, :, :, None] + u[None, None, None, :]).reshape(n, 2, m * len(x) * len(x))
        weights = (weights[:, None] * w[None, :]).reshape(-1)
    return eta, weights


def atom_cumhaz(eta: np.ndarray, h0_hip: np.ndarray | float, h0_mof: np.ndarray | float) -> np.ndarray:
    """Cumulative hazards [N,2,A] at one time (h0 scalars) with the composite MOF >= hip rule per atom."""
    h_hip = np.asarray(h0_hip) * np.exp(eta[:, 0])
    h_mof = np.maximum(np.asarray(h0_mof) * np.exp(eta[:, 1]), h_hip)
    return np.stack([h_hip, h_mof], axis=1)


_GL: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _GL:
        _GL[n] = np.polynomial.legendre.leggauss(n)
    return _GL[n]


def bvn_upper(h: np.ndarray, k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(X > h, Y > k) for a standard bivariate normal with correlation r (elementwise, finite h and k): Drezner &
    Wesolowsky (1990) with Genz's double-precision changes (Genz 2004, Stat Comput 14:251-260), as
    server/risk/mediated.ts bivariateUpperTail: |r| < 0.925 by Gauss-Legendre (6/12/20 nodes) over the correlation
    from 0 to r; above, from the perfectly correlated limit (leading terms closed form, remainder 20 nodes)."""
    from scipy.special import ndtr
    h, k, r = np.broadcast_arrays(np.asarray(h, np.float64), np.asarray(k, np.float64),
                                  np.clip(np.asarray(r, np.float64), -1.0, 1.0))
    out = np.empty(h.shape)
    ar = np.abs(r)
    for n, sel in ((6, ar < 0.3), (12, (ar >= 0.3) & (ar < 0.75)), (20, (ar >= 0.75) & (ar < 0.925))):
        if not sel.any():
            continue
        x, w = _legendre(n)
        hh, kk, rr = h[sel], k[sel], r[sel]
        asr = np.arcsin(rr)
        sn = np.sin(asr[:, None] * (x[None] + 1) / 2)
        f = np.exp((sn * (hh * kk)[:, None] - ((hh * hh + kk * kk) / 2)[:, None]) / (1 - sn * sn))
        out[sel] = (f * w).sum(1) * asr / (4 * np.pi) + ndtr(-hh) * ndtr(-kk)
    sel = ar >= 0.925
    if sel.any():
        hh, rr = h[sel], r[sel]
        kk = np.where(rr < 0, -k[sel], k[sel])
        hk = hh * kk
        integral = np.zeros(hh.shape)
        part = np.abs(rr) < 1
        if part.any():
            h1, k1, r1, hk1 = hh[part], kk[part], rr[part], hk[part]
            as_ = (1 - r1) * (1 + r1)
            a = np.sqrt(as_)
            bs = (h1 - k1) ** 2
            c = (4 - hk1) / 8
            d = (12 - hk1) / 16
            e0 = -(bs / as_ + hk1) / 2
            with np.errstate(over="ignore", under="ignore"):
                i1 = np.where(e0 > -100, a * np.exp(np.minimum(e0, 0.0)) *
                              (1 - c * (bs - as_) * (1 - d * bs / 5) / 3 + c * d * as_ * as_ / 5), 0.0)
                b = np.sqrt(bs)
                i1 = i1 - np.where(hk1 > -100, np.exp(-np.maximum(hk1, -100) / 2) * np.sqrt(2 * np.pi) * ndtr(-b / a) * b *
                                   (1 - c * bs * (1 - d * bs / 5) / 3), 0.0)
                x, w = _legendre(20)
                xs = (a[:, None] * (1 + x[None]) / 2) ** 2
                e = -(bs[:, None] / xs + hk1[:, None]) / 2
                rs = np.sqrt(1 - xs)
                ep = np.exp(-hk1[:, None] * (1 - rs) / (2 * (1 + rs))) / rs
                term = np.where(e > -100, np.exp(np.minimum(e, 0.0)) * (ep - (1 + c[:, None] * xs * (1 + d[:, None] * xs))), 0.0)
            i1 = i1 + (a / 2) * (term * w).sum(1)
            integral[part] = -i1 / (2 * np.pi)
        out[sel] = np.where(rr > 0, integral + ndtr(-np.maximum(hh, kk)),
                            -integral + np.maximum(0.0, ndtr(-hh) - ndtr(-kk)))
    return np.clip(out, 0.0, 1.0)


def _tail_u(log_h: np.ndarray, heads: list[tuple[float, np.ndarray, np.ndarray]], t_mean: np.ndarray,
            t_sd: np.ndarray, sigma_u: float) -> np.ndarray:
    """sigma_u > 0: P(log H >= log_h [N]) with T and u (mediated.ts #tailWithU): per member each head's log H is
    normal; one head: its tail; a head and its floor: P(floor) + max(0, P(head) - P(both))."""
    from scipy.special import ndtr
    if len(heads) > 2:
        raise ValueError("an unmeasured log-hazard term supports a head and one floor")
    active = []
    for i, (h0, base, gamma) in enumerate(heads):
        if not h0 > 0:
            continue
        g = np.broadcast_to(gamma[None, :], base.shape)
        sd = np.hypot(g * t_sd, sigma_u)
        z = (log_h[:, None] - (np.log(h0) + base + g * t_mean - 0.5 * sigma_u ** 2)) / sd
        active.append((i == len(heads) - 1, z, sd, g))
    if not active:
        return np.zeros(len(log_h))
    floor = [a for a in active if a[0]]
    own = [a for a in active if not a[0]]
    if floor and own:
        _, zf, sf, gf = floor[0]
        _, zo, so, go = own[0]
        rho = (go * gf * t_sd * t_sd + sigma_u ** 2) / (so * sf)
        p = ndtr(-zf) + np.maximum(0.0, ndtr(-zo) - bvn_upper(zo, zf, rho))
    else:
        p = ndtr(-active[0][1])
    return np.clip(p.mean(1), 0.0, 1.0)


def _tail(log_h: np.ndarray, heads: list[tuple[float, np.ndarray, np.ndarray]], t_mean: np.ndarray,
          t_sd: np.ndarray, sigma_u: float = 0.0) -> np.ndarray:
    """P(log H >= log_h [N]) under the mixture; heads = [(H0, base [N,M], gamma [M])] (own head, then floors);
    T ~ N(t_mean, t_sd) per member [N,M] (mediated.ts #tail); sigma_u > 0: with the unmeasured-determinants u."""
    from scipy.special import ndtr
    if sigma_u > 0:
        return _tail_u(log_h, heads, t_mean, t_sd, sigma_u)
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


def _quantile(heads, t_mean, t_sd, q: float, sigma_u: float = 0.0) -> np.ndarray:
    """q-quantile of the risk: the smallest log H with CDF >= q, bisection to 1e-9 (mediated.ts #quantile); with
    sigma_u > 0 the bracket is each head's log H mean -/+ 9 sd."""
    lo = np.full(len(t_mean), np.inf)
    hi = np.full(len(t_mean), -np.inf)
    for h0, base, gamma in heads:
        if not h0 > 0:
            continue
        if sigma_u > 0:
            centre = np.log(h0) + base + gamma[None] * t_mean - 0.5 * sigma_u ** 2
            sd = np.hypot(gamma[None] * t_sd, sigma_u)
            lo, hi = np.minimum(lo, (centre - 9 * sd).min(1)), np.maximum(hi, (centre + 9 * sd).max(1))
            continue
        for sign in (-9.0, 9.0):
            x = np.log(h0) + base + gamma[None] * (t_mean + sign * t_sd)
            lo, hi = np.minimum(lo, x.min(1)), np.maximum(hi, x.max(1))
    lo, hi = lo - 1e-9, hi + 1e-9
    while (hi - lo).max() > 1e-9:
        mid = 0.5 * (lo + hi)
        ok = 1.0 - _tail(mid, heads, t_mean, t_sd, sigma_u) >= q
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return -np.expm1(-np.exp(0.5 * (lo + hi)))


def summarise(eta: np.ndarray, weights: np.ndarray, h0_10: dict[str, float], base: np.ndarray | None = None,
              gamma: np.ndarray | None = None, t_mean: np.ndarray | None = None,
              t_sd: np.ndarray | None = None, sigma_u: float = 0.0) -> dict[str, dict[str, np.ndarray]]:
    """Per outcome at 10 years: point (Gauss-Hermite mixture mean of the risk), lo/hi (2.5/97.5 percentiles) and
    pthr from the exact mixture CDF when base [N,M,2], gamma [M,2] and the T distribution [N,M] are given (else from
    the atoms, left-continuous), and the log-hazard mean and sd over the atoms. ``eta``/``weights`` must come from
    member_atoms with the same sigma_u (the exact CDF uses sigma_u; the atoms carry u themselves)."""
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
            lo, hi = _quantile(heads, t_mean, t_sd, 0.025, sigma_u), _quantile(heads, t_mean, t_sd, 0.975, sigma_u)
            pthr = _tail(np.full(len(r), np.log(-np.log1p(-thr))), heads, t_mean, t_sd, sigma_u)
        else:
            lo, hi = mixture_quantile(r, weights, 0.025), mixture_quantile(r, weights, 0.975)
            pthr = (weights * (r >= thr)).sum(1)
        out[o] = {"pred": (r * weights).sum(1), "lo": lo, "hi": hi, "pthr": pthr, "eta_mean": em, "eta_sd": es,
                  "cumhaz_mean": (h[:, k] * weights).sum(1)}
    return out


def risk_summary(base: np.ndarray, gamma: np.ndarray, t_mean: np.ndarray, t_sd: np.ndarray, n_nodes: int,
                 h0_10: dict[str, float], sigma_u: float = 0.0) -> dict[str, dict[str, np.ndarray]]:
    """The served numbers for base [N,M,2], gamma [M,2] and per-member T distributions [N,M] (exact CDF), with the
    unmeasured-determinants sd sigma_u (0: none). With sigma_u > 0 the atoms are J times as many (M*J*J per
    patient), so patients go through in blocks of ``ROWS_PER_BLOCK`` to bound memory (the same numbers to the
    bisection's 1e-9 on log H)."""
    if sigma_u > 0 and len(t_mean) > ROWS_PER_BLOCK:
        parts = [risk_summary(base[i:i + ROWS_PER_BLOCK], gamma, t_mean[i:i + ROWS_PER_BLOCK],
                              t_sd[i:i + ROWS_PER_BLOCK], n_nodes, h0_10, sigma_u)
                 for i in range(0, len(t_mean), ROWS_PER_BLOCK)]
        return {o: {k: np.concatenate([p[o][k] for p in parts]) for k in parts[0][o]} for o in parts[0]}
    eta, w = member_atoms(base, gamma, t_mean, t_sd, n_nodes, sigma_u)
    return summarise(eta, w, h0_10, base, gamma, t_mean, t_sd, sigma_u)


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
