"""The hip-xray-v2 pipeline end to end on small fake cohorts (planted image signal, FHIR charts with DXA): the
artefact is complete, the manifest is schema 2.0.0 with the contract's keys, the ONNX graph run by onnxruntime-node
agrees with PyTorch on the parity fixtures, and the predictions files have the contract's columns with MOF >= hip."""
from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from test_model2_observables import TINY, write_cohort
from test_model_pipeline import ort_check

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(TRAINING))
CONTRACT_COLUMNS = (
    "patient_id", "site", "split", "time_hip", "event_hip", "time_mof", "event_mof", "true_risk10_hip",
    "true_risk10_mof", "bmd_t_true", "qf10_hip", "qf10_mof", "pred10_hip", "lo10_hip", "hi10_hip", "pthr_hip",
    "pred10_mof", "lo10_mof", "hi10_mof", "pthr_mof", "tscore_mean", "tscore_sd", "tscore_lo", "tscore_hi",
    "dxa_tscore", "ood_distance", "ood_flag", "low_confidence", "tier", "image_kind")


@pytest.fixture(scope="module")
def artefact(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    write_cohort(str(root / "a"), 140, 21)
    write_cohort(str(root / "b"), 50, 22)
    write_cohort(str(root / "fa"), 40, 23)
    write_cohort(str(root / "fb"), 30, 24)
    cfg = dict(TINY, pipeline="v2", cohort={"site_a": {"patients": 140, "seed": 1}, "site_b": {"patients": 50,
                                                                                          "seed": 2},
                                            "fresh_site_a": {"patients": 40, "seed": 5},
                                            "fresh_site_b": {"patients": 30, "seed": 6}},
               ood=dict(TINY["ood"], aug_strength_grid=[0.5, 1.0], max_other_vendor_flagged=0.5),
               uncertainty=dict(TINY["uncertainty"], unmeasured_log_hazard_sd=0.3,
                                unmeasured_log_hazard_note="test prior"),
               split={"train": 70, "val": 35, "seed": 3}, ensemble={"members": 2, "seed": 10, "bootstrap": True},
               evaluation={"bootstrap": 3, "seed": 7}, parity={"dicom_files": 2}, limitations=["test"],
               risk=dict(TINY["risk"], recalibration="validation-cox-slope-intercept"))
    with open(root / "cfg.json", "w") as f:
        json.dump(cfg, f)
    out = root / "out"
    r = subprocess.run([sys.executable, os.path.join(TRAINING, "train.py"), "--config", str(root / "cfg.json"),
                        "--work", str(root / "work"), "--out", str(out), "--cohort-a", str(root / "a"),
                        "--cohort-b", str(root / "b"), "--cohort-fresh-a", str(root / "fa"),
                        "--cohort-fresh-b", str(root / "fb")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return str(out)


def test_artefact_files_and_manifest(artefact):
    for f in ("model.onnx", "manifest.json", "evaluation.json", "MODEL_CARD.md", "parity/fixtures.json",
              "predictions/site_a_test.csv.gz", "predictions/site_b_test.csv.gz", "predictions/split.json"):
        assert os.path.exists(os.path.join(artefact, f)), f
    with open(os.path.join(artefact, "manifest.json")) as f:
        man = json.load(f)
    assert man["schema_version"] == "2.0.0"
    assert man["risk_model"]["kind"] == "tscore-mediated"
    assert [o["name"] for o in man["outputs"]] == ["base_log_hazard", "tscore", "cam", "ood_distance"]
    m = man["ensemble"]["members"]
    assert all(len(man["risk_model"]["tscore_coefficient_per_member"][o]) == m for o in ("hip", "mof"))
    cal = man["tscore_head"]["calibration"]
    assert cal["slope"] > 0 and cal["sd_scale"] > 0 and cal["version"]
    assert man["uncertainty"]["gauss_hermite_nodes"] == TINY["uncertainty"]["gauss_hermite_nodes"]
    assert man["uncertainty"]["low_confidence"]["max_log_hazard_sd"] > 0
    assert set(man["uncertainty"]["low_confidence"]["sd_reference"]) == {"hip", "mof"}
    assert man["training_data"]["observables_only"] is True
    # the validation recalibration is recorded with its fitted numbers, and the card states it
    rc = man["risk_model"]["recalibration"]
    assert rc["rule"].startswith("eta' = a_k + b_k * eta")
    assert all(0.2 <= rc[o]["slope"] <= 2.0 and np.isfinite(rc[o]["intercept"]) for o in ("hip", "mof"))
    with open(os.path.join(artefact, "MODEL_CARD.md"), encoding="utf-8") as f:
        assert "Risk recalibration on the site-A validation outcomes" in f.read()
    g = onnx.load(os.path.join(artefact, "model.onnx"))
    assert [o.name for o in g.graph.output] == ["base_log_hazard", "tscore", "cam", "ood_distance"]
    assert [i.name for i in g.graph.input] == ["image", "clinical"]


def test_onnx_runtime_matches_pytorch(artefact):
    diff = ort_check(os.path.join(artefact, "model.onnx"), os.path.join(artefact, "parity"))
    assert set(diff) == {"base_log_hazard", "tscore", "cam", "ood_distance"}
    for name, d in diff.items():
        assert d["shape"] == d["expectedShape"], name
        with open(os.path.join(artefact, "parity", "fixtures.json")) as f:
            meta = json.load(f)["model"]["expected"][name]
        want = np.fromfile(os.path.join(artefact, "parity", meta["file"]), dtype="<f4")
        scale = 1.0 if name in ("base_log_hazard", "tscore") else max(1.0, float(np.abs(want).max()))
        assert d["maxAbs"] / scale <= 1e-4, (name, d)
    sd = np.fromfile(os.path.join(artefact, "parity", meta["file"].replace("ood_distance", "tscore")), dtype="<f4")
    assert (sd.reshape(-1, 2)[:, 1] > 0).all()                     # raw sd is positive
    with open(os.path.join(artefact, "parity", "fixtures.json")) as f:
        risk = json.load(f)["risk"]
    n_rows = len(sd) // 4
    assert len(risk["image"]) == len(risk["dxa"]) == n_rows
    for row in risk["image"] + risk["dxa"]:
        assert row["hip"]["lo"] <= row["hip"]["pred"] <= row["hip"]["hi"]
        assert row["mof"]["pred"] >= row["hip"]["pred"] and 0 <= row["hip"]["pthr"] <= 1


def test_predictions_have_the_contract_columns(artefact):
    for name, n in (("site_a_test", 140 - 70 - 35), ("site_b_test", 50)):
        with gzip.open(os.path.join(artefact, "predictions", f"{name}.csv.gz"), "rt") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n
        assert set(CONTRACT_COLUMNS) <= set(rows[0])
        for r in rows:
            for k in ("pred10", "lo10", "hi10"):
                assert float(r[f"{k}_mof"]) >= float(r[f"{k}_hip"]) - 1e-12
            assert float(r["lo10_hip"]) <= float(r["pred10_hip"]) <= float(r["hi10_hip"])
            assert r["tier"] in ("low", "moderate", "high") and r["image_kind"] in ("clean", "artefact")
            if r["dxa_used"] == "1":
                assert float(r["dxa_years_before"]) <= TINY["tscore"]["dxa_max_age_years"]
    with open(os.path.join(artefact, "predictions", "split.json")) as f:
        split = json.load(f)
    assert len(split["site_a"]["test"]) == 35 and len(split["site_b"]["test"]) == 50
    assert not set(split["site_a"]["test"]) & set(split["site_a"]["train"])


def test_ood_strength_chosen_on_validation_by_the_stated_rule(artefact):
    with open(os.path.join(artefact, "manifest.json")) as f:
        choice = json.load(f)["ood"]["choice"]
    cands = choice["candidates"]
    # every strength of the grid with the quality statistics off and on, each scored on validation stand-ins
    assert sorted({(c["aug_strength"], c["quality_stats"]) for c in cands}) == [(0.5, False), (0.5, True),
                                                                               (1.0, False), (1.0, True)]
    ok = [c for c in cands if c["other_vendor_flagged_validation"] <= 0.5] or cands
    best = max(ok, key=lambda c: (c["artefact_auroc_validation"], c["aug_strength"]))
    assert (choice["aug_strength"], choice["quality_stats"]) == (best["aug_strength"], best["quality_stats"])
    assert "validation artefact AUROC" in choice["rule"]


def test_unmeasured_term_in_manifest_and_intervals(artefact):
    with open(os.path.join(artefact, "manifest.json")) as f:
        unc = json.load(f)["uncertainty"]
    assert unc["unmeasured_log_hazard_sd"] == 0.3 and unc["unmeasured_log_hazard_note"] == "test prior"
    assert "unmeasured-determinants" in unc["interval"]


def test_fresh_cohorts_are_evaluated_whole(artefact):
    for name, n in (("site_a_test", 40), ("site_b_test", 30)):
        with gzip.open(os.path.join(artefact, "predictions", "fresh", f"{name}.csv.gz"), "rt") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n and {r["split"] for r in rows} == {"fresh"}
    with open(os.path.join(artefact, "predictions", "fresh", "split.json")) as f:
        split = json.load(f)
    assert len(split["site_a"]["test"]) == 40 and len(split["site_b"]["test"]) == 30
    with open(os.path.join(artefact, "evaluation.json")) as f:
        ev = json.load(f)
    assert ev["fresh"]["cohorts"]["site_a"] == {"patients": 40, "seed": 5}
    assert ev["fresh"]["sets"]["test_site_a"] == 40 and "site_a_served" in ev["fresh"]
