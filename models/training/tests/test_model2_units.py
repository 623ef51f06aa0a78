"""Units of hip-xray-v2: Gauss-Hermite mixture risk (MOF >= hip, intervals, threshold probability), the tier rule
mirrored from server/risk/decision.ts, the T-score calibration and the vendor augmentation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from frcds import preprocess
from frcds.model2 import mixture
from frcds.model2.augment import renormalise, vendor_augment
from frcds.model2.fit import fit_calibration


def test_gauss_hermite_moments():
    x, w = mixture.gh(16)
    assert w.sum() == pytest.approx(1.0)
    assert (w * x ** 2).sum() == pytest.approx(1.0)
    # E[exp(g T)] for T ~ N(mu, sd) is exp(g mu + g^2 sd^2 / 2)
    mu, sd, g = -1.5, 0.7, -0.9
    assert (w * np.exp(g * (mu + sd * x))).sum() == pytest.approx(math.exp(g * mu + g * g * sd * sd / 2), rel=1e-9)


def test_mixture_quantile_is_left_continuous_inverse():
    v = np.array([[3.0, 1.0, 2.0, 4.0]])
    w = np.array([0.1, 0.2, 0.3, 0.4])           # sorted values 1 (0.2), 2 (0.3), 3 (0.1), 4 (0.4)
    assert mixture.mixture_quantile(v, w, 0.2)[0] == 1.0
    assert mixture.mixture_quantile(v, w, 0.21)[0] == 2.0
    assert mixture.mixture_quantile(v, w, 0.6)[0] == 3.0
    assert mixture.mixture_quantile(v, w, 0.975)[0] == 4.0


def test_summary_mof_never_below_hip_and_interval_contains_point():
    rng = np.random.default_rng(0)
    n, m = 200, 3
    base = np.stack([rng.normal(0.5, 1, (n, m)), rng.normal(-0.5, 1, (n, m))], axis=2)   # hip often above MOF
    gamma = np.array([[-1.2, -0.5]] * m)
    t_mean, t_sd = rng.normal(-1.5, 1, (n, m)), np.full((n, m), 0.6)
    eta, w = mixture.member_atoms(base, gamma, t_mean, t_sd, 16)
    assert eta.shape == (n, 2, m * 16) and w.sum() == pytest.approx(1.0)
    s = mixture.risk_summary(base, gamma, t_mean, t_sd, 16, {"hip": 0.02, "mof": 0.05})
    for k in ("pred", "lo", "hi"):
        assert (s["mof"][k] >= s["hip"][k] - 1e-15).all()
    for o in ("hip", "mof"):
        assert (s[o]["lo"] <= s[o]["pred"]).all() and (s[o]["pred"] <= s[o]["hi"]).all()
        assert ((s[o]["pthr"] >= 0) & (s[o]["pthr"] <= 1)).all()
    # the probability above the threshold agrees with the interval: hi below the threshold -> at most 2.5 %
    low = s["hip"]["hi"] < mixture.THRESHOLDS["hip"]
    assert (s["hip"]["pthr"][low] <= 0.025 + 1e-12).all()
    # atoms and exact CDF agree closely; the exact CDF against a large sample of the mixture
    a = mixture.summarise(eta, w, {"hip": 0.02, "mof": 0.05})
    assert np.abs(a["mof"]["pred"] - s["mof"]["pred"]).max() == 0.0
    assert np.median(np.abs(a["hip"]["hi"] - s["hip"]["hi"]) / s["hip"]["hi"]) < 0.15
    i = 7
    draws = rng.standard_normal((m, 200_000))
    tt = t_mean[i][:, None] + t_sd[i][:, None] * draws
    h_hip = 0.02 * np.exp(base[i, :, 0][:, None] + gamma[:, 0][:, None] * tt)
    h_mof = np.maximum(0.05 * np.exp(base[i, :, 1][:, None] + gamma[:, 1][:, None] * tt), h_hip)
    for o, hh in (("hip", h_hip), ("mof", h_mof)):
        r = -np.expm1(-hh).ravel()
        assert s[o]["lo"][i] == pytest.approx(np.quantile(r, 0.025), rel=0.01)
        assert s[o]["hi"][i] == pytest.approx(np.quantile(r, 0.975), rel=0.01)
        assert s[o]["pthr"][i] == pytest.approx(np.mean(r >= mixture.THRESHOLDS[o]), abs=0.003)
        assert s[o]["pred"][i] == pytest.approx(r.mean(), rel=0.01)
    # without T uncertainty and one member the interval collapses to the point
    eta1, w1 = mixture.member_atoms(base[:, :1], gamma[:1], t_mean[:, :1], np.full((n, 1), 1e-9), 16)
    s1 = mixture.risk_summary(base[:, :1], gamma[:1], t_mean[:, :1], np.full((n, 1), 1e-9), 16,
                              {"hip": 0.02, "mof": 0.05})
    np.testing.assert_allclose(s1["hip"]["lo"], s1["hip"]["hi"], rtol=1e-6)


def _one_member(b, g, mu, sd):
    return np.array([[[b, -20.0]]]), np.array([[g, -0.3]]), np.array([[mu]]), np.array([[sd]])


def test_unmeasured_term_sigma_zero_is_unchanged():
    rng = np.random.default_rng(3)
    n, m = 20, 3
    base = rng.normal(0, 1, (n, m, 2))
    gamma = np.array([[-0.9, -0.4], [-1.1, 0.3], [-0.7, -0.6]])
    t_mean, t_sd = rng.normal(-1.5, 1, (n, m)), np.full((n, m), 0.5)
    h0 = {"hip": 0.02, "mof": 0.05}
    a, b = mixture.risk_summary(base, gamma, t_mean, t_sd, 16, h0), mixture.risk_summary(base, gamma, t_mean, t_sd, 16, h0, sigma_u=0.0)
    for o in ("hip", "mof"):
        for k in a[o]:
            assert np.array_equal(a[o][k], b[o][k]), (o, k)
    e0, w0 = mixture.member_atoms(base, gamma, t_mean, t_sd, 16)
    e1, w1 = mixture.member_atoms(base, gamma, t_mean, t_sd, 16, sigma_u=0.0)
    assert np.array_equal(e0, e1) and np.array_equal(w0, w1)


@pytest.mark.parametrize("sd", [0.0, 0.6])
def test_unmeasured_term_one_member_closed_form(sd):
    """gamma * T + u is normal with variance gamma^2 sd^2 + sigma^2: closed-form percentiles and tail; mean by quad."""
    from scipy.integrate import quad
    from scipy.stats import norm
    sig, b, g, mu, h0 = 0.3, 1.1, -0.9, -2.2, 0.0107
    base, gamma, t_mean, t_sd = _one_member(b, g, mu, sd)
    s = mixture.risk_summary(base, gamma, t_mean, t_sd, 16, {"hip": h0, "mof": 0.04}, sigma_u=sig)["hip"]
    c = math.log(h0) + b + g * mu - sig ** 2 / 2
    tot = math.hypot(g * sd, sig)
    risk = lambda x: -math.expm1(-math.exp(x))
    z = norm.ppf(0.975)
    assert s["lo"][0] == pytest.approx(risk(c - z * tot), rel=1e-7)
    assert s["hi"][0] == pytest.approx(risk(c + z * tot), rel=1e-7)
    assert s["pthr"][0] == pytest.approx(norm.sf((math.log(-math.log1p(-0.03)) - c) / tot), abs=1e-12)
    exact = quad(lambda x: risk(c + tot * x) * norm.pdf(x), -12, 12, epsabs=1e-14)[0]
    assert s["pred"][0] == pytest.approx(exact, rel=1e-6)
    # eta sd over the atoms (members x T nodes x u nodes) = the total sd; mean moved by -sigma^2/2
    assert s["eta_sd"][0] == pytest.approx(tot, rel=1e-9)
    assert s["eta_mean"][0] == pytest.approx(b + g * mu - sig ** 2 / 2, abs=1e-12)


def test_unmeasured_term_mof_floor_mean_hazard_and_wider_interval():
    from scipy.stats import multivariate_normal
    rng = np.random.default_rng(5)
    n, m, sig = 40, 4, 0.35
    base = np.stack([rng.normal(0.5, 1, (n, m)), rng.normal(-0.3, 1, (n, m))], axis=2)
    gamma = np.stack([-np.abs(rng.normal(0.9, 0.3, m)), rng.normal(-0.3, 0.5, m)], axis=1)     # mixed-sign MOF
    t_mean = rng.normal(-1.5, 1, (n, m))
    t_sd = np.where(np.arange(n)[:, None] % 4 == 0, 0.1, rng.uniform(0.2, 0.8, (n, m)))
    h0 = {"hip": 0.02, "mof": 0.05}
    s0 = mixture.risk_summary(base, gamma, t_mean, t_sd, 16, h0)
    s = mixture.risk_summary(base, gamma, t_mean, t_sd, 16, h0, sigma_u=sig)
    assert (s["mof"]["pred"] >= s["hip"]["pred"] - 1e-12).all()
    hip_heads = [(h0["hip"], base[:, :, 0], gamma[:, 0])]
    mof_heads = [(h0["mof"], base[:, :, 1], gamma[:, 1])] + hip_heads
    for thr in (0.01, 0.03, 0.1, 0.2):
        lh = np.full(n, math.log(-math.log1p(-thr)))
        assert (mixture._tail(lh, mof_heads, t_mean, t_sd, sig) >= mixture._tail(lh, hip_heads, t_mean, t_sd, sig)).all()
    for k in ("lo", "hi"):                                   # both bisected to 1e-9 on log H
        assert (s["mof"][k] >= s["hip"][k] - 2e-9).all(), k
    for o in ("hip", "mof"):
        assert (s[o]["lo"] < s0[o]["lo"]).all() and ((s[o]["hi"] > s0[o]["hi"]) | (s0[o]["hi"] == 1.0)).all()
        np.testing.assert_allclose(s[o]["cumhaz_mean"], s0[o]["cumhaz_mean"], rtol=1e-12)   # E exp(u) = 1
        np.testing.assert_allclose(s[o]["eta_sd"] ** 2, s0[o]["eta_sd"] ** 2 + sig ** 2, rtol=1e-9)
    # the MOF tail against a direct bivariate normal per member (scipy), at its own 97.5th percentile
    i = 1
    x = np.log(-np.log1p(-s["mof"]["hi"][i]))
    tails = []
    for j in range(m):
        a = [math.log(h0[o]) + base[i, j, c] + gamma[j, c] * t_mean[i, j] - sig ** 2 / 2 for c, o in ((1, "mof"), (0, "hip"))]
        cov = np.array([[gamma[j, 1] ** 2, gamma[j, 1] * gamma[j, 0]], [gamma[j, 1] * gamma[j, 0], gamma[j, 0] ** 2]]) * t_sd[i, j] ** 2 + sig ** 2
        tails.append(1 - multivariate_normal(mean=a, cov=cov).cdf([x, x]))
    assert np.mean(tails) == pytest.approx(0.025, abs=1e-7)


def test_bivariate_normal_tail_against_scipy():
    from scipy.stats import multivariate_normal
    for r in (-0.999, -0.95, -0.6, 0.0, 0.4, 0.8, 0.93, 0.99, 0.99999):
        for h, k in ((-2.0, 0.5), (0.3, -1.2), (1.7, 2.9), (-0.4, -0.4)):
            want = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([-h, -k])
            assert float(mixture.bvn_upper(np.array(h), np.array(k), np.array(r))) == pytest.approx(want, abs=1e-9)


def test_tier_rule_matches_decision_ts():
    # shown percent: 2.96 % shows as 3.0 % and counts as over the 3 % hip threshold
    assert mixture.shown_percent(np.array([0.02996]))[0] == 3.0
    assert mixture.shown_percent(np.array([0.1416]))[0] == 14.0
    t = mixture.tier(np.array([0.0296, 0.0296, 0.01, 0.01, 0.01, 0.01]),
                     np.array([0.85, 0.5, 0.0, 0.0, 0.25, 0.0]),
                     np.array([0.05, 0.05, 0.05, 0.12, 0.05, 0.199]),
                     np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.9]))
    # over+sure -> high; over not sure -> moderate; nothing -> low; MOF >= 10 % -> moderate;
    # p >= 0.2 -> moderate; MOF 19.9 % shows as 20 % and is sure -> high
    assert t.tolist() == ["high", "moderate", "low", "moderate", "moderate", "high"]


def test_calibration_recovers_slope_and_coverage():
    rng = np.random.default_rng(1)
    n, m = 3000, 4
    truth = rng.normal(-1.5, 1.1, n)
    raw = (truth[:, None] - 0.3) / 2.0 + rng.normal(0, 0.05, (n, m))       # shrunk, shifted head
    noise_sd = 0.5
    dxa = truth + rng.normal(0, noise_sd, n)
    raw_sd = np.full((n, m), 0.1)                                           # overconfident raw sd
    cal = fit_calibration(raw, raw_sd, dxa)
    assert cal["slope"] == pytest.approx(2.0, rel=0.05)
    assert cal["intercept"] == pytest.approx(0.3, abs=0.08)
    assert cal["validation_coverage"] == pytest.approx(0.95, abs=0.01)
    assert cal["sd_scale"] * 0.1 == pytest.approx(noise_sd, rel=0.1)


def test_vendor_augment_is_deterministic_and_normalised():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:128, 0:128]
    img = (0.5 + 0.3 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.02 * rng.standard_normal((128, 128)))
    x = torch.from_numpy(np.stack([img] * 6)[:, None].astype(np.float32))
    a = vendor_augment(x, torch.Generator().manual_seed(4))
    b = vendor_augment(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert float(a.min()) >= preprocess.CLIP_LO and float(a.max()) <= preprocess.CLIP_HI
    assert float((a - x).abs().mean()) > 0.01                    # it changes the image
    # percentiles after renormalisation sit near 0 and 1, as after the preprocessing
    q = np.quantile(a.numpy().reshape(6, -1), [0.01, 0.99], axis=1)
    assert np.abs(q[0]).max() < 0.05 and np.abs(q[1] - 1).max() < 0.05
    r = renormalise(x * 3.0 + 1.0)
    q = np.quantile(r.numpy().reshape(6, -1), [0.01, 0.99], axis=1)
    assert np.abs(q[0]).max() < 0.02 and np.abs(q[1] - 1).max() < 0.02


def test_residual_image_term_does_not_take_the_tscore_effect():
    """gamma is the [clinical, T] fit's whether or not a residual image term is added, even when the features measure
    the T-score better than the T covariate does (a free gamma would hand its effect to the residual, and a measured
    DXA replacing T could then not change the risk as it should)."""
    from frcds.model2.fit import fit_survival
    rng = np.random.default_rng(0)
    n = 3000
    t = rng.normal(-1.5, 1, n)
    t_cov = t + rng.normal(0, 0.8, n)                                   # a noisy T covariate
    clin = rng.normal(0, 1, n)
    z = np.column_stack([t + rng.normal(0, 0.1, n), rng.normal(0, 1, (n, 5))])   # feature 0 measures T well
    tt = rng.exponential(1 / (0.01 * np.exp(clin - 1.0 * t + 0.3 * z[:, 1])))
    time, event = np.minimum(tt, 10), tt <= 10
    va = {"clin": clin, "t_cov": t_cov, "t_sd": np.zeros(n), "z": z, "time": time, "event": event}
    plain = fit_survival(clin, t_cov, np.zeros(n), None, time, event, va, [])
    f = fit_survival(clin, t_cov, np.zeros(n), z, time, event, va, [0.01, 0.1])
    assert f["choice"] != "none"
    assert f["gamma"] == plain["gamma"] and plain["gamma"] < -0.3
    assert f["w"][1] == pytest.approx(0.3, abs=0.1)
