"""Smoke run of the WHOLE training pipeline (`train.py --config configs/smoke.json`) on a tiny cohort made by the real
generator: every stage runs, the artefact it writes is complete and self-consistent, the manifest validates against
models/manifest.schema.json, and the ONNX graph run by onnxruntime-node (the service's runtime) agrees with PyTorch."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time

import jsonschema
import numpy as np
import onnx
import pytest

from frcds.model.export import sha256
from frcds.model.manifest import SCHEMA_PATH

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(TRAINING))


def ort_check(model: str, parity_dir: str) -> dict:
    if shutil.which("node") is None:
        pytest.fail("node is required: the ONNX parity check runs onnxruntime-node")
    r = subprocess.run(["node", os.path.join(HERE, "ort_check.mjs"), model, parity_dir], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_parity(model: str, parity_dir: str) -> None:
    with open(os.path.join(parity_dir, "fixtures.json")) as f:
        fx = json.load(f)
    diff = ort_check(model, parity_dir)
    for name, d in diff.items():
        assert d["shape"] == d["expectedShape"], name
        want = np.fromfile(os.path.join(parity_dir, fx["model"]["expected"][name]["file"]), dtype="<f4")
        # log-hazards 1e-4 absolute; CAM values and OOD distances (sums of many float32 products, O(10-1000)):
        # 1e-4 relative to the largest expected value of that output (same rule as test/model-parity.test.ts)
        scale = 1.0 if name == "log_hazard" else max(1.0, float(np.abs(want).max()))
        assert d["maxAbs"] / scale <= 1e-4, (name, d)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    out = work / "out"
    t0 = time.time()
    r = subprocess.run([sys.executable, os.path.join(TRAINING, "train.py"), "--config",
                        "models/training/configs/smoke.json", "--work", str(work), "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    print(f"smoke pipeline: {elapsed:.0f} s")
    return {"out": str(out), "stdout": r.stdout, "elapsed": elapsed}


def test_smoke_writes_a_complete_artefact(smoke):
    out = smoke["out"]
    for f in ("model.onnx", "manifest.json", "evaluation.json", "MODEL_CARD.md", "calibration.png",
              "discrimination.png", "ood.png", "cam_examples.png", "parity/fixtures.json"):
        assert os.path.exists(os.path.join(out, f)), f
    assert "pipeline finished" in smoke["stdout"]
    card = open(os.path.join(out, "MODEL_CARD.md")).read()
    assert "SYNTHETIC" in card and "Must-show targets" in card


def test_smoke_manifest_validates_and_describes_the_file(smoke):
    man = json.load(open(os.path.join(smoke["out"], "manifest.json")))
    schema = json.load(open(SCHEMA_PATH))
    jsonschema.validate(man, schema)
    assert man["onnx"]["sha256"] == sha256(os.path.join(smoke["out"], "model.onnx"))
    assert man["synthetic_training_data"] is True and man["not_for_clinical_use"] is True
    from frcds import preprocess
    assert man["preprocessing"] == json.loads(json.dumps(preprocess.RECIPE))
    bh = man["risk_model"]["baseline_cumulative_hazard"]
    assert len(bh["grid_years"]) == 121 and bh["grid_years"][-1] == 10
    assert all(np.diff(bh["hip"]) >= 0) and all(np.diff(bh["mof"]) >= 0)
    # the schema is not vacuous: a manifest without its hash, or claiming real training data, is rejected
    bad = copy.deepcopy(man)
    del bad["onnx"]["sha256"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = copy.deepcopy(man)
    bad["synthetic_training_data"] = False
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_smoke_onnx_is_one_dynamic_batch_graph_within_opset_17(smoke):
    m = onnx.load(os.path.join(smoke["out"], "model.onnx"))
    onnx.checker.check_model(m)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) <= 17
    assert [i.name for i in m.graph.input] == ["image", "clinical"]
    assert [o.name for o in m.graph.output] == ["log_hazard", "cam", "ood_distance"]
    for v in list(m.graph.input) + list(m.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch", v.name
    man = json.load(open(os.path.join(smoke["out"], "manifest.json")))
    lh = [o for o in man["outputs"] if o["name"] == "log_hazard"][0]
    assert lh["shape"][1] == man["ensemble"]["members"]


def test_smoke_onnx_runtime_matches_pytorch(smoke):
    assert_parity(os.path.join(smoke["out"], "model.onnx"), os.path.join(smoke["out"], "parity"))


def test_smoke_evaluation_covers_every_model_metric_and_set(smoke):
    ev = json.load(open(os.path.join(smoke["out"], "evaluation.json")))
    for s in ("test", "site_b"):
        for o in ("hip", "mof"):
            for m in ("fused", "image", "clinical", "oracle"):
                for k in ("harrell_c10", "uno_c10", "auc_2y", "auc_5y", "auc_10y", "ibs_10y", "calibration_slope",
                          "calibration_intercept", "coverage_95"):
                    assert k in ev[s][o][m], (s, o, m, k)
    assert ev["graph_consistency"]["max_abs_log_hazard"] < 1e-4
    assert set(ev["must_show"]) >= {"fused_c_ge_clinical_plus_0.03", "calibration_slope_0.9_1.1",
                                     "coverage_0.90_0.98", "ood_non_hip_auroc_ge_0.95", "cam_mass_median_ge_0.6"}
    assert ev["ood"]["non_hip"]["n"] > 0 and ev["ood"]["threshold"] > 0
    # the tiny smoke test set leaves some sex/age groups under the 20-patient floor; site groups are always there
    groups = ev["subgroups"]["hip"]
    assert {"site=A (test)", "site=B"} <= set(groups)
    assert any(g.startswith("sex=") for g in groups) and any(g.startswith("age=") for g in groups)
    assert all(r["n"] >= 20 for r in groups.values())
