"""Recalibration of hip-xray-v2's risk part on validation outcomes (frcds/model2/recal.py): the slope recovers a
known over-spread, the intercept recovers a known baseline shift, and the folded member terms give a * b * eta
exactly as the service computes eta = base + gamma * T."""
from __future__ import annotations

import math

import numpy as np
import pytest

from frcds.model.survival import MONTHLY_GRID
from frcds.model2 import mixture, recal


def _cox_sample(true_eta: np.ndarray, rate: float, rng: np.random.Generator, follow_up: float = 10.0):
    """Exponential event times with hazard rate * exp(true_eta), administratively censored at follow_up."""
    t_event = rng.exponential(1.0 / (rate * np.exp(true_eta)))
    time = np.minimum(t_event, follow_up)
    return time, t_event <= follow_up


def test_served_log_multiplier_is_log_weighted_mean_of_exp():
    eta = np.array([[0.0, 1.0, -2.0], [0.5, 0.5, 0.5]])
    w = np.array([0.2, 0.3, 0.5])
    got = recal.served_log_multiplier(eta, w, 0.7)
    want = [math.log(0.2 + 0.3 * math.exp(0.7) + 0.5 * math.exp(-1.4)), 0.35]
    assert got == pytest.approx(want, rel=1e-12)


def test_slope_recovers_an_over_spread_predictor():
    # the fitted predictor is 1/0.6 times too spread: the partial likelihood on new data picks b close to 0.6
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1.2, 6000)
    time, event = _cox_sample(0.6 * x, 0.01, rng)
    fit = recal.fit_slope(x[:, None], np.ones(1), time, event)
    assert fit["slope"] == pytest.approx(0.6, abs=0.08)
    assert fit["pl"] >= fit["pl_at_1"]
    assert fit["events"] == int(event.sum())


def test_slope_uses_the_mixture_not_the_mean_atom():
    # two atoms per patient; the truth is the served mixture-mean multiplier at b = 0.5
    rng = np.random.default_rng(5)
    n = 6000
    centre, spread = rng.normal(0, 1.5, n), rng.uniform(0, 2, n)
    eta = np.stack([centre - spread, centre + spread], 1)
    w = np.array([0.5, 0.5])
    time, event = _cox_sample(recal.served_log_multiplier(eta, w, 0.5), 0.01, rng)
    assert recal.fit_slope(eta, w, time, event)["slope"] == pytest.approx(0.5, abs=0.07)


def test_slope_without_events_keeps_the_model():
    fit = recal.fit_slope(np.zeros((5, 1)), np.ones(1), np.ones(5), np.zeros(5, bool))
    assert fit["slope"] == 1.0 and fit["events"] == 0


def test_intercept_is_log_observed_over_expected():
    # constant baseline hazard 0.01/y on the monthly grid; hand-computable expected count
    h0 = 0.01 * MONTHLY_GRID
    time = np.array([2.0, 5.0, 12.0, 10.0])
    event = np.array([True, False, True, True])          # the event at 12 y is past the grid's 10 y: not counted
    log_mult = np.array([0.0, math.log(2.0), 0.0, 0.0])
    expected = 0.01 * (2.0 + 2 * 5.0 + 10.0 + 10.0)
    fit = recal.fit_intercept(log_mult, h0, time, event)
    assert fit["observed"] == 2
    assert fit["expected"] == pytest.approx(expected, rel=1e-9)
    assert fit["intercept"] == pytest.approx(math.log(2 / expected), rel=1e-9)


def test_intercept_recovers_a_baseline_shift():
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, 20000)
    time, event = _cox_sample(x, 0.02 * 1.5, rng)         # true baseline 1.5 x the model's
    fit = recal.fit_intercept(x, 0.02 * MONTHLY_GRID, time, event)
    assert fit["intercept"] == pytest.approx(math.log(1.5), abs=0.06)


def test_scaled_member_terms_give_b_times_eta_for_every_atom():
    rng = np.random.default_rng(1)
    m, c, n = 3, 4, 7
    beta, gamma = rng.normal(size=(m, 2)), -np.abs(rng.normal(size=(m, 2)))
    w, bias = rng.normal(size=(m, 2, c)), rng.normal(size=(m, 2))
    z, clin = rng.normal(size=(n, m, c)), rng.normal(size=(n, 2))
    t_mean, t_sd = rng.normal(-1, 1, (n, m)), np.full((n, m), 0.5)
    slope = np.array([0.8, 1.1])

    def eta(b_, g_, w_, bias_):
        base = np.einsum("nmc,mkc->nmk", z, w_) + b_[None] * clin[:, None, :] + bias_[None]
        return mixture.member_atoms(base, g_, t_mean, t_sd, 8)[0]

    before = eta(beta, gamma, w, bias)
    after = eta(*recal.scale_member_terms(slope, beta, gamma, w, bias))
    assert after == pytest.approx(before * slope[None, :, None], rel=1e-12)
    # the inputs are left as they were
    assert eta(beta, gamma, w, bias) == pytest.approx(before, rel=0)
