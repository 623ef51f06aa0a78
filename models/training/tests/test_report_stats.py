"""The report's metrics on cases small enough to compute by hand, plus large synthetic cases with a known answer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from frcds.report import decision, stats


def test_harrell_c_on_four_patients_by_hand():
    # times 1, 2, 3, 4 (events at 1 and 3; 2 and 4 censored). Comparable pairs: the event at 1 with 2, 3, 4 and the
    # event at 3 with 4 = 4 pairs. Scores: 0.9, 0.5, 0.7, 0.1 -> concordant: (1,2) 0.9>0.5, (1,3) 0.9>0.7,
    # (1,4) 0.9>0.1, (3,4) 0.7>0.1 -> C = 4/4; swapping patient 3's score to 0.05 makes (3,4) discordant: 3/4.
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([1, 0, 1, 0], bool)
    assert stats.harrell_c(t, e, np.array([0.9, 0.5, 0.7, 0.1])) == pytest.approx(1.0)
    assert stats.harrell_c(t, e, np.array([0.9, 0.5, 0.05, 0.1])) == pytest.approx(0.75)
    # a tie in score counts one half: scores 0.5, 0.5, 0.7, 0.1 -> (1,2) tie 0.5, (1,3) 0.5 < 0.7 discordant,
    # (1,4) and (3,4) concordant -> 2.5/4
    assert stats.harrell_c(t, e, np.array([0.5, 0.5, 0.7, 0.1])) == pytest.approx(2.5 / 4)
    # events after the horizon are not cases
    assert stats.harrell_c(t, e, np.array([0.9, 0.5, 0.05, 0.1]), tau=2.0) == pytest.approx(1.0)


def test_kaplan_meier_on_a_known_table():
    # 6 people: deaths at 1, 3, 3; censored at 2, 4, 5.
    # S(1) = 5/6; at 3 there are 3 at risk (3, 3, 4, 5 -> 4 at risk) with 2 events: S(3) = 5/6 * (1 - 2/4) = 5/12.
    t = np.array([1, 2, 3, 3, 4, 5], float)
    e = np.array([1, 0, 1, 1, 0, 0], bool)
    s = stats.km(t, e, np.array([0.5, 1.0, 2.5, 3.0, 10.0]))
    assert s == pytest.approx([1.0, 5 / 6, 5 / 6, 5 / 12, 5 / 12])


def test_interval_score_formula():
    # inside: width only; below: width + 2/alpha * miss; above likewise (alpha 0.05 -> factor 40)
    lo, hi = np.array([0.02, 0.02, 0.02]), np.array([0.05, 0.05, 0.05])
    x = np.array([0.03, 0.01, 0.06])
    assert stats.interval_score(lo, hi, x) == pytest.approx([0.03, 0.03 + 40 * 0.01, 0.03 + 40 * 0.01])
    assert stats.interval_score(lo, hi, x, alpha=0.5) == pytest.approx([0.03, 0.03 + 4 * 0.01, 0.03 + 4 * 0.01])
    assert stats.coverage(lo, hi, x) == pytest.approx(1 / 3)


def _survival_sample(risk10: np.ndarray, seed: int, censor: bool = True):
    """Event times with constant hazard so that P(T <= 10) = risk10; uniform loss to follow-up, administrative at 10."""
    rng = np.random.default_rng(seed)
    lam = -np.log1p(-risk10) / 10.0
    t_ev = rng.exponential(1.0 / lam)
    c = np.where(censor, rng.uniform(5.0, 25.0, len(risk10)), np.inf)
    c = np.minimum(c, 10.0)
    return np.minimum(t_ev, c), t_ev <= c


def test_km_decile_calibration_slope_is_one_when_calibrated_and_not_otherwise():
    rng = np.random.default_rng(1)
    r = np.clip(np.exp(rng.normal(np.log(0.08), 1.0, 40_000)), 0.001, 0.9)
    t, e = _survival_sample(r, 2)
    cal = stats.km_decile_calibration(t, e, r)
    assert len(cal["table"]) == 10 and sum(g["n"] for g in cal["table"]) == len(r)
    assert cal["slope"] == pytest.approx(1.0, abs=0.06)
    assert cal["intercept"] == pytest.approx(0.0, abs=0.01)
    # predictions twice as spread out on the log scale: observed moves less than predicted -> slope well below 1
    over = np.clip(np.exp(2 * np.log(r / 0.08) + np.log(0.08)), 0, 0.99)
    assert stats.km_decile_calibration(t, e, over)["slope"] < 0.7
    top = stats.top_decile(t, e, r, truth=r)
    assert abs(top["relative_difference"]) < 0.05
    assert top["true"] == pytest.approx(top["predicted"]) and top["n"] == len(r) // 10
    assert stats.top_decile(t, e, r * 1.5)["relative_difference"] == pytest.approx(0.5, abs=0.08)


def test_km_decile_calibration_by_hand():
    # 20 people, no censoring before 10 y: two groups of 10 by predicted risk; group 1 (pred 0.1) has 1 event,
    # group 2 (pred 0.5) has 5 events -> observed 0.1 and 0.5 -> slope 1, intercept 0.
    pred = np.r_[np.full(10, 0.1), np.full(10, 0.5)]
    t = np.full(20, 10.0)
    e = np.zeros(20, bool)
    t[[0]] = 3.0
    e[[0]] = True
    t[10:15] = 4.0
    e[10:15] = True
    cal = stats.km_decile_calibration(t, e, pred, groups=2)
    assert [g["observed_km"] for g in cal["table"]] == pytest.approx([0.1, 0.5])
    assert cal["slope"] == pytest.approx(1.0) and cal["intercept"] == pytest.approx(0.0, abs=1e-12)


def test_pearson_brier_reliability_auroc_by_hand():
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert stats.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert stats.brier([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    rel = stats.reliability([0.05, 0.08, 0.95, 1.0, 0.55], [0, 1, 1, 1, 0], bins=10)
    assert [(x["bin"][0], x["n"], x["observed"]) for x in rel] == [(0.0, 2, 0.5), (0.5, 1, 0.0), (0.9, 2, 1.0)]
    assert rel[0]["mean_p"] == pytest.approx(0.065)
    # AUROC: positives 3 and 5 vs negatives 1, 3, 4 -> pairs (3>1, 3=3 half, 3<4, 5>all three) = (1 + .5 + 0 + 3)/6
    assert stats.auroc(np.array([1, 3, 4.0]), np.array([3, 5.0])) == pytest.approx(4.5 / 6)
    assert stats.events_by(np.array([1, 11, 10, 3.0]), np.array([1, 1, 1, 0], bool)) == 2


def test_bootstrap_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(5).normal(1.0, 1.0, 400)
    a = stats.bootstrap(lambda i: x[i].mean(), (len(x),), 300, 11)
    b = stats.bootstrap(lambda i: x[i].mean(), (len(x),), 300, 11)
    assert np.array_equal(a, b)
    lo, hi = stats.percentile_ci(a)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert lo < x.mean() < hi and (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)
    two = stats.bootstrap(lambda i, j: float(len(i) + len(j)), (3, 5), 4, 0)
    assert (two == 8).all()


def test_decision_mirror_rounding_tail_and_tiers():
    # JavaScript rounding of the shown percent: 12.5 % -> 13 (numpy's half-to-even would give 12)
    assert decision.shown_percent(np.array([0.125, 0.02996, 0.1416, 0.0995, 0.09949]))[:4] == pytest.approx([13, 3.0, 14, 10])
    x = np.array([-3, -1.644853627, 0, 0.3, 1.959963985, 3, np.inf, -np.inf])
    assert decision.normal_upper_tail(x) == pytest.approx(norm.sf(x), abs=2e-7)
    hip = (0.0107, np.array([1.1]), np.array([0.9]))
    r_mean = 1 - np.exp(-0.0107 * np.exp(1.1))
    assert decision.probability_above([hip], float(r_mean)) == pytest.approx([0.5], abs=1e-7)
    # MOF includes hip: the probability is that of the component crossing first
    mof = (0.042, np.array([0.2]), np.array([0.6]))
    both = decision.probability_above([mof, hip], 0.2)
    assert both == pytest.approx(np.maximum(decision.probability_above([mof], 0.2), decision.probability_above([hip], 0.2)))
    # the cases of server/risk/decision.test.ts (percent values converted to fractions)
    nan = np.nan
    cases = [((0.052, 0.93, 0.12, 0.01), "high"), ((0.031, 0.51, 0.054, 0.0), "moderate"), ((0.0296, nan, 0.08, nan), "high"),
             ((0.029, nan, 0.08, nan), "low"), ((0.013, 0.24, 0.04, 0.01), "moderate"), ((0.013, 0.19, 0.04, 0.01), "low"),
             ((0.01, 0.01, 0.10, 0.05), "moderate"), ((0.01, 0.01, 0.23, 0.8), "high")]
    got = decision.tier(*(np.array([c[0][k] for c in cases]) for k in range(4)))
    assert got.tolist() == [c[1] for c in cases]
