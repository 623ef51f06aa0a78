"""Unit tests of the model package's hand-written pieces against brute force or known truths."""
from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import pytest
import torch

from frcds.model import intervals, metrics, ood
from frcds.model.net import EnsembleGraph, Member
from frcds.model.survival import MONTHLY_GRID, breslow, cox_loss, cox_nll, fit_cox

sys.path.insert(0, os.path.dirname(__file__))


def _cox_data(n, beta, seed, h0=0.02, cens_max=12.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(beta)))
    lp = x @ np.asarray(beta)
    t_ev = rng.exponential(1.0 / (h0 * np.exp(lp)))
    c = np.minimum(rng.uniform(1, cens_max, n), 10.0)
    return x, lp, np.minimum(t_ev, c), t_ev <= c


def test_harrell_matches_brute_force():
    x, lp, t, e = _cox_data(150, [1.0], 1)
    score = lp + np.random.default_rng(2).normal(0, 0.5, len(lp))
    num = den = 0.0
    for i, j in itertools.permutations(range(len(t)), 2):
        if e[i] and t[i] < t[j] and t[i] <= 10:
            den += 1
            num += 1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0
    assert metrics.harrell_c(t, e, score) == pytest.approx(num / den, abs=1e-12)


def test_uno_equals_harrell_without_censoring():
    rng = np.random.default_rng(3)
    t = rng.exponential(5, 300)
    e = np.ones(300, bool)
    s = -t + rng.normal(0, 3, 300)
    assert metrics.uno_c(t, e, s, tau=1e9) == pytest.approx(metrics.harrell_c(t, e, s, tau=1e9), abs=1e-12)


def test_td_auc_without_censoring_is_case_control_auc():
    rng = np.random.default_rng(4)
    t = rng.exponential(5, 400)
    e = np.ones(400, bool)
    s = -t + rng.normal(0, 2, 400)
    cases, ctrl = s[t <= 5], s[t >= 5]
    brute = np.mean([(c > d) + 0.5 * (c == d) for c in cases for d in ctrl])
    assert metrics.td_auc(t, e, s, 5.0) == pytest.approx(brute, abs=1e-12)


def test_cox_fit_recovers_coefficients_and_gradient_is_exact():
    x, _, t, e = _cox_data(4000, [0.7, -0.5], 5)
    b = fit_cox(x, t, e)
    assert b == pytest.approx([0.7, -0.5], abs=0.08)
    o = np.argsort(t)
    b0 = np.array([0.3, 0.1])
    f, g = cox_nll(b0, x[o], t[o], e[o], np.zeros(2))
    num = [(cox_nll(b0 + d, x[o], t[o], e[o], np.zeros(2))[0] - cox_nll(b0 - d, x[o], t[o], e[o], np.zeros(2))[0])
           / 2e-6 for d in np.eye(2) * 1e-6]
    assert g == pytest.approx(num, abs=1e-5)


def test_torch_loss_equals_numpy_partial_likelihood():
    x, lp, t, e = _cox_data(200, [1.0], 6)
    o = np.argsort(t)
    f, _ = cox_nll(np.zeros(1), np.zeros((200, 1)), t[o], e[o], np.zeros(1), offset=lp[o])
    lt = cox_loss(torch.tensor(lp), torch.tensor(t), torch.tensor(e))
    assert float(lt) == pytest.approx(f, abs=1e-9)


def test_breslow_is_nelson_aalen_at_zero_lp_and_calibration_is_one_for_the_true_model():
    x, lp, t, e = _cox_data(3000, [1.0], 7)
    h = breslow(np.zeros(len(t)), t, e)
    na = [sum(1.0 / np.sum(t >= ti) for ti in t[e] if ti <= g) for g in (2.0, 5.0)]
    assert h[24] == pytest.approx(na[0], rel=1e-9) and h[60] == pytest.approx(na[1], rel=1e-9)
    # the data-generating model: H(t) = 0.02 t exp(lp)
    cal = metrics.calibration(t, e, lp, 0.02 * np.minimum(t, 10) * np.exp(lp))
    assert cal["slope"] == pytest.approx(1.0, abs=0.1) and cal["intercept"] == pytest.approx(0.0, abs=0.1)
    over = metrics.calibration(t, e, 2 * lp, 0.02 * np.minimum(t, 10) * np.exp(2 * lp))
    assert over["slope"] == pytest.approx(0.5, abs=0.07)


def test_ibs_of_the_true_model_beats_a_null_model():
    x, lp, t, e = _cox_data(2000, [1.0], 8)
    true_h = 0.02 * MONTHLY_GRID[None] * np.exp(lp)[:, None]
    null_h = 0.02 * MONTHLY_GRID[None] * np.exp(lp.mean()) * np.ones((len(t), 1)) * np.mean(np.exp(lp))
    assert metrics.integrated_brier(t, e, true_h) < metrics.integrated_brier(t, e, null_h)


