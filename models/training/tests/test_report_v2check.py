"""The independent v2 recomputation (frcds/report/v2check.py): closed forms on one member, Monte Carlo on a mixture
with a MOF floor and mixed-sign coefficients, and the service's own TypeScript (server/risk/mediated.ts) on random
cases."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from frcds.report import v2check

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
H0 = {"hip": 0.0107, "mof": 0.042}


def _model(gamma_hip, gamma_mof, nodes=16, sd_ref=None, max_sd=1.0, sigma_u=None) -> v2check.V2Model:
    lc = {"max_log_hazard_sd": max_sd}
    if sd_ref:
        lc["sd_reference"] = sd_ref
    man = {"outcomes": [{"id": "hip", "index": 0}, {"id": "mof", "index": 1}],
           "risk_model": {"baseline_cumulative_hazard": {"grid_years": [0.0, 5.0, 10.0], "hip": [0, H0["hip"] / 2, H0["hip"]],
                                                         "mof": [0, H0["mof"] / 2, H0["mof"]]},
                          "tscore_coefficient_per_member": {"hip": list(gamma_hip), "mof": list(gamma_mof)}},
           "tscore_head": {"calibration": {"intercept": 0.0, "slope": 1.0, "sd_scale": 1.0}, "dxa_precision_sd": 0.1},
           "uncertainty": {"gauss_hermite_nodes": nodes, "low_confidence": lc}, "ood": {"threshold": 10.0}}
    if sigma_u is not None:
        man["uncertainty"]["unmeasured_log_hazard_sd"] = sigma_u
    return v2check.V2Model(man)


def test_one_member_closed_forms():
    g, b, mu, sd = -0.8, 1.0, -1.5, 0.6
    m = _model([g], [-0.3])
    base = np.array([[[b, -5.0]]])                                   # MOF head far below hip: MOF = hip
    MU, SD = np.array([[mu]]), np.array([[sd]])
    risk = lambda t: 1 - np.exp(-H0["hip"] * np.exp(b + g * t))
    out = v2check.predict(m, base, MU, SD)
    # risk falls with T (gamma < 0): its 2.5th percentile is the risk at T's 97.5th percentile
    assert out["lo10_hip"][0] == pytest.approx(risk(mu + 1.959964 * sd), rel=1e-7)
    assert out["hi10_hip"][0] == pytest.approx(risk(mu - 1.959964 * sd), rel=1e-7)
    t_star = (np.log(-np.log1p(-0.03) / H0["hip"]) - b) / g
    assert out["pthr_hip"][0] == pytest.approx(norm.cdf((t_star - mu) / sd), abs=1e-12)
    exact = quad(lambda t: risk(t) * norm.pdf(t, mu, sd), mu - 12 * sd, mu + 12 * sd, epsabs=1e-13)[0]
    assert out["pred10_hip"][0] == pytest.approx(exact, rel=1e-9)
    # the MOF floor: MOF equals hip when its own head is negligible
    for c in ("pred10", "lo10", "hi10"):
        assert out[f"{c}_mof"][0] == pytest.approx(out[f"{c}_hip"][0], rel=1e-9)
    # eta sd over the mixture = |gamma| sd for one member; low confidence when above the limit
    em, es = v2check.eta_moments(m, "hip", base, MU, SD)
    assert em[0] == pytest.approx(b + g * mu) and es[0] == pytest.approx(abs(g) * sd)
    assert not out["low_confidence"][0]
    assert v2check.predict(_model([g], [-0.3], max_sd=0.4), base, MU, SD)["low_confidence"][0]


@pytest.mark.parametrize("sd", [0.0, 0.6])
def test_unmeasured_term_one_member_closed_forms(sd):
    """With u ~ N(-sigma^2/2, sigma): log H = log H0 + b + gamma T + u is normal, variance gamma^2 sd^2 + sigma^2."""
    g, b, mu, sig = -0.8, 1.0, -1.5, 0.3
    m = _model([g], [-0.3], sigma_u=sig)
    base = np.array([[[b, -5.0]]])
    MU, SD = np.array([[mu]]), np.array([[sd]])
    c = np.log(H0["hip"]) + b + g * mu - sig ** 2 / 2
    tot = np.hypot(g * sd, sig)
    risk = lambda x: -np.expm1(-np.exp(x))
    out = v2check.predict(m, base, MU, SD)
    assert out["lo10_hip"][0] == pytest.approx(risk(c - 1.959964 * tot), rel=1e-6)
    assert out["hi10_hip"][0] == pytest.approx(risk(c + 1.959964 * tot), rel=1e-6)
    assert out["pthr_hip"][0] == pytest.approx(norm.sf((np.log(-np.log1p(-0.03)) - c) / tot), abs=1e-12)
    exact = quad(lambda x: risk(c + tot * x) * norm.pdf(x), -12, 12, epsabs=1e-14)[0]
    assert out["pred10_hip"][0] == pytest.approx(exact, rel=1e-6)
    em, es = v2check.eta_moments(m, "hip", base, MU, SD)
    assert em[0] == pytest.approx(b + g * mu - sig ** 2 / 2) and es[0] == pytest.approx(tot)
    # the manifest without the key is sigma 0
    assert _model([g], [-0.3]).sigma_u == 0.0


@pytest.mark.parametrize("sig", [0.0, 0.35])
def test_mixture_with_floor_and_mixed_signs_against_monte_carlo(sig):
    rng = np.random.default_rng(4)
    gh, gm = np.array([-0.9, -0.5, 0.3]), np.array([-0.2, 0.4, -0.6])
    m = _model(gh, gm, sigma_u=sig)
    base = np.array([[[1.2, 0.1], [0.4, 0.8], [2.0, -0.5]]])
    MU, SD = np.array([[-2.0, -1.2, -0.5]]), np.array([[0.5, 0.9, 0.3]])
    out = v2check.predict(m, base, MU, SD)
    n = 400_000
    mem = rng.integers(0, 3, n)
    t = MU[0, mem] + SD[0, mem] * rng.standard_normal(n)
    u = -sig ** 2 / 2 + sig * rng.standard_normal(n)                   # shared by both heads
    h_hip = H0["hip"] * np.exp(base[0, mem, 0] + gh[mem] * t + u)
    h_mof = np.maximum(H0["mof"] * np.exp(base[0, mem, 1] + gm[mem] * t + u), h_hip)
    for k, h in (("hip", h_hip), ("mof", h_mof)):
        r = 1 - np.exp(-h)
        assert out[f"pred10_{k}"][0] == pytest.approx(r.mean(), rel=0.01)
        assert out[f"lo10_{k}"][0] == pytest.approx(np.quantile(r, 0.025), rel=0.03)
        assert out[f"hi10_{k}"][0] == pytest.approx(np.quantile(r, 0.975), rel=0.03)
        thr = 0.03 if k == "hip" else 0.2
        assert out[f"pthr_{k}"][0] == pytest.approx((r >= thr).mean(), abs=0.004)
        for q in (0.025, 0.5, 0.975):
            assert v2check.cdf(m, k, v2check.percentile(m, k, q, base, MU, SD), base, MU, SD)[0] == pytest.approx(q, abs=1e-6)
    assert out["pred10_mof"][0] >= out["pred10_hip"][0] and out["hi10_mof"][0] >= out["hi10_hip"][0]
    q = v2check.tscore_quantile(MU, SD, 0.975)
    assert norm.cdf((q[0] - MU[0]) / SD[0]).mean() == pytest.approx(0.975, abs=1e-9)


SERVICE_SCRIPT = """
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const { MediatedOutcome } = await import(pathToFileURL(process.argv[2] + '/server/risk/mediated.ts').href);
const cases = JSON.parse(readFileSync(0, 'utf8'));
const opt = (c) => ({ unmeasuredLogHazardSd: c.sigma });
const grid = [0, 5, 10];
const out = cases.map((c) => {
  const head = (k, i) => ({ grid, h0: [0, c.h0[k] / 2, c.h0[k]], base: c.base.map((b) => b[i]), gamma: c.gamma[k] });
  const tn = c.mu.map((mu, m) => ({ mean: mu, sd: c.sd[m] }));
  const hip = new MediatedOutcome([head('hip', 0)], tn, 16, opt(c));
  const mof = new MediatedOutcome([head('mof', 1), head('hip', 0)], tn, 16, opt(c));
  const r = (o, thr) => ({ ...o.riskAt(10), p: o.probabilityAtLeast(10, thr), sd: o.logHazardSpread().sd });
  return { hip: r(hip, 0.03), mof: r(mof, 0.2) };
});
console.log(JSON.stringify(out));
"""


@pytest.mark.parametrize("sig", [0.0, 0.3])
def test_equals_the_services_mediated_outcome(tmp_path, sig):
    """The service against this independent recomputation; with the unmeasured-determinants term (sig > 0) also
    against the training code's mirror (mixture.py), every fifth patient with a DXA-like T-score sd of 0.1."""
    if not os.path.exists(os.path.join(REPO, "server", "risk", "mediated.ts")):
        pytest.fail("server/risk/mediated.ts (the service's v2 risk code) is missing")
    rng = np.random.default_rng(8)
    n, M = 60, 5
    gamma = {"hip": -np.abs(rng.normal(0.9, 0.3, M)), "mof": -np.abs(rng.normal(0.4, 0.2, M))}
    if sig > 0:
        gamma["mof"][1] = 0.25                                          # a mixed-sign MOF head
    m = _model(gamma["hip"], gamma["mof"], sigma_u=sig)
    base = np.stack([rng.normal(0.5, 1.0, (n, M)), rng.normal(0.8, 0.8, (n, M))], axis=2)
    MU = rng.normal(-1.5, 1.0, (n, 1)) + rng.normal(0, 0.3, (n, M))
    SD = np.abs(rng.normal(0.6, 0.2, (n, M))) + 0.05
    if sig > 0:
        SD[::5] = 0.1
    ours = v2check.predict(m, base, MU, SD)
    cases = [{"h0": H0, "base": base[i].tolist(), "gamma": {k: v.tolist() for k, v in gamma.items()},
              "mu": MU[i].tolist(), "sd": SD[i].tolist(), "sigma": sig} for i in range(n)]
    script = tmp_path / "mediated_numbers.mts"
    script.write_text(SERVICE_SCRIPT)
    r = subprocess.run(["node", "--import", "tsx", str(script), REPO], input=json.dumps(cases), capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    svc = json.loads(r.stdout)
    for k in ("hip", "mof"):
        assert ours[f"pred10_{k}"] == pytest.approx([s[k]["risk"] for s in svc], rel=1e-9, abs=1e-12)
        # the service's normal tail is accurate to 1.2e-7 and its bisection stops at 1e-10 in risk
        assert ours[f"lo10_{k}"] == pytest.approx([s[k]["lower"] for s in svc], rel=1e-5, abs=1e-8)
        assert ours[f"hi10_{k}"] == pytest.approx([s[k]["upper"] for s in svc], rel=1e-5, abs=1e-8)
        assert ours[f"pthr_{k}"] == pytest.approx([s[k]["p"] for s in svc], abs=3e-7)
        assert v2check.eta_moments(m, k, base, MU, SD)[1] == pytest.approx([s[k]["sd"] for s in svc], rel=1e-9)
    assert len({t for t in ours["tier"]}) >= 2
    if sig > 0:
        from frcds.model2 import mixture
        g = np.stack([gamma["hip"], gamma["mof"]], axis=1)
        mir = mixture.risk_summary(base, g, MU, SD, 16, H0, sigma_u=sig)
        for k in ("hip", "mof"):
            assert mir[k]["pred"] == pytest.approx(ours[f"pred10_{k}"], rel=1e-12)
            assert mir[k]["lo"] == pytest.approx(ours[f"lo10_{k}"], rel=1e-7)
            assert mir[k]["hi"] == pytest.approx(ours[f"hi10_{k}"], rel=1e-7)
            assert mir[k]["pthr"] == pytest.approx(ours[f"pthr_{k}"], abs=1e-12)
            assert mir[k]["eta_sd"] == pytest.approx([s[k]["sd"] for s in svc], rel=1e-9)


def test_compare_reports_differences_and_agreement():
    file = {"a": np.array([0.1, 0.2, 0.3]), "t": np.array(["low", "high", "low"])}
    rec = {"a": np.array([0.1, 0.25, 0.3]), "t": np.array(["low", "high", "high"])}
    c = v2check.compare(file, rec)
    assert c["a"]["max_abs"] == pytest.approx(0.05) and c["a"]["max_rel"] == pytest.approx(0.2)
    assert c["t"] == {"agree": pytest.approx(2 / 3), "n_differ": 1}
