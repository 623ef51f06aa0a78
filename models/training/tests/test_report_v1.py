"""v1 predictions: the ONNX runner reproduces v1's stored outputs, the derived numbers equal the service's own
(server/risk/survival.ts and decision.ts run in Node on the same log-hazards), and the predictions file round-trips
and refuses malformed input."""
from __future__ import annotations

import gzip
import json
import os
import subprocess

import numpy as np
import pytest

from frcds.report import v1
from frcds.report.predictions import COLUMNS, PredictionsFormatError, read_predictions, write_predictions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
V1 = os.path.join(REPO, "models", "hip-xray-v1")


def _manifest() -> dict:
    with open(os.path.join(V1, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def _f32(name: str, shape) -> np.ndarray:
    return np.fromfile(os.path.join(V1, "parity", name), dtype=np.float32).reshape(shape)


def test_run_onnx_reproduces_the_parity_fixtures_in_small_batches():
    fx = json.load(open(os.path.join(V1, "parity", "fixtures.json"), encoding="utf-8"))["model"]
    inputs = {k: _f32(m["file"], m["shape"]) for k, m in fx["inputs"].items()}
    out = v1.run_onnx(os.path.join(V1, "model.onnx"), inputs, batch=4)   # 9 rows: batches of 4, 4, 1
    for k in ("log_hazard", "ood_distance"):
        want = _f32(fx["expected"][k]["file"], fx["expected"][k]["shape"])
        assert out[k].shape == want.shape
        assert np.abs(out[k] - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


SERVICE_SCRIPT = """
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const repo = process.argv[2];
const { spread, compositeRisksAt } = await import(pathToFileURL(repo + '/server/risk/survival.ts').href);
const { decide, DECISION_DEFAULTS } = await import(pathToFileURL(repo + '/server/risk/decision.ts').href);
const man = JSON.parse(readFileSync(repo + '/models/hip-xray-v1/manifest.json', 'utf8'));
const rows = JSON.parse(readFileSync(0, 'utf8'));
const u = man.uncertainty, bch = man.risk_model.baseline_cumulative_hazard, grid = bch.grid_years;
const settings = { tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, decisionProbability: 0.8, guideline: DECISION_DEFAULTS.guideline };
const h10 = (o) => bch[o][bch[o].length - 1];
const out = rows.map((r) => {
  const sp = { hip: spread(r.hip, u.interval_factor.hip, u.z, u.sd_ddof), mof: spread(r.mof, u.interval_factor.mof, u.z, u.sd_ddof) };
  const terms = { hip: [{ grid, h0: bch.hip, spread: sp.hip }], mof: [{ grid, h0: bch.mof, spread: sp.mof }, { grid, h0: bch.hip, spread: sp.hip }] };
  const comp = (o) => terms[o].map((t, i) => ({ h0: h10(i === 0 ? o : 'hip'), eta: t.spread.etaMean, s: u.interval_factor[i === 0 ? o : 'hip'] * t.spread.sd }));
  const hip = compositeRisksAt(terms.hip, [10])[0], mof = compositeRisksAt(terms.mof, [10])[0];
  const d = decide({ hip: { risk10: hip.risk, components: comp('hip') }, mof: { risk10: mof.risk, components: comp('mof') } }, settings);
  return { hip, mof, pHip: d.decision.hip.probabilityAbove, pMof: d.decision.mof.probabilityAbove, tier: d.tier };
});
console.log(JSON.stringify(out));
"""


def test_v1_numbers_equal_the_services(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    # member log-hazards around v1's range, some MOF heads below hip (MOF raised to hip), some wide spreads
    hip = rng.normal(1.0, 1.3, n)[:, None] + rng.normal(0, 1, (n, 1)) * np.abs(rng.normal(0, 0.5, (n, 5)))
    mof = rng.normal(0.3, 0.9, n)[:, None] + rng.normal(0, 0.4, (n, 5))
    lh = np.stack([hip, mof], axis=2).astype(np.float32).astype(np.float64)
    m = _manifest()
    got = v1.v1_outputs(m, lh, np.full(n, 1.0), np.full(n, 0.01), np.full(n, 0.05))
    script = tmp_path / "service_numbers.mts"
    script.write_text(SERVICE_SCRIPT)
    rows = [{"hip": lh[i, :, 0].tolist(), "mof": lh[i, :, 1].tolist()} for i in range(n)]
    r = subprocess.run(["node", "--import", "tsx", str(script), REPO], input=json.dumps(rows), capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    svc = json.loads(r.stdout)
    for k in ("hip", "mof"):
        for col, key in (("pred10", "risk"), ("lo10", "lower"), ("hi10", "upper")):
            assert got[f"{col}_{k}"] == pytest.approx([s[k][key] for s in svc], rel=1e-12, abs=1e-15)
    assert got["pthr_hip"] == pytest.approx([s["pHip"] for s in svc], abs=1e-12)
    assert got["pthr_mof"] == pytest.approx([s["pMof"] for s in svc], abs=1e-12)
    assert got["tier"].tolist() == [s["tier"] for s in svc]
    raised = got["pred10_mof"] > 1 - np.exp(-m["risk_model"]["baseline_cumulative_hazard"]["mof"][-1] * np.exp(lh[:, :, 1].mean(1))) + 1e-12
    assert raised.any() and (~raised).any(), "the sample must exercise both sides of the MOF >= hip rule"
    assert len(set(got["tier"].tolist())) == 3


def test_v1_ood_flag_low_confidence_and_clinical_only_tier():
    m = _manifest()
    thr = m["ood"]["threshold"]
    calm = np.zeros((4, 5, 2))
    calm[:, :, 0] = 2.5                                    # hip ~12 %: high with certainty when in distribution
    wild = calm.copy()
    wild[1, :, 0] = [0.5, 1.5, 2.5, 3.5, 4.5]              # member sd 1.58 > 0.9
    dist = np.array([0.5 * thr, 0.5 * thr, 0.97 * thr, 1.01 * thr])
    qh = np.array([0.01, 0.01, 0.01, 0.01])                # QFracture alone: low
    out = v1.v1_outputs(m, wild, dist, qh, np.array([0.05, 0.05, 0.05, 0.05]))
    assert out["ood_flag"].tolist() == [False, False, False, True]
    assert out["low_confidence"].tolist() == [False, True, True, False]
    assert out["tier"][0] == "high" and out["tier"][3] == "low"       # flagged: the clinical-only risk decides
    assert out["pred10_hip"][3] == pytest.approx(out["pred10_hip"][0])  # the model's output is still recorded


def _table(n: int = 3) -> dict:
    t = {c: np.linspace(0.01, 0.02, n) for c in COLUMNS}
    t.update({"patient_id": np.array([f"p{i}" for i in range(n)]), "site": np.full(n, "A"), "split": np.full(n, "test"),
              "tier": np.array(["low", "moderate", "high"][:n]), "image_kind": np.full(n, "clean"),
              "event_hip": np.array([True, False, True][:n]), "event_mof": np.zeros(n, bool),
              "ood_flag": np.zeros(n, bool), "low_confidence": np.zeros(n, bool),
              "lo10_hip": np.full(n, 0.005), "hi10_hip": np.full(n, 0.05), "lo10_mof": np.full(n, 0.005),
              "hi10_mof": np.full(n, 0.05), "dxa_tscore": np.array([np.nan, -1.5, np.nan][:n]),
              "time_hip": np.array([1.5, 10.0, 3.25][:n]), "bmd_t_true": np.array([-2.5, 0.1, -1.0][:n])})
    return t


def test_predictions_round_trip_and_deterministic_bytes(tmp_path):
    t = _table()
    p1, p2 = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"
    write_predictions(str(p1), t)
    write_predictions(str(p2), t)
    assert p1.read_bytes() == p2.read_bytes()
    back = read_predictions(str(p1))
    for c in COLUMNS:
        if back[c].dtype.kind == "f":
            assert np.array_equal(back[c], t[c].astype(np.float64), equal_nan=True), c
        else:
            assert back[c].tolist() == t[c].tolist(), c


def _write_raw(path, header, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")


@pytest.mark.parametrize("mutate, message", [
    (lambda h, r: (h[:-1], [x[:-1] for x in r]), "missing columns"),
    (lambda h, r: (h, [x[:4] + ["2"] + x[5:] for x in r]), "must be 0 or 1"),
    (lambda h, r: (h, [r[0], r[0]]), "duplicate patient_id"),
    (lambda h, r: (h, [x[:12] + ["1.5"] + x[13:] for x in r]), "fraction"),
    (lambda h, r: (h, [x[:12] + [""] + x[13:] for x in r]), "is empty"),
    (lambda h, r: (h, [x[:-2] + ["certain", x[-1]] for x in r]), "'tier' has values"),
    (lambda h, r: (h, [x[:13] + ["0.9"] + x[14:] for x in r]), "lo10_hip > hi10_hip"),
    (lambda h, r: (h, []), "no rows"),
])
def test_predictions_reader_refuses_malformed_files(tmp_path, mutate, message):
    good = tmp_path / "good.csv.gz"
    write_predictions(str(good), _table())
    with gzip.open(good, "rt", encoding="utf-8") as f:
        lines = [ln.rstrip("\n").split(",") for ln in f]
    assert lines[0][12] == "pred10_hip" and lines[0][4] == "event_hip" and lines[0][-2] == "tier"
    h, r = mutate(lines[0], lines[1:])
    bad = tmp_path / "bad.csv.gz"
    _write_raw(bad, h, r)
    with pytest.raises(PredictionsFormatError, match=message):
        read_predictions(str(bad))
