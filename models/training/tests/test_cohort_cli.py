"""CLI argument errors give a clear message and exit status 2, never a traceback; outputs are complete."""
from __future__ import annotations

import json

import numpy as np
import pytest

from frcds.cohort.cli import main


@pytest.mark.parametrize("args,msg", [
    (["--patients", "5"], "--out DIR is required"),
    (["--patients", "0", "--out", "{tmp}"], "--patients must be >= 1"),
    (["--patients", "5", "--dicom", "some", "--out", "{tmp}"], "--dicom must be all, none or a number"),
    (["--patients", "5", "--dicom", "2", "--no-images", "--out", "{tmp}"], "--no-images cannot write DICOM"),
])
def test_bad_arguments(tmp_path, capsys, args, msg):
    args = [a.replace("{tmp}", str(tmp_path / "o")) for a in args]
    assert main(args) == 2
    assert msg in capsys.readouterr().err


def test_outputs_and_summary(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["--patients", "10", "--seed", "2", "--site", "A", "--out", str(out), "--no-images",
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 10 patients" in printed and "per-patient mean" in printed
    summary = json.loads((out / "cohort.json").read_text())
    assert summary["counts"]["patients"] == 10 and "incidence" in summary and "prevalence" in summary
    assert set(summary["timings_s"]) >= {"simulate_wall", "write_outputs_wall", "total_wall"}
    tab = np.load(out / "arrays" / "tabular.npz")
    assert tab["true_risk_hip"].shape == (10, 10) and tab["patient_id"].dtype.kind == "U"
    assert np.all(np.diff(tab["true_risk_mof"], axis=1) >= 0)
    assert np.all(tab["true_risk_mof"] >= tab["true_risk_hip"])
    header = (out / "truth.csv").read_text().splitlines()[0].split(",")
    assert "true_lp_hip" in header and len((out / "truth.csv").read_text().splitlines()) == 11
