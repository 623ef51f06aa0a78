"""A synthetic chart never records a condition the patient's sex cannot have (prostate cancer in a woman), and the
rule changes nothing for draws that already fit (so existing cohorts keep their charts)."""
import numpy as np

from frcds.cohort import fhir, valuesets as vsets

CANCER = vsets.qf_valueset_id("b_anycancer")


def test_sex_specific_codes_follow_sex():
    rng = np.random.default_rng(7)
    female = {fhir._pick(rng, CANCER, "female").code for _ in range(400)}
    male = {fhir._pick(rng, CANCER, "male").code for _ in range(400)}
    assert "399068003" not in female and "254837009" in female
    assert "254837009" not in male and "399068003" in male


def test_fitting_draws_are_unchanged():
    for seed in range(200):
        plain = fhir._pick(np.random.default_rng(seed), CANCER)
        for sex in ("female", "male"):
            if fhir.SEX_SPECIFIC_CODES.get(plain.code, sex) == sex:
                assert fhir._pick(np.random.default_rng(seed), CANCER, sex) == plain