def test_interval_factor_gives_the_target_coverage_on_its_own_data():
    rng = np.random.default_rng(9)
    n, m = 1000, 5
    true_eta = rng.normal(0, 1, n)
    members = true_eta[:, None] + rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.1, (n, m))
    h0 = 0.05
    true_risk = 1 - np.exp(-h0 * np.exp(true_eta))
    k = intervals.calibrate_factor(members, true_risk, h0)
    _, lo, hi = intervals.interval(members, k, h0)
    assert intervals.coverage(lo, hi, true_risk) == pytest.approx(0.95, abs=0.002)
    assert k > 1.0                          # spread alone (sd 0.1) is far too narrow for the 0.3 shared error


def test_mahalanobis_separates_a_shifted_distribution():
    rng = np.random.default_rng(10)
    tr = rng.standard_normal((2000, 40)) @ rng.standard_normal((40, 40))
    st = ood.fit(tr)
    assert 0.0 <= st["shrinkage"] <= 1.0
    d_in = ood.distance(rng.standard_normal((500, 40)) @ rng.standard_normal((40, 40)) * 0 + tr[:500], st)
    d_out = ood.distance(tr[500:1000] + 3.0, st)
    assert ood.auroc(d_in, d_out) > 0.99
    assert np.median(d_in) == pytest.approx(np.sqrt(40), rel=0.15)


def test_exported_cam_is_exactly_grad_cam():
    """Grad-CAM via autograd (weights = spatial mean of d eta/dF) equals the graph's CAM output, and the spatial mean
    of the pre-ReLU map plus the clinical and bias terms is the log-hazard itself."""
    torch.manual_seed(0)
    members = [Member(), Member()]
    g = EnsembleGraph(members).eval()
    c = members[0].backbone.channels
    g.set_heads(torch.randn(2, 2, c) * 0.1, torch.tensor([[1.0, 0.8], [0.9, 1.1]]), torch.randn(2, 2))
    g.set_ood(np.zeros(2 * c), np.eye(2 * c))
    x = torch.randn(3, 1, 128, 128)
    clin = torch.randn(3, 2)
    lh, cam, _ = g(x, clin)
    for k in range(2):
        fmaps = [bb(x) for bb in g.backbones]
        for f in fmaps:
            f.retain_grad()
        eta = torch.stack([f.mean(dim=(2, 3)) @ g.w[m, k] for m, f in enumerate(fmaps)], 1).mean(1)
        eta.sum().backward()
        # Grad-CAM of the member-mean log-hazard over all members' feature maps: alpha = spatial mean of the
        # gradient (= w / (M*h*w)), map = ReLU(sum over members and channels of alpha * F)
        gsum = sum((f.grad.mean(dim=(2, 3))[:, :, None, None] * f).sum(1) for f in fmaps)
        hw = fmaps[0].shape[2] * fmaps[0].shape[3]
        assert torch.allclose(torch.relu(gsum).detach() * hw, cam[:, k].detach(), atol=1e-5)
        pre = torch.stack([torch.einsum("bchw,c->bhw", f, g.w[m, k]) for m, f in enumerate(fmaps)]).mean(0)
        recon = pre.mean(dim=(1, 2)) + (g.beta[:, k] * clin[:, k:k + 1] + g.bias[:, k]).mean(1)
        assert torch.allclose(recon, lh[:, :, k].mean(1).detach(), atol=1e-5)


def test_graph_batch_rows_are_independent():
    torch.manual_seed(1)
    g = EnsembleGraph([Member()]).eval()
    c = g.backbones[0].channels
    g.set_heads(torch.randn(1, 2, c), torch.ones(1, 2), torch.zeros(1, 2))
    g.set_ood(np.zeros(c), np.eye(c))
    x, clin = torch.randn(4, 1, 128, 128), torch.randn(4, 2)
    with torch.no_grad():
        full = g(x, clin)
        one = g(x[2:3], clin[2:3])
    for a, b in zip(full, one):
        assert torch.allclose(a[2:3], b, atol=1e-5)


def test_calibration_newton_fit_equals_statsmodels_glm():
    import statsmodels.api as sm
    x, lp, t, e = _cox_data(1500, [1.0], 11)
    lp_model = 1.3 * lp + 0.2
    E = 0.02 * np.minimum(t, 10) * np.exp(lp_model)
    got = metrics.calibration(t, e, lp_model, E)
    y = (e & (t <= 10)).astype(float)
    c = lp_model - lp_model.mean()
    m0 = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Poisson(), offset=np.log(E)).fit()
    m1 = sm.GLM(y, sm.add_constant(c), family=sm.families.Poisson(), offset=np.log(E) - c).fit()
    assert got["intercept"] == pytest.approx(m0.params[0], abs=1e-8)
    assert got["slope"] == pytest.approx(m1.params[1], abs=1e-6)
