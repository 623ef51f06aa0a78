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
