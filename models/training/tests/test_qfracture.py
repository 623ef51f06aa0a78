"""QFracture-2012 implementation against ClinRisk's five reference outputs (coefficients.json)."""
import pytest

from frcds import qfracture as q

CASES = q.coefficients()["reference_outputs"]["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
@pytest.mark.parametrize("outcome,key", [("mof", "fracture4"), ("hip", "nof")])
def test_reference_outputs(case, outcome, key):
    inputs = case["inputs"]
    got = q.risk(outcome, inputs["sex"], inputs)
    # expected values are ClinRisk's output rounded to 6 dp; 1e-4 percentage points is the agreed tolerance
    assert abs(got - case["expected_risk_percent_surv10_6dp"][key]) < 1e-4


def test_risk_from_lp_matches_risk():
    i = CASES[1]["inputs"]
    lp = q.linear_predictor("hip", "female", i)
    assert q.risk_from_lp(lp, "hip", "female", 10) == pytest.approx(q.risk("hip", "female", i))
    # risk grows with the horizon
    assert q.risk("hip", "female", i, 5) < q.risk("hip", "female", i, 10) < q.risk("hip", "female", i, 18)


@pytest.mark.parametrize("field,value", [("age", 29), ("age", 101), ("bmi", 19.999), ("bmi", 40.0001),
                                         ("ethrisk", 0), ("ethrisk", 10), ("smoke_cat", 5), ("alcohol_cat6", 6),
                                         ("age", 65.5)])
def test_out_of_range_inputs_raise(field, value):
    i = dict(CASES[0]["inputs"])
    i[field] = value
    with pytest.raises(q.QFractureInputError):
        q.risk("hip", i["sex"], i)


def test_bad_horizon_and_outcome():
    i = CASES[0]["inputs"]
    with pytest.raises(q.QFractureInputError):
        q.risk("hip", "female", i, 19)
    with pytest.raises(q.QFractureInputError):
        q.risk("wrist", "female", i)


def test_equations_ignore_booleans_they_do_not_list():
    i = dict(CASES[0]["inputs"])  # a woman: the women's equations have no care-home term
    base = q.linear_predictor("mof", "female", i)
    i["b_carehome"] = 1
    assert q.linear_predictor("mof", "female", i) == base
    i["b_falls"] = 1
    assert q.linear_predictor("mof", "female", i) > base


def test_coefficients_located_relative_to_package():
    assert q.COEFFICIENTS_PATH.is_file()
    assert q.COEFFICIENTS_PATH.parent.name == "qfracture-2012"
