"""report_v2.py end to end on synthetic predictions whose answers are known by construction: figures equal direct
computations on the right rows, targets are judged met/MISSED as the numbers say, output is deterministic,
malformed input exits non-zero and missed targets do not."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from frcds.report import decision, stats
from frcds.report.predictions import write_predictions
from frcds.report.report import build

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import report_v2  # noqa: E402


def _site(site: str, n_clean: int, n_art: int, n_nonhip: int, seed: int, noise_v2: float, noise_v1: float,
          ood_shift: float = 0.0) -> tuple[dict, dict]:
    """(v2 table, v1 table) for one site: v2 predicts the true risk with log-noise ``noise_v2`` and an honest 95 %
    interval; v1 with ``noise_v1`` and a 2x too wide interval; QFracture with log-noise 1."""
    rng = np.random.default_rng(seed)
    n = n_clean + n_art + n_nonhip
    kind = np.array(["clean"] * n_clean + ["artefact"] * n_art + ["nonhip"] * n_nonhip)
    r_hip = np.clip(np.exp(rng.normal(np.log(0.03), 1.1, n)), 1e-4, 0.8)
    r_mof = np.clip(np.maximum(3 * r_hip, r_hip), 1e-4, 0.95)
    t_ev = rng.exponential(10.0 / -np.log1p(-r_hip))
    cens = np.minimum(rng.uniform(3, 30, n), 10.0)
    t_hip, e_hip = np.minimum(t_ev, cens), t_ev <= cens
    t_mof_ev = np.minimum(t_ev, rng.exponential(10.0 / -np.log1p(-(r_mof - r_hip).clip(1e-6))))
    t_mof, e_mof = np.minimum(t_mof_ev, cens), t_mof_ev <= cens
    bmd = rng.normal(-1.5, 1.0, n)
    has_dxa = rng.random(n) < 0.35
    dxa = np.where(has_dxa, bmd + rng.normal(0, 0.1, n), np.nan)
    base = {"patient_id": np.array([f"{site}-{i:05d}" for i in range(n)]), "site": np.full(n, site),
            "split": np.full(n, "test"), "time_hip": t_hip, "event_hip": e_hip, "time_mof": t_mof, "event_mof": e_mof,
            "true_risk10_hip": r_hip, "true_risk10_mof": r_mof, "bmd_t_true": bmd,
            "qf10_hip": np.clip(r_hip * np.exp(rng.normal(0, 1.0, n)), 0, 0.99),
            "qf10_mof": np.clip(r_mof * np.exp(rng.normal(0, 1.0, n)), 0, 0.99), "image_kind": kind}
    dist = np.where(kind == "clean", rng.normal(10 + ood_shift, 2, n), rng.normal(22, 2, n))

    def model(noise: float, widen: float, with_t: bool) -> dict:
        t = dict(base)
        for k, r in (("hip", r_hip), ("mof", r_mof)):
            eps = rng.normal(0, noise, n)
            p = np.clip(r * np.exp(eps), 0, 0.99)
            half = widen * 1.959964 * noise
            t[f"pred10_{k}"], t[f"lo10_{k}"], t[f"hi10_{k}"] = p, p * np.exp(-half), np.minimum(p * np.exp(half), 1.0)
            thr = 0.03 if k == "hip" else 0.2
            t[f"pthr_{k}"] = decision.normal_upper_tail((np.log(thr) - np.log(p)) / max(noise, 1e-9))
        if with_t:
            t["tscore_mean"] = bmd + rng.normal(0, 0.5, n)
            t["tscore_sd"] = np.full(n, 0.51)
            t["tscore_lo"], t["tscore_hi"] = t["tscore_mean"] - 1.96 * 0.51, t["tscore_mean"] + 1.96 * 0.51
            t["dxa_tscore"] = dxa
        else:
            for c in ("tscore_mean", "tscore_sd", "tscore_lo", "tscore_hi", "dxa_tscore"):
                t[c] = np.full(n, np.nan)
        t["ood_distance"] = dist
        t["ood_flag"] = dist > 15.0
        t["low_confidence"] = rng.random(n) < 0.05
        t["tier"] = decision.tier(t["pred10_hip"], t["pthr_hip"], t["pred10_mof"], t["pthr_mof"])
        return t
    v2 = model(noise_v2, 1.0, True)
    v1 = model(noise_v1, 2.0, False)
    keep = kind != "nonhip"                                 # v1 is not run on non-hip images
    return v2, {k: v[keep] for k, v in v1.items()}


def _write(d, a, b, v1: bool = True):
    os.makedirs(d, exist_ok=True)
    write_predictions(os.path.join(d, "site_a_test.csv.gz"), a[0])
    write_predictions(os.path.join(d, "site_b_test.csv.gz"), b[0])
    if v1:
        write_predictions(os.path.join(d, "v1_site_a_test.csv.gz"), a[1])
        write_predictions(os.path.join(d, "v1_site_b_test.csv.gz"), b[1])


@pytest.fixture(scope="module")
def sites():
    return _site("A", 3000, 80, 0, 1, 0.25, 0.5), _site("B", 1500, 60, 0, 2, 2.0, 0.9, ood_shift=3.0)


def _figs(rep: dict) -> dict:
    return {f["id"]: f for f in rep["figures"]}


def test_report_figures_equal_direct_computations_on_the_clean_rows(tmp_path, sites):
    a, b = sites
    d = tmp_path / "pred"
    _write(str(d), a, b)
    rc = report_v2.main(["--pred-dir", str(d), "--bootstrap", "40", "--seed", "3"])
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    md = (tmp_path / "report.md").read_text()
    f = _figs(rep)
    clean = a[0]["image_kind"] == "clean"
    A = {k: v[clean] for k, v in a[0].items()}
    A1 = {k: v[a[1]["image_kind"] == "clean"] for k, v in a[1].items()}
    c2 = stats.harrell_c(A["time_hip"], A["event_hip"], A["pred10_hip"])
    cq = stats.harrell_c(A["time_hip"], A["event_hip"], A["qf10_hip"])
    assert f["a_hip_c"]["value"] == pytest.approx(c2) and f["a_hip_c"]["n"] == 3000
    assert f["a_hip_c_gain"]["value"] == pytest.approx(c2 - cq)
    assert f["a_hip_c_gain"]["met"] is bool(c2 - cq >= 0.05)
    lo, hi = f["a_hip_c_gain"]["ci95"]
    assert lo < c2 - cq < hi
    # interval score by its definition, v2 vs v1 on the same patients
    x = A["true_risk10_hip"]
    isc = lambda l, u: np.mean((u - l) + 40 * np.maximum(l - x, 0) + 40 * np.maximum(x - u, 0))
    red = 1 - isc(A["lo10_hip"], A["hi10_hip"]) / isc(A1["lo10_hip"], A1["hi10_hip"])
    assert f["a_interval_score"]["value"] == pytest.approx(red)
    assert f["a_interval_score"]["met"] is bool(red >= 0.30)
    over = A["pred10_hip"] >= 0.03
    assert f["a_straddle"]["value"] == pytest.approx(np.mean(A["lo10_hip"][over] < 0.03))
    cov = np.mean((x >= A["lo10_hip"]) & (x <= A["hi10_hip"]))
    assert f["a_coverage"]["value"] == pytest.approx(cov) and 0.9 < cov < 0.98 and f["a_coverage"]["met"] is True
    assert f["a_coverage"]["v1"] > 0.99                                 # v1's doubled width over-covers
    # calibration: v2 predicts the true risk with symmetric log-noise -> KM-decile slope near 1
    assert 0.8 < f["a_cal_slope"]["value"] < 1.2
    # T-score vs measured DXA: estimate sd 0.5 around the truth, DXA 0.1 -> r = 1/sqrt(1.26) ~ 0.89
    m = np.isfinite(A["dxa_tscore"])
    assert f["t_r"]["value"] == pytest.approx(stats.pearson(A["tscore_mean"][m], A["dxa_tscore"][m]))
    assert f["t_r"]["n"] == int(m.sum()) and f["t_coverage"]["met"] is not None
    assert f["t_bias"]["value"] == pytest.approx(np.mean(A["tscore_mean"][m] - A["dxa_tscore"][m]))
    hi_t = (A["tier"] == "high") & ~A["ood_flag"]
    assert f["lowconf_high"]["value"] == pytest.approx(A["low_confidence"][hi_t].mean()) and f["lowconf_high"]["n"] == hi_t.sum()
    y = (A["true_risk10_hip"] >= 0.03).astype(float)
    assert f["pthr_brier_hip"]["value"] == pytest.approx(np.mean((A["pthr_hip"] - y) ** 2))
    # site B: noisier predictions -> C drops by more than 0.03 (MISSED, but the exit code was 0)
    B = {k: v[b[0]["image_kind"] == "clean"] for k, v in b[0].items()}
    drop = c2 - stats.harrell_c(B["time_hip"], B["event_hip"], B["pred10_hip"])
    assert f["b_c_drop"]["value"] == pytest.approx(drop) and drop > 0.03 and f["b_c_drop"]["met"] is False
    assert "b_c_drop" in rep["summary"]["missed"] and "**MISSED**" in md
    assert f["b_ood_clean"]["value"] == pytest.approx(np.mean(B["ood_flag"]))
    assert f["b_artefact_auroc"]["value"] > 0.99 and f["b_artefact_auroc"]["n"] == 60
    assert f["events_a"]["value"] == stats.events_by(A["time_hip"], A["event_hip"])
    # no non-hip rows and no training evaluation: stated, not invented
    assert f["nonhip_auroc"]["value"] is None and f["nonhip_auroc"]["met"] is None
    assert rep["warnings"] == ["no v2_recomputed_check.json: the predictions were not checked against model.onnx + manifest"]


def test_the_artefact_check_is_included_and_disagreement_warned(tmp_path, sites):
    a, b = sites
    d = tmp_path / "pred"
    _write(str(d), a, b)
    ok = {"max_abs": 2e-6, "p99_abs": 1e-6, "max_rel": 1e-5}
    served = {c: dict(ok) for c in ("pred10_hip", "lo10_hip", "hi10_hip", "pthr_hip", "pred10_mof", "lo10_mof",
                                     "hi10_mof", "pthr_mof")}
    served.update({"tier": {"agree": 1.0, "n_differ": 0}, "low_confidence": {"agree": 1.0, "n_differ": 0}})
    chk = {"kind": "frcds-v2-recomputed-check",
           "sites": {s: {"rows_checked": 10, "served": json.loads(json.dumps(served))} for s in "AB"}}
    (d / "v2_recomputed_check.json").write_text(json.dumps(chk))
    rep = build(str(d), 0, 1)
    assert rep["warnings"] == [] and rep["consistency_with_artefact"]["sites"]["A"]["rows_checked"] == 10
    chk["sites"]["B"]["served"]["hi10_hip"]["max_abs"] = 0.05
    chk["sites"]["B"]["served"]["tier"] = {"agree": 0.9, "n_differ": 1}
    (d / "v2_recomputed_check.json").write_text(json.dumps(chk))
    w = build(str(d), 0, 1)["warnings"]
    assert len(w) == 1 and w[0].startswith("site B, served:") and "hi10_hip (max |diff| 0.05)" in w[0] and "tier (1 rows)" in w[0]


def test_report_is_deterministic_and_nonhip_rows_or_training_figure_are_used(tmp_path, sites):
    a, b = sites
    d = tmp_path / "pred"
    _write(str(d), a, b)
    r1 = build(str(d), 30, 9)
    r2 = build(str(d), 30, 9)
    assert json.dumps(r1) == json.dumps(r2)
    assert json.dumps(build(str(d), 30, 10)) != json.dumps(r1)          # the seed is really used
    ev = tmp_path / "evaluation.json"
    ev.write_text(json.dumps({"ood": {"site_a": {"non_hip": {"n": 60, "auroc": 0.996}}}}))
    f = _figs(build(str(d), 0, 9, str(ev)))
    assert f["nonhip_auroc"]["value"] == 0.996 and f["nonhip_auroc"]["met"] is True
    assert "reported by training" in f["nonhip_auroc"]["note"]
    # with non-hip rows in the file, the AUROC is recomputed from them
    b2 = _site("B", 1500, 60, 40, 2, 2.0, 0.9, ood_shift=3.0)
    d2 = tmp_path / "pred2"
    _write(str(d2), a, b2)
    f2 = _figs(build(str(d2), 0, 9, str(ev)))
    assert f2["nonhip_auroc"]["n"] == 40 and f2["nonhip_auroc"]["value"] > 0.99
    assert "predictions files" in f2["nonhip_auroc"]["note"]


def test_image_only_columns_give_their_own_column_and_targets_stay_on_the_served_ones(tmp_path, sites):
    a, b = sites
    rng = np.random.default_rng(7)
    a2 = dict(a[0])
    for k in ("hip", "mof"):                                            # image-only: noisier than served
        p = np.clip(a2[f"true_risk10_{k}"] * np.exp(rng.normal(0, 1.0, len(a2["patient_id"]))), 0, 0.99)
        a2[f"pred10_{k}_image"], a2[f"lo10_{k}_image"], a2[f"hi10_{k}_image"] = p, p / 7, np.minimum(p * 7, 1)
        a2[f"pthr_{k}_image"] = a2[f"pthr_{k}"]
    a2["low_confidence_image"], a2["tier_image"] = a2["low_confidence"], a2["tier"]
    d = tmp_path / "img"
    _write(str(d), (a2, a[1]), b)
    from frcds.report.predictions import read_predictions
    back = read_predictions(str(d / "site_a_test.csv.gz"))
    assert "pred10_hip_image" in back and "pred10_hip_image" not in read_predictions(str(d / "site_b_test.csv.gz"))
    rep = build(str(d), 0, 1)
    f = _figs(rep)
    clean = a2["image_kind"] == "clean"
    t, e = a2["time_hip"][clean], a2["event_hip"][clean]
    assert f["a_hip_c"]["v2_image_only"] == pytest.approx(stats.harrell_c(t, e, a2["pred10_hip_image"][clean]))
    assert f["a_hip_c"]["value"] == pytest.approx(stats.harrell_c(t, e, a2["pred10_hip"][clean]))
    assert f["a_hip_c"]["v2_image_only"] < f["a_hip_c"]["value"]
    assert rep["inputs"]["image_only_columns"] is True and f["b_c_drop"]["v2_image_only"] is None
    assert "v2 image-only" in __import__("frcds.report.report", fromlist=["markdown"]).markdown(rep)


def test_report_without_v1_files_and_with_mismatched_patients(tmp_path, sites):
    a, b = sites
    d = tmp_path / "nov1"
    _write(str(d), a, b, v1=False)
    rep = build(str(d), 0, 1)
    f = _figs(rep)
    assert f["a_hip_c"]["v1"] is None and f["a_interval_score"]["value"] is None and f["a_interval_score"]["met"] is None
    assert any("no v1 predictions" in w for w in rep["warnings"])
    d2 = tmp_path / "mismatch"
    _write(str(d2), a, b)
    v1a = {k: v[100:] for k, v in a[1].items()}                        # 100 site-A patients lack a v1 row
    write_predictions(os.path.join(d2, "v1_site_a_test.csv.gz"), v1a)
    b2 = dict(b[0])
    b2["pred10_hip"] = b2["pred10_hip"].copy()
    rows = np.flatnonzero(b2["hi10_hip"] < 0.5)[:3]
    b2["pred10_hip"][rows] = b2["hi10_hip"][rows] + 0.01               # a skewed mixture's mean can pass its 97.5 %
    write_predictions(os.path.join(d2, "site_b_test.csv.gz"), b2)
    rep2 = build(str(d2), 0, 1)
    assert rep2["inputs"]["paired_with_v1"]["A"] == 2900
    assert any("100 clean v2 patients have no v1 row" in w for w in rep2["warnings"])
    assert "site_b_test.csv.gz: 3 rows with pred10_hip outside [lo10_hip, hi10_hip]" in rep2["warnings"]


def test_malformed_input_exits_2_and_writes_nothing(tmp_path, sites, capsys):
    a, b = sites
    d = tmp_path / "pred"
    os.makedirs(d)
    write_predictions(os.path.join(d, "site_a_test.csv.gz"), a[0])
    assert report_v2.main(["--pred-dir", str(d), "--bootstrap", "0"]) == 2      # site B file missing
    assert "missing" in capsys.readouterr().err
    bad = dict(b[0])
    bad["site"] = np.full(len(bad["site"]), "A")                                 # site-A rows in the site-B file
    write_predictions(os.path.join(d, "site_b_test.csv.gz"), bad)
    assert report_v2.main(["--pred-dir", str(d), "--bootstrap", "0"]) == 2
    assert not (tmp_path / "report.json").exists()
