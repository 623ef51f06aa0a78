"""ct-spine-v1 training and evaluation: observables only, the manifest in the CtModelManifest format, phase offset
and T-score fits recover known values, the analyser error model, and predictions recomputed from the saved files."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from frcds.ct import cohort, evaluate, train
from frcds.model2.mixture import gh
from frcds.model2.observables import HiddenVariableError, ObservableTable

CFG = {
    "id": "ct-spine-test", "version": "0.0.1", "name": "test", "use_statement": "test only",
    "model": {"members": 4, "seed": 1, "grade_l2": 0.001, "dxa_precision_sd": 0.12, "dxa_max_age_years": 2,
              "phase": {"min_phase_n": 30, "unknown_contrast_share": 0.5,
                        "fallback_offsets_hu": {"non-contrast": 0, "arterial": 5, "portal-venous": 10, "delayed": 10}}},
    "uncertainty": {"gauss_hermite_nodes": 8}, "limitations": [], "references": [],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctc")
    obs, truth = cohort.build(31, "A", 1500, cohort.ASSUMED_ERROR_MODEL)
    cohort.save(str(d / "train"), obs, truth, {})
    obs, truth = cohort.build(32, "A", 600, cohort.ASSUMED_ERROR_MODEL)
    cohort.save(str(d / "test"), obs, truth, {})
    return d


def test_cohort_is_a_function_of_seed_site_index():
    a = cohort.simulate_ct_patient(5, "B", 7)
    b = cohort.simulate_ct_patient(5, "B", 7)
    assert a.obs == b.obs and a.truth["true_risk10_mof"] == b.truth["true_risk10_mof"]
    assert a.obs["vendor"] == "B" and a.obs["site"] == "B"
    assert cohort.simulate_ct_patient(5, "B", 8).obs["patient_id"] != a.obs["patient_id"]


def test_observables_exclude_the_truth(small):
    tab = cohort.load_observables(str(small / "train"))
    assert not set(cohort.HIDDEN_COLUMNS) & set(tab)
    with pytest.raises(HiddenVariableError):
        tab["bmd_t"]
    with pytest.raises(KeyError):
        tab["true_grade"]


def _fitted(directory) -> dict:
    man = train.manifest(CFG, train.train(CFG, cohort.load_observables(str(directory))))
    man["training_data"].pop("seconds")
    return man


def test_training_never_reads_the_truth(small, monkeypatch, tmp_path):
    base = _fitted(small / "train")
    # the same training with the truth file poisoned (every hidden value replaced) and with it gone
    t = cohort.load_truth(str(small / "train"))
    rng = np.random.default_rng(0)
    poisoned = {k: (rng.permutation(v) if k != "patient_id" else v) for k, v in t.items()}
    np.savez(str(small / "train" / "truth.npz"), **poisoned)
    assert _fitted(small / "train") == base
    opened: list[str] = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **k: (opened.append(str(f)), real(f, *a, **k))[1])
    os.remove(small / "train" / "truth.npz")
    assert _fitted(small / "train") == base
    assert opened and not any("truth" in p for p in opened)
    np.savez(str(small / "train" / "truth.npz"), **t)


def test_manifest_format(small):
    man = train.manifest(CFG, train.train(CFG, cohort.load_observables(str(small / "train"))))
    assert man["kind"] == "ct-spine" and man["synthetic_training_data"] is True and man["not_for_clinical_use"]
    tf = man["tscore_from_hu"]
    assert set(tf["phase_offset_hu"]) == {"non-contrast", "arterial", "portal-venous", "delayed", "unknown"}
    assert tf["phase_offset_hu"]["non-contrast"] == 0 and tf["slope"] > 0 and tf["sd"] > 0
    rm = man["risk_model"]
    assert rm["kind"] == "tscore-mediated" and len(rm["members"]) == 4
    g = rm["baseline_cumulative_hazard"]["grid_years"]
    assert g[0] == 0 and g[-1] == 10
    for o in ("hip", "mof"):
        h = np.array(rm["baseline_cumulative_hazard"][o])
        assert len(h) == len(g) and h[0] == 0 and np.all(np.diff(h) >= 0) and h[-1] > 0
        for m in rm["members"]:
            assert len(m["fracture"][o]) == 4 and m["fracture"][o][0] == 0
            assert m["tscore"][o] < 0 and m["clinical"][o] > 0
    json.dumps(man, allow_nan=False)


def _table(n: int, rng, phase: np.ndarray, hu: np.ndarray, dxa: np.ndarray) -> ObservableTable:
    return ObservableTable({"ct_hu": hu, "ct_phase": phase, "age": rng.uniform(50, 90, n),
                            "sex": rng.integers(0, 2, n), "contrast_agent_recorded": phase == "portal-venous",
                            "dxa_t": dxa})


def test_phase_offset_and_tscore_fit_recover_known_values():
    rng = np.random.default_rng(4)
    n = 20000
    t = rng.normal(-1, 1, n)
    phase = np.where(rng.random(n) < 0.4, "portal-venous", np.where(rng.random(n) < 0.5, "non-contrast", "unknown"))
    hu = 199 + 30 * t + 40 * rng.normal(size=n) + np.where(phase == "portal-venous", 12.0, 0.0) + \
        np.where(phase == "unknown", 6.0, 0.0)
    tab = _table(n, rng, phase, hu, t)
    ph = train.fit_phase_offsets(tab, CFG["model"]["phase"])
    assert ph["offsets"]["portal-venous"] == pytest.approx(12.0, abs=3.0)
    assert ph["offsets"]["unknown"] == pytest.approx(6.0, abs=3.0)
    assert ph["offsets"]["arterial"] == 5 and "fallback" in ph["how"]["arterial"]
    ts = train.fit_tscore(tab, train.adjusted_hu(tab, ph["offsets"]), ph, CFG["model"]["phase"])
    # T | HU is the regression of the simulated relation: slope 30 var(T) / (900 var(T) + 1600)
    assert ts["slope"] == pytest.approx(30 / 2500, rel=0.1)
    assert ts["sd"] == pytest.approx(math.sqrt(1 - 900 / 2500), rel=0.1)


def test_error_model_fit_and_draws():
    pts = [cohort.simulate_ct_patient(41, "A", i) for i in range(120)]
    meas = []
    for p in pts:
        m = cohort.apply_error_model(cohort.ASSUMED_ERROR_MODEL, p, 41, "A", pts.index(p))
        meas.append(m)
    again = [cohort.apply_error_model(cohort.ASSUMED_ERROR_MODEL, p, 41, "A", i) for i, p in enumerate(pts)]
    assert [m["ct_grade"] for m in meas] == [m["ct_grade"] for m in again]
    em = cohort.fit_error_model([p.truth for p in pts], [p.obs for p in pts], meas)
    ok = [(p, m) for p, m in zip(pts, meas) if math.isfinite(m["ct_hu"])]
    assert em["hu_error"]["soft"]["sd"] == pytest.approx(6.0, rel=0.35)
    assert all(not m["ct_morphometry"] for p, m in ok if p.obs["slice_thickness"] > 2.5)
    assert em["morphometry_available"]["thick"] == 0.0
    assert np.allclose(np.sum(em["grade_confusion"], 1), 1.0)


def test_findings_observation_reads_measure_cli_lines():
    ref = cohort.findings_observation({"study": "x", "refusal": {"code": "too-thick", "reason": "r"}})
    assert ref["ct_status"] == "too-thick" and math.isnan(ref["ct_hu"]) and ref["ct_grade"] == 0
    f = {"attenuation": {"level": "T12", "medianHu": 101.5, "phase": "portal-venous"}, "morphometry": [],
         "worstGrade": 2}
    ok = cohort.findings_observation({"study": "x", "findings": f})
    assert ok == {"ct_status": "ok", "ct_hu": 101.5, "ct_phase": "portal-venous", "ct_level": "T12",
                  "ct_morphometry": True, "ct_grade": 2}


def test_predictions_round_trip_and_match_the_manifest(small, tmp_path):
    man = train.manifest(CFG, train.train(CFG, cohort.load_observables(str(small / "train"))))
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    p = evaluate.predict(man, str(small / "test"))
    path = str(tmp_path / "predictions" / "test-site-a.csv.gz")
    evaluate.write_predictions(path, p)
    back = evaluate.read_predictions(path)
    np.testing.assert_allclose(back["pred_mof"], p["pred_mof"], rtol=1e-5)
    assert np.all(back["pred_mof"] >= back["pred_hip"] - 1e-9) and np.all(back["lo_mof"] <= back["hi_mof"])
    # one patient by hand: Gauss-Hermite mean of 1 - exp(-H0(10) exp(eta)) over members x nodes
    i = int(np.flatnonzero(back["t_source"] == "ct")[0])
    rm = man["risk_model"]
    x, w = gh(8)
    clin = math.log(-math.log(1 - back["qf_risk10_mof"][i] / 100))
    clin_h = math.log(-math.log(1 - back["qf_risk10_hip"][i] / 100))
    g = int(back["ct_grade"][i])
    tot = 0.0
    for m in rm["members"]:
        t = back["t_mean"][i] + back["t_sd"][i] * x
        hip = rm["baseline_cumulative_hazard"]["hip"][-1] * np.exp(
            m["intercept"]["hip"] + m["clinical"]["hip"] * clin_h + m["fracture"]["hip"][g] + m["tscore"]["hip"] * t)
        mof = rm["baseline_cumulative_hazard"]["mof"][-1] * np.exp(
            m["intercept"]["mof"] + m["clinical"]["mof"] * clin + m["fracture"]["mof"][g] + m["tscore"]["mof"] * t)
        tot += float(np.sum(w * -np.expm1(-np.maximum(mof, hip)))) / len(rm["members"])
    assert back["pred_mof"][i] == pytest.approx(tot, rel=1e-4)
    ev = evaluate.report(str(tmp_path), {"test-site-a": str(small / "test")}, 5, 1)
    r = ev["sets"]["test-site-a"]["overall"]["mof"]
    assert 0.5 < r["c_fused"] <= 1 and 0 <= r["coverage_true_risk"] <= 1 and "mof_c_gain_ge_0.03" in ev["targets"]
