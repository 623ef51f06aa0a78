"""DXA results (frcds.cohort.dxa): who has one, when, and the measurement error against the true T-score."""
from __future__ import annotations

import datetime as dt

import numpy as np

from frcds.cohort import dxa
from frcds.cohort.bone import T_LOSS_PER_YEAR, sample_bone
from frcds.cohort.population import sample_person

INDEX = dt.date(2026, 11, 1)


def _draw(n: int, seed: int = 4) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = sample_person(rng, "A")
        b = sample_bone(p, rng)
        frac = bool(p.prior_fractures)
        out.append((p, b, frac, dxa.sample_dxa(p, b, INDEX, frac, rng)))
    return out


def test_about_a_third_have_a_dxa_result_and_more_women_than_men():
    rows = _draw(4000)
    share = np.mean([d is not None for *_, d in rows])
    assert 0.25 <= share <= 0.40, share
    women = np.mean([d is not None for p, *_, d in rows if p.sex == "female"])
    men = np.mean([d is not None for p, *_, d in rows if p.sex == "male"])
    assert women > men + 0.1


def test_measurement_error_is_the_dxa_precision_and_unbiased():
    rows = [(p, b, d) for p, b, _, d in _draw(4000) if d is not None]
    err = np.array([d.t_score - d.true_t for _, _, d in rows])
    # precision 0.015 g/cm² ≈ 0.11–0.13 T units, plus the T-score's rounding to 0.1 (SD 0.029)
    assert abs(err.mean()) < 0.015, err.mean()
    assert 0.10 < err.std() < 0.16, err.std()
    for p, b, d in rows:
        assert np.isclose(d.true_t, b.bmd_t + T_LOSS_PER_YEAR[p.sex] * d.years_before_index)
        assert d.true_t >= b.bmd_t                                  # bone is lost between the scan and the index date
        assert dxa.MIN_DAYS_BEFORE <= (INDEX - d.date).days <= dxa.MAX_YEARS_BEFORE * 365.25 + 1
        assert d.t_score == round(d.t_score, 1) and d.bmd_g_cm2 == round(d.bmd_g_cm2, 3)
        assert str(d.t_score) != "-0.0"


def test_same_draws_whether_or_not_a_scan_is_charted():
    """Four draws every time, so the stream's position after a patient does not depend on the outcome."""
    p, b, _, _ = _draw(1)[0]
    for has in (0.0, 1.0):
        rng = np.random.default_rng(1)
        orig = dxa.P_DXA.copy()
        try:
            dxa.P_DXA.update({k: has for k in dxa.P_DXA})
            dxa.sample_dxa(p, b, INDEX, False, rng)
        finally:
            dxa.P_DXA.update(orig)
        ref = np.random.default_rng(1)
        ref.random(3)
        ref.normal()
        assert rng.random() == ref.random()
