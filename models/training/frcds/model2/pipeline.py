"""The hip-xray-v2 pipeline behind ``npm run train -- --config models/training/configs/hip-xray-v2.json``:
cohorts (generated, or existing directories passed on the command line) -> patient split -> training stage on
observables (train.py) -> ONNX -> evaluation on site-A test and site B (evaluate.py, the only reader of hidden
variables) -> predictions, evaluation.json, manifest, parity fixtures, model card."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from frcds.model.data import split_by_patient
from frcds.model.export import export_onnx
from frcds.model.pipeline import REPO_ROOT, TRAINING_DIR, render_non_hip, repo_path

from . import card, report
from .evaluate import evaluate
from .net import OUTPUTS
from .observables import load_observables, load_truth
from .train import build_graph, train_stage

log = logging.getLogger("frcds.model2")


def cohort_dir(work: str, site: str, spec: dict, dicom: str, given: str | None, name: str | None = None) -> str:
    """An existing cohort directory passed by the caller, else ``work/cohort-<name or site>`` generated with the
    project's generator (skipped when a generation with the same parameters already finished there)."""
    if given:
        return given
    directory = os.path.join(work, f"cohort-{name or site}")
    stamp = os.path.join(directory, "train-stamp.json")
    want = {"site": site, "patients": int(spec["patients"]), "seed": int(spec["seed"]), "dicom": dicom}
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == want:
                return directory
    os.makedirs(directory, exist_ok=True)
    cmd = [sys.executable, os.path.join(TRAINING_DIR, "cohort.py"), "--patients", str(spec["patients"]), "--seed",
           str(spec["seed"]), "--site", site, "--out", directory, "--dicom", dicom]
    log.info("generating cohort: %s", " ".join(cmd[1:]))
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump(want, f)
    return directory


def make_split(n: int, sp: dict) -> dict:
    return split_by_patient(n, int(sp["train"]), int(sp["val"]), int(sp["seed"]))


def run(cfg: dict, *, work: str | None = None, out_dir: str | None = None, cohort_dirs: dict | None = None) -> dict:
    t_start = time.time()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = repo_path(work or cfg.get("work_dir") or os.path.join(tempfile.gettempdir(), "frcds-train", cfg["id"]))
    out_dir = repo_path(out_dir or cfg.get("out_dir") or os.path.join(work, "out"))
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    log.info("config %s; work %s; out %s", cfg.get("_config_path"), work, out_dir)
    timings: dict[str, float] = {}
    cc = cfg["cohort"]
    dirs = cohort_dirs or {}
    t0 = time.time()
    a_dir = cohort_dir(work, "A", cc["site_a"], cc.get("dicom", "none"), dirs.get("A"))
    a = load_observables(a_dir, limit=int(cc["site_a"]["patients"]))
    timings["cohort_a_s"] = time.time() - t0
    split = make_split(len(a), cfg["split"])
    with open(os.path.join(out_dir, "split.json"), "w", encoding="utf-8") as f:
        json.dump({"site_a": {k: [str(x) for x in a.tab["patient_id"][v]] for k, v in split.items()}}, f)

    trained = train_stage(cfg, a, split, work)
    timings.update(trained.info["timings"])
    graph = build_graph(trained)
    onnx_path = os.path.join(out_dir, "model.onnx")
    export_onnx(graph, onnx_path, size=a.images.shape[1], outputs=OUTPUTS)

    t0 = time.time()
    b_dir = cohort_dir(work, "B", cc["site_b"], cc.get("dicom", "none"), dirs.get("B"))
    b = load_observables(b_dir, limit=int(cc["site_b"]["patients"]))
    with open(os.path.join(out_dir, "split.json"), "w", encoding="utf-8") as f:
        json.dump({"site_a": {k: [str(x) for x in a.tab["patient_id"][v]] for k, v in split.items()},
                   "site_b": {"test": [str(x) for x in b.tab["patient_id"]]}}, f)
    timings["cohort_b_s"] = time.time() - t0
    nonhip = None
    try:
        nonhip, _ = render_non_hip(int(cfg["ood"]["nonhip_per_kind"]), int(cfg["ood"]["seed"]))
    except (ImportError, AttributeError) as e:
        log.error("non-hip images unavailable: %s", e)

    t0 = time.time()
    truth_a = load_truth(a_dir, limit=len(a))
    truth_b = load_truth(b_dir, limit=len(b))
    ev, pa, pb = evaluate(cfg, trained, graph, a, b, truth_a, truth_b, split, nonhip)
    timings["evaluate_s"] = time.time() - t0
    pdir = os.path.join(out_dir, "predictions")
    te = split["test"]
    report.write_predictions(os.path.join(pdir, "site_a_test.csv.gz"), a.subset(te),
                             {k: v[te] for k, v in truth_a.items()}, pa, "test")
    report.write_predictions(os.path.join(pdir, "site_b_test.csv.gz"), b, truth_b, pb, "external")
    os.replace(os.path.join(out_dir, "split.json"), os.path.join(pdir, "split.json"))
    fresh = fresh_evaluation(cfg, trained, graph, work, dirs, nonhip, pdir)
    if fresh is not None:
        ev["fresh"] = fresh
    fixtures = report.write_parity(cfg, graph, a, split, nonhip, out_dir, work)
    report.add_risk_fixtures(trained, graph, out_dir)
    timings["total_s"] = time.time() - t_start
    ev["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    ev["training"] = {"calibration": trained.calibration, "gamma": trained.gamma.tolist(),
                      "beta": trained.beta.tolist(), "residual_image_term": trained.residual_choice,
                      "low_confidence": trained.low_conf, "counts": trained.info.get("n", {}),
                      "config": cfg.get("_config_path")}
    from frcds.model.evaluate import clean
    ev = clean(ev)
    with open(os.path.join(out_dir, "evaluation.json"), "w", encoding="utf-8") as f:
        json.dump(ev, f, indent=1, allow_nan=False)
    man = report.build_manifest(cfg, trained, ev, onnx_path, fixtures, int(a.images.shape[1]))
    validate(man)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(man, f, indent=1, allow_nan=False)
    card.write(cfg, man, ev, out_dir)
    log.info("pipeline finished in %.0f s", time.time() - t_start)
    return {"evaluation": ev, "manifest": man, "out_dir": out_dir, "work": work}


