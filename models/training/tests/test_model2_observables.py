"""hip-xray-v2 trains from observables only: the loader never exposes hidden simulator columns, measured DXA comes
from the FHIR charts, and the training stage gives identical output whether the hidden columns are true, poisoned
or absent."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from fakecohort import write_fake_cohort
from frcds.model2 import observables
from frcds.model2.observables import HiddenVariableError, dxa_from_bundle, load_observables, load_truth

TINY = {
    "id": "hip-xray-v2-test", "version": "0.0.1",
    "cohort": {"site_a": {"patients": 90, "seed": 1}, "site_b": {"patients": 30, "seed": 2}, "dicom": "none"},
    "split": {"train": 50, "val": 25, "seed": 3},
    "ensemble": {"members": 1, "seed": 10, "bootstrap": True},
    "train": {"epochs": 1, "batch_size": 16, "lr": 0.002, "weight_decay": 0.0001, "tscore_weight": 1.0, "shift": 2,
              "gain": 0.05, "vendor_aug": 0.5, "vendor_strength": 1.0, "vendor_pool": 1},
    "tscore": {"coverage": 0.95, "dxa_precision_sd": 0.12, "dxa_max_age_years": 2},
    "risk": {"residual_image_term": True, "residual_l2_grid": [1.0]},
    "uncertainty": {"gauss_hermite_nodes": 8, "low_confidence_quantile": 0.975},
    "ood": {"val_quantile": 0.99, "quality_stats": "auto", "nonhip_per_kind": 1, "seed": 99},
}


def _bundle(pid: str, index: str, dxa: list[tuple[str, float, str]]) -> dict:
    entries = [{"resource": {"resourceType": "ImagingStudy", "id": f"{pid}-xr", "started": index}}]
    for i, (date, value, status) in enumerate(dxa):
        entries.append({"resource": {
            "resourceType": "Observation", "id": f"{pid}-dxa-{i}", "status": status, "effectiveDateTime": date,
            "code": {"coding": [{"system": "http://loinc.org", "code": "80948-3"}]},
            "valueQuantity": {"value": value, "unit": "T-score"}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def write_cohort(directory: str, n: int, seed: int) -> None:
    """The fake array cohort plus FHIR charts: a DXA T-score (the planted BMD + noise) for about 40 %."""
    write_fake_cohort(directory, n, seed)
    tab = np.load(os.path.join(directory, "arrays", "tabular.npz"))
    rng = np.random.default_rng(seed + 1)
    os.makedirs(os.path.join(directory, "fhir"), exist_ok=True)
    for pid, bmd in zip(tab["patient_id"], tab["bmd_t"]):
        dxa = [("2019-03-01", round(float(bmd + 0.1 * rng.standard_normal()), 1), "final")] if rng.random() < 0.4 else []
        with open(os.path.join(directory, "fhir", f"{pid}.json"), "w") as f:
            json.dump(_bundle(str(pid), "2020-03-01T10:00:00Z", dxa), f)


def poison(directory: str, mode: str) -> None:
    """Replace every hidden column by noise ('poison') or remove them all ('absent')."""
    path = os.path.join(directory, "arrays", "tabular.npz")
    with np.load(path) as z:
        cols = {k: z[k] for k in z.files}
    rng = np.random.default_rng(0)
    for k in list(cols):
        if k in observables.HIDDEN_COLUMNS:
            if mode == "absent":
                del cols[k]
            elif cols[k].dtype.kind == "f":
                cols[k] = rng.standard_normal(cols[k].shape) * 100
            else:
                cols[k] = np.array(["poison"] * len(cols[k]))
    np.savez(path, **cols)


def test_table_refuses_hidden_columns(tmp_path):
    write_cohort(str(tmp_path), 20, 5)
    c = load_observables(str(tmp_path))
    for k in ("bmd_t", "micro_z", "true_risk_hip", "true_lp_mof", "artefact"):
        with pytest.raises(HiddenVariableError):
            c.tab[k]
    assert not set(c.tab) & set(observables.HIDDEN_COLUMNS)
    with pytest.raises(HiddenVariableError):
        observables.ObservableTable({"bmd_t": np.zeros(2)})
    assert "bmd_t" in load_truth(str(tmp_path))          # evaluation still reaches them


def test_dxa_read_from_the_chart(tmp_path):
    b = _bundle("p", "2020-03-01T10:00:00Z", [("2016-01-01", -1.0, "final"), ("2019-03-01", -2.1, "final"),
                                               ("2019-09-01", -3.0, "preliminary"), ("2021-01-01", -2.8, "final")])
    t, years = dxa_from_bundle(b)
    assert t == -2.1                                      # latest final one on or before the index date
    assert years == pytest.approx(366 / 365.25)
    assert np.isnan(dxa_from_bundle(_bundle("p", "2020-03-01", []))[0])
    write_cohort(str(tmp_path), 30, 6)
    c = load_observables(str(tmp_path), limit=25)
    assert len(c) == 25 and c.images.shape == (25, 128, 128)
    has = c.has_dxa
    assert 0 < has.sum() < 25
    truth = load_truth(str(tmp_path), limit=25)
    assert np.abs(np.asarray(c.tab["dxa_t"])[has] - truth["bmd_t"][has]).max() < 0.6


def _train_outputs(directory: str, work: str) -> list[np.ndarray]:
    from frcds.model2.pipeline import make_split
    from frcds.model2.train import build_graph, train_stage
    a = load_observables(directory)
    t = train_stage(TINY, a, make_split(len(a), TINY["split"]), work)
    g = build_graph(t)
    x = torch.from_numpy(a.images[:6][:, None])
    with torch.no_grad():
        out = g(x, torch.from_numpy(a.clinical()[:6]))
    return [o.numpy() for o in out] + [np.array([t.ood_threshold, t.calibration["slope"]]), t.gamma, t.h0["hip"]]


def test_training_never_reads_hidden_columns(tmp_path):
    torch.set_num_threads(1)
    base = str(tmp_path / "cohort")
    write_cohort(base, TINY["cohort"]["site_a"]["patients"], 11)
    ref = _train_outputs(base, str(tmp_path / "w0"))
    for mode in ("poison", "absent"):
        poison(base, mode)
        got = _train_outputs(base, str(tmp_path / f"w-{mode}"))
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(r, g)
