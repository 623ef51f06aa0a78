"""CT cohort outcomes: the prevalent-fracture hazard ratios are the fixed ones and are applied on top of the hip
cohort's simulation without changing it otherwise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from frcds.cohort.bone import sample_bone
from frcds.cohort.outcomes import simulate
from frcds.cohort.population import sample_person
from frcds.ct.outcomes import HR_HIP, HR_MOF, fracture_log_hr, simulate_ct_outcome


def _person(seed: int):
    rng = np.random.default_rng(seed)
    p = sample_person(rng, "A")
    return p, sample_bone(p, rng)


def test_fixed_hazard_ratios():
    assert HR_MOF == (1.0, 1.8, 2.4, 3.2) and HR_HIP == (1.0, 1.4, 1.8, 2.3)
    assert fracture_log_hr(0) == (0.0, 0.0)
    assert fracture_log_hr(3) == pytest.approx((math.log(2.3), math.log(3.2)))
    with pytest.raises(ValueError):
        fracture_log_hr(4)


def test_grade_zero_is_the_hip_cohort_outcome():
    p, b = _person(3)
    a = simulate(p, b, np.random.default_rng(9), age_years=70)
    c = simulate_ct_outcome(p, b, 0, np.random.default_rng(9), age_years=70)
    assert a == c


@pytest.mark.parametrize("grade", [1, 2, 3])
def test_hip_cumulative_hazard_scales_by_the_grade_hazard_ratio(grade):
    p, b = _person(11)
    a = simulate_ct_outcome(p, b, 0, np.random.default_rng(5), age_years=72)
    f = simulate_ct_outcome(p, b, grade, np.random.default_rng(5), age_years=72)
    h0 = -np.log1p(-np.array(a.true_risk_hip))
    h1 = -np.log1p(-np.array(f.true_risk_hip))
    np.testing.assert_allclose(h1 / h0, HR_HIP[grade], rtol=1e-9)
    assert f.predictors.true_lp_mof - a.predictors.true_lp_mof == pytest.approx(math.log(HR_MOF[grade]))
    # the latent event times can only come earlier with the same draws
    assert f.t_hip <= a.t_hip and f.t_mof <= a.t_mof