def fresh_evaluation(cfg: dict, trained, graph, work: str, dirs: dict, nonhip, pdir: str) -> dict | None:
    """Evaluation on cohorts generated with seeds that no choice of this model ever saw (``cohort.fresh_site_a`` and
    ``cohort.fresh_site_b``): every patient is a test patient. The site-A test split of the training cohort informs
    design decisions between versions once its figures have been read; these cohorts are what a version's figures
    are judged on. Writes ``predictions/fresh/site_{a,b}_test.csv.gz`` and its split file (for v1 on the same
    patients) and returns the evaluation; None when the config names no fresh cohorts."""
    cc = cfg["cohort"]
    if "fresh_site_a" not in cc or "fresh_site_b" not in cc:
        return None
    dicom = cc.get("dicom", "none")
    fa_dir = cohort_dir(work, "A", cc["fresh_site_a"], dicom, dirs.get("A_fresh"), "A-fresh")
    fb_dir = cohort_dir(work, "B", cc["fresh_site_b"], dicom, dirs.get("B_fresh"), "B-fresh")
    fa = load_observables(fa_dir, limit=int(cc["fresh_site_a"]["patients"]))
    fb = load_observables(fb_dir, limit=int(cc["fresh_site_b"]["patients"]))
    ta, tb = load_truth(fa_dir, limit=len(fa)), load_truth(fb_dir, limit=len(fb))
    every = {"test": np.arange(len(fa))}
    ev, pa, pb = evaluate(cfg, trained, graph, fa, fb, ta, tb, every, nonhip)
    out = os.path.join(pdir, "fresh")
    report.write_predictions(os.path.join(out, "site_a_test.csv.gz"), fa, ta, pa, "fresh")
    report.write_predictions(os.path.join(out, "site_b_test.csv.gz"), fb, tb, pb, "fresh")
    with open(os.path.join(out, "split.json"), "w", encoding="utf-8") as f:
        json.dump({"site_a": {"test": [str(x) for x in fa.tab["patient_id"]]},
                   "site_b": {"test": [str(x) for x in fb.tab["patient_id"]]}}, f)
    ev["cohorts"] = {"site_a": dict(cc["fresh_site_a"]), "site_b": dict(cc["fresh_site_b"])}
    return ev


def validate(man: dict) -> None:
    """Against models/manifest.schema.json when it accepts schema 2.x; otherwise the contract's own keys."""
    import re

    import jsonschema

    from frcds.model.manifest import SCHEMA_PATH
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = json.load(f)
    pattern = schema.get("properties", {}).get("schema_version", {}).get("pattern", "")
    if pattern and not re.match(pattern, man["schema_version"]):
        log.warning("manifest schema does not accept %s yet; checking the contract keys only", man["schema_version"])
        for k in ("risk_model", "tscore_head", "uncertainty", "ood", "outputs"):
            if k not in man:
                raise ValueError(f"manifest lacks {k}")
        return
    jsonschema.validate(man, schema)
