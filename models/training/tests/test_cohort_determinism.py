"""Same seed → byte-identical truth, arrays and charts, whatever the number of workers; different seeds differ."""
from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np

from frcds.cohort.cli import main

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
