"""Same seed → byte-identical truth, arrays and charts, whatever the number of workers; different seeds differ."""
from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np

from frcds.cohort import patient
from frcds.cohort.cli import main
from frcds.cohort.streams import PARTS, SITE_CODES, patient_streams

FILES = ("truth.json", "truth.csv", "arrays/tabular.npz")


def _run(out: Path, *extra: str) -> None:
    assert main(["--out", str(out), *extra]) == 0


def _same(a: Path, b: Path, names) -> None:
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n


def test_tabular_outputs_identical_across_runs_and_worker_counts(tmp_path):
    args = ("--patients", "24", "--seed", "5", "--site", "B", "--no-images")
    _run(tmp_path / "w1", *args, "--workers", "1")
    _run(tmp_path / "w2", *args, "--workers", "2")
    _same(tmp_path / "w1", tmp_path / "w2", FILES)
    cmp = filecmp.dircmp(tmp_path / "w1" / "fhir", tmp_path / "w2" / "fhir")
    assert len(cmp.common_files) == 24 and not cmp.left_only and not cmp.right_only
    assert filecmp.cmpfiles(tmp_path / "w1" / "fhir", tmp_path / "w2" / "fhir", cmp.common_files, shallow=False)[0] \
        == sorted(cmp.common_files)


def test_different_seed_gives_different_cohort(tmp_path):
    _run(tmp_path / "s5", "--patients", "8", "--seed", "5", "--no-images", "--workers", "1")
    _run(tmp_path / "s6", "--patients", "8", "--seed", "6", "--no-images", "--workers", "1")
    a = np.load(tmp_path / "s5" / "arrays" / "tabular.npz")
    b = np.load(tmp_path / "s6" / "arrays" / "tabular.npz")
    assert not np.array_equal(a["true_lp_hip"], b["true_lp_hip"])


def test_image_arrays_identical_across_worker_counts(tmp_path):
    args = ("--patients", "4", "--seed", "3", "--site", "A", "--dicom", "none")
    _run(tmp_path / "i1", *args, "--workers", "1")
    _run(tmp_path / "i2", *args, "--workers", "2")
    _same(tmp_path / "i1", tmp_path / "i2", FILES + ("arrays/images.npz",))
    z = np.load(tmp_path / "i1" / "arrays" / "images.npz")
    assert z["images"].shape == (4, 128, 128) and z["images"].dtype == np.float32
    assert z["masks"].shape == (4, 128, 128) and z["patient_index"].tolist() == [0, 1, 2, 3]
    assert np.isfinite(z["images"]).all() and z["masks"].max() > 0


def test_streams_added_later_leave_the_earlier_streams_unchanged():
    """``PARTS`` only grows at the end: the first seven streams are exactly those of the seven-part layout that wrote
    the cohorts before DXA results were added, so every output drawn from them is unchanged."""
    st = patient_streams(2026, "B", 17)
    old = np.random.SeedSequence(entropy=[2026, SITE_CODES["B"]], spawn_key=(17,)).spawn(7)
    for name, child in zip(PARTS[:7], old):
        assert getattr(st, name).random(5).tolist() == np.random.default_rng(child).random(5).tolist(), name
    assert PARTS[:7] == ("population", "bone", "outcomes", "ehr", "image", "dicom", "chart")


def _without_additions(out: Path) -> tuple[dict, dict]:
    """Bundles without the site Organization, its references and the DXA Observations; truth without ``dxa``."""
    bundles = {}
    for p in sorted((out / "fhir").glob("*.json")):
        b = json.loads(p.read_text())
        keep = []
        for e in b["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Organization" or (r["resourceType"] == "Observation" and "-dxa-" in r["id"]):
                continue
            if r["resourceType"] == "Patient":
                r.pop("managingOrganization")
                r["identifier"][0].pop("assigner")
            keep.append(e)
        b["entry"] = keep
        bundles[p.name] = b
    truth = json.loads((out / "truth.json").read_text())
    for t in truth["patients"]:
        t.pop("dxa")
    return bundles, truth


def test_dxa_results_change_nothing_else(tmp_path, monkeypatch):
    """The cohort with DXA results equals the cohort without them (no DXA draws at all) once the additions are
    removed: DXA draws come only from their own stream and the chart's other entries do not move."""
    args = ("--patients", "30", "--seed", "9", "--site", "A", "--no-images", "--workers", "1")
    _run(tmp_path / "with", *args)
    monkeypatch.setattr(patient, "sample_dxa", lambda *a, **k: None)
    _run(tmp_path / "without", *args)
    with_b, with_t = _without_additions(tmp_path / "with")
    without_b, without_t = _without_additions(tmp_path / "without")
    assert with_t == without_t and with_b == without_b
    assert (tmp_path / "with" / "arrays" / "tabular.npz").read_bytes() == \
        (tmp_path / "without" / "arrays" / "tabular.npz").read_bytes()
    with_truth = json.loads((tmp_path / "with" / "truth.json").read_text())["patients"]
    assert sum(t["dxa"] is not None for t in with_truth) > 0
