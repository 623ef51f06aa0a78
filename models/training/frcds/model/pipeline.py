"""The whole training pipeline behind ``npm run train -- --config ...`` (issue 3): cohorts -> split -> ensemble training
-> full-batch head refit -> Breslow baselines -> interval calibration (validation) -> OOD statistics and threshold
(validation) -> one ONNX graph -> evaluation (test, site B) -> manifest, model card, parity fixtures.

Nothing is tuned on the test set: the ridge strength, the interval factor and the OOD threshold all come from the
validation split; test and site B are touched only by ``evaluate``.
"""
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

from . import intervals, ood
from .data import OUTCOMES, Cohort, load_cohort, split_by_patient
from .fit import pooled_features, refit_head, train_member
from .net import EnsembleGraph, Member, quality_stats
from .survival import MONTHLY_GRID, breslow, fit_cox

log = logging.getLogger("frcds.model")

TRAINING_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO_ROOT = os.path.dirname(os.path.dirname(TRAINING_DIR))
TAU = 10.0


def repo_path(p: str) -> str:
    return p if os.path.isabs(p) else os.path.join(REPO_ROOT, p)


def load_config(path: str) -> dict:
    with open(repo_path(path), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["_config_path"] = os.path.relpath(repo_path(path), REPO_ROOT)
    return cfg


# ----------------------------------------------------------------------------------------------------------- cohorts
def ensure_cohort(directory: str, site: str, patients: int, seed: int, dicom: str, await_s: float = 0.0) -> Cohort:
    """Generates a cohort with the project's generator unless ``directory`` already holds the same one. With
    ``await_s`` > 0 another process is generating it: wait up to that long for its stamp instead."""
    stamp = os.path.join(directory, "train-stamp.json")
    want = {"site": site, "patients": patients, "seed": seed, "dicom": dicom}
    t_wait = time.time()
    while await_s > 0 and not os.path.exists(stamp):
        if time.time() - t_wait > await_s:
            raise TimeoutError(f"cohort {directory} did not appear within {await_s:.0f} s")
        time.sleep(10)
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == want:
                log.info("reusing cohort %s (site %s, %d patients, seed %d)", directory, site, patients, seed)
                return load_cohort(directory)
    os.makedirs(directory, exist_ok=True)
    cmd = [sys.executable, os.path.join(TRAINING_DIR, "cohort.py"), "--patients", str(patients), "--seed", str(seed),
           "--site", site, "--out", directory, "--dicom", dicom]
    log.info("generating cohort: %s", " ".join(cmd[1:]))
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)
    log.info("cohort site %s generated in %.0f s", site, time.time() - t0)
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump(want, f)
    return load_cohort(directory)


def render_non_hip(kinds_per: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Images that are not hip radiographs, through the same preprocessing as every hip image."""
    from frcds import preprocess
    from frcds.imaging import nonhip
    kinds = list(getattr(nonhip, "KINDS", None) or getattr(nonhip, "NON_HIP_KINDS"))
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for kind in kinds:
        for i in range(kinds_per):
            site = "A" if i % 2 == 0 else "B"
            r = nonhip.render_non_hip(kind, site, rng)
            imgs.append(preprocess.preprocess_pixels(
                r.pixels, rescale_slope=r.rescale_slope, rescale_intercept=r.rescale_intercept,
                photometric=r.photometric, laterality=r.laterality, pixel_spacing_mm=r.pixel_spacing_mm))
            labels.append(kind)
    return np.stack(imgs).astype(np.float32), labels


# ------------------------------------------------------------------------------------------------------------- model
class Trained:
    """Everything the export, evaluation and manifest need, computed from train/validation only."""

    def __init__(self):
        self.members: list[Member] = []
        self.heads: dict[str, dict] = {}        # 'fused' | 'image' -> {'w': [M,2,C], 'beta': [M,2], 'bias': [M,2]}
        self.clinical: dict[str, dict] = {}     # per outcome: bootstrap Cox coefficients on the clinical input
        self.h0: dict[str, dict[str, np.ndarray]] = {}   # model -> outcome -> H0 on the monthly grid
        self.k: dict[str, dict[str, float]] = {}         # model -> outcome -> interval factor
        self.ood: dict = {}
        self.ood_threshold = float("nan")
        self.l2: dict = {}
        self.mean_maps: np.ndarray | None = None     # training-mean feature maps [M,C,h,w]
        self.cam_reference: np.ndarray | None = None  # [2,h,w] subtracted before the CAM ReLU (zeros = plain CAM)
        self.cam_choice: dict = {}
        self.quality = False                          # image-quality statistics in the OOD vector
        self.ood_choice: dict = {}


def member_eta(z: np.ndarray, heads: dict, clin: np.ndarray) -> np.ndarray:
    """Per-member log-hazards [N,M,2] from pooled features z [N,M,C]."""
    return np.einsum("nmc,mkc->nmk", z, heads["w"]) + heads["beta"][None] * clin[:, None, :] + heads["bias"][None]


def features_all(members: list[Member], images: np.ndarray) -> np.ndarray:
    return np.stack([pooled_features(m.backbone, images) for m in members], axis=1)   # [N,M,C]


@torch.no_grad()
def ood_vectors(z: np.ndarray, images: np.ndarray, quality: bool) -> np.ndarray:
    """What the graph's Mahalanobis distance sees: concatenated pooled features (+ image-quality statistics)."""
    v = z.reshape(len(z), -1)
    if not quality:
        return v
    q = np.concatenate([quality_stats(torch.from_numpy(images[i:i + 512][:, None])).double().numpy()
                        for i in range(0, len(images), 512)])
    return np.concatenate([v, q], axis=1)


def clinical_members(clin: np.ndarray, tr: Cohort, k: int, n_boot: int, seed: int) -> np.ndarray:
    """Clinical-only comparator: 1-d Cox on the QFracture-2012 linear predictor, refit on bootstrap samples of the
    training set so it gets an interval by the same method as the image models. Returns [n_boot, 2] (coef, bias)."""
    rng = np.random.default_rng(seed)
    out = []
    x_all = clin[:, k]
    for b in range(n_boot):
        s = rng.integers(0, len(x_all), len(x_all)) if b > 0 else np.arange(len(x_all))
        coef = float(fit_cox(x_all[s], tr.time(OUTCOMES[k])[s], tr.event(OUTCOMES[k])[s])[0])
        out.append((coef, -coef * float(x_all.mean())))
    return np.array(out)


def train_all(cfg: dict, a: Cohort, split: dict, work: str) -> tuple["Trained", dict]:
    tr_idx = split["train"][~a.tab["should_exclude"][split["train"]]]
    va_idx = split["val"][~a.tab["should_exclude"][split["val"]]]
    tr, va = a.subset(tr_idx), a.subset(va_idx)
    ens = cfg["ensemble"]
    out = Trained()
    timings = {}
    ckdir = os.path.join(work, "members")
    os.makedirs(ckdir, exist_ok=True)
    samples = []
    t0 = time.time()
    for m in range(int(ens["members"])):
        seed = int(ens["seed"]) + m
        rng = np.random.default_rng(seed)
        sample = rng.integers(0, len(tr), len(tr)) if ens.get("bootstrap", True) else np.arange(len(tr))
        samples.append(sample)
        tm = time.time()
        out.members.append(train_member(tr, cfg["train"], seed, sample, os.path.join(ckdir, f"member-{m}.pt")))
        log.info("member %d done in %.0f s", m, time.time() - tm)
    timings["train_members_s"] = time.time() - t0

    t0 = time.time()
    zm = [pooled_features(m.backbone, tr.images, mean_map=True) for m in out.members]
    z_tr, out.mean_maps = np.stack([a for a, _ in zm], axis=1), np.stack([b for _, b in zm])   # [N,M,C], [M,C,h,w]
    z_va = features_all(out.members, va.images)
    clin_tr, clin_va = tr.clinical(), va.clinical()
    grid = cfg["refit"]["l2_grid"]
    m_count, c = len(out.members), z_tr.shape[2]
    for kind in ("fused", "image"):
        w, beta, bias = np.zeros((m_count, 2, c)), np.zeros((m_count, 2)), np.zeros((m_count, 2))
        l2s = []
        for m in range(m_count):
            s = samples[m]
            for k, o in enumerate(OUTCOMES):
                use = kind == "fused"
                h = refit_head(z_tr[s, m], clin_tr[s, k] if use else None, tr.time(o)[s], tr.event(o)[s],
                               z_va[:, m], clin_va[:, k] if use else None, va.time(o), va.event(o), grid)
                w[m, k], beta[m, k] = h["w"], h["beta"]
                # centre every member on the whole (clean) training set so members share one Breslow baseline
                bias[m, k] = -float(np.mean(z_tr[:, m] @ h["w"] + h["beta"] * clin_tr[:, k]))
                l2s.append(h["l2"])
        out.heads[kind] = {"w": w, "beta": beta, "bias": bias}
        out.l2[kind] = l2s
    for k, o in enumerate(OUTCOMES):
        out.clinical[o] = clinical_members(clin_tr, tr, k, m_count, int(ens["seed"]) + 77)
    timings["refit_s"] = time.time() - t0

    # Breslow baselines (train) and interval factors (validation)
    def etas(kind, z, clin):
        return member_eta(z, out.heads[kind], clin)

    for kind in ("fused", "image"):
        e_tr, e_va = etas(kind, z_tr, clin_tr), etas(kind, z_va, clin_va)
        out.h0[kind], out.k[kind] = {}, {}
        for k, o in enumerate(OUTCOMES):
            h0 = breslow(e_tr[:, :, k].mean(1), tr.time(o), tr.event(o))
            out.h0[kind][o] = h0
            out.k[kind][o] = intervals.calibrate_factor(e_va[:, :, k], va.tab[f"true_risk_{o}"][:, 9], h0[-1])
    out.h0["clinical"], out.k["clinical"] = {}, {}
    for k, o in enumerate(OUTCOMES):
        cm = out.clinical[o]
        e_tr = clin_tr[:, k:k + 1] * cm[:, 0][None] + cm[:, 1][None]
        e_va = clin_va[:, k:k + 1] * cm[:, 0][None] + cm[:, 1][None]
        out.h0["clinical"][o] = breslow(e_tr.mean(1), tr.time(o), tr.event(o))
        out.k["clinical"][o] = intervals.calibrate_factor(e_va, va.tab[f"true_risk_{o}"][:, 9],
                                                          out.h0["clinical"][o][-1])

    # OOD: training mean/precision of the concatenated pooled features; threshold = a quantile of validation
    q_cfg = cfg["ood"].get("quality_stats", False)
    if q_cfg == "auto":
        # choose on data never used for the test: validation (clean) vs the TRAINING split's artefact cases, which
        # were excluded from training
        tr_art = a.subset(split["train"][a.tab["should_exclude"][split["train"]]])
        z_art = features_all(out.members, tr_art.images) if len(tr_art) else None
        scores = {}
        for q in (False, True):
            st = ood.fit(ood_vectors(z_tr, tr.images, q))
            if z_art is not None:
                scores[q] = ood.auroc(ood.distance(ood_vectors(z_va, va.images, q), st),
                                      ood.distance(ood_vectors(z_art, tr_art.images, q), st))
        out.quality = bool(max(scores, key=scores.get)) if scores else False
        out.ood_choice = {"quality_stats": out.quality, "auroc_val_vs_train_split_artefacts":
                          {str(k): v for k, v in scores.items()}, "n_artefacts": 0 if z_art is None else len(z_art)}
        log.info("OOD vector chosen: %s", out.ood_choice)
    else:
        out.quality = bool(q_cfg)
    out.ood = ood.fit(ood_vectors(z_tr, tr.images, out.quality))
    d_va = ood.distance(ood_vectors(z_va, va.images, out.quality), out.ood)
    out.ood_threshold = float(np.quantile(d_va, cfg["ood"]["val_quantile"]))
    log.info("refit, baselines, intervals, OOD in %.0f s; k=%s; OOD threshold %.2f", time.time() - t0,
             out.k, out.ood_threshold)
    return out, timings


def build_graph(t: Trained) -> EnsembleGraph:
    g = EnsembleGraph(t.members, quality=t.quality)
    h = t.heads["fused"]
    g.set_heads(h["w"], h["beta"], h["bias"])
    g.set_ood(t.ood["mean"], t.ood["precision"])
    if t.cam_reference is not None:
        g.set_cam_reference(t.cam_reference)
    g.eval()
    return g


def choose_cam(t: Trained, a: Cohort, split: dict) -> None:
    """Plain CAM or CAM relative to the training-mean map: whichever puts more of its positive mass inside the truth
    mask on the VALIDATION set (hip outcome). Both are exact decompositions of the image term; see net.py."""
    from .evaluate import cam_mass
    va = a.subset(split["val"][~a.tab["should_exclude"][split["val"]]])
    ref = np.einsum("mkc,mchw->khw", t.heads["fused"]["w"], t.mean_maps) / len(t.members)
    scores = {}
    for name, r in (("plain", np.zeros_like(ref)), ("training_mean_reference", ref)):
        t.cam_reference = r
        _, cam, _ = run_graph(build_graph(t), va.images, va.clinical())
        scores[name] = float(np.nanmedian(cam_mass(cam[:, 0], va.masks)))
    best = max(scores, key=scores.get)
    t.cam_reference = ref if best == "training_mean_reference" else np.zeros_like(ref)
    t.cam_choice = {"chosen": best, "validation_median_share_in_mask_hip": scores}
    log.info("CAM variant chosen on validation: %s", t.cam_choice)


@torch.no_grad()
def run_graph(g: EnsembleGraph, images: np.ndarray, clin: np.ndarray, batch: int = 128):
    lh, cams, ds = [], [], []
    for i in range(0, len(images), batch):
        a, b, c = g(torch.from_numpy(images[i:i + batch][:, None]), torch.from_numpy(clin[i:i + batch]))
        lh.append(a.numpy()), cams.append(b.numpy()), ds.append(c.numpy())
    return np.concatenate(lh), np.concatenate(cams), np.concatenate(ds)


# ---------------------------------------------------------------------------------------------------------- driver
def run(cfg: dict, *, work: str | None = None, out_dir: str | None = None, cohort_dirs: dict | None = None,
        await_cohorts_s: float = 0.0) -> dict:
    from . import card, evaluate, export, manifest, parity

    t_start = time.time()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = work or cfg.get("work_dir") or os.path.join(tempfile.gettempdir(), "frcds-train", cfg["id"])
    work = repo_path(work)
    out_dir = repo_path(out_dir or cfg.get("out_dir") or os.path.join(work, "out"))
    os.makedirs(out_dir, exist_ok=True)
    log.info("config %s; work %s; out %s", cfg.get("_config_path"), work, out_dir)
    timings: dict[str, float] = {}

    t0 = time.time()
    cc = cfg["cohort"]
    if cohort_dirs:
        a, b = load_cohort(cohort_dirs["A"]), load_cohort(cohort_dirs["B"])
    else:
        a = ensure_cohort(os.path.join(work, "cohort-A"), "A", cc["site_a"]["patients"], cc["site_a"]["seed"],
                          cc.get("dicom", "none"), await_cohorts_s)
        b = None                    # site B is needed only for the evaluation: generated (or awaited) after training
    timings["cohorts_s"] = time.time() - t0

    sp = cfg["split"]
    split = split_by_patient(len(a), sp["train"], sp["val"], sp["seed"])
    trained, tt = train_all(cfg, a, split, work)
    timings.update(tt)
    if b is None:
        t0 = time.time()
        b = ensure_cohort(os.path.join(work, "cohort-B"), "B", cc["site_b"]["patients"], cc["site_b"]["seed"],
                          cc.get("dicom", "none"), await_cohorts_s)
        timings["cohorts_s"] += time.time() - t0

    t0 = time.time()
    choose_cam(trained, a, split)
    graph = build_graph(trained)
    onnx_path = os.path.join(out_dir, "model.onnx")
    export.export_onnx(graph, onnx_path, size=a.images.shape[1])
    timings["export_s"] = time.time() - t0

    t0 = time.time()
    nonhip_imgs, nonhip_kinds = None, []
    try:
        nonhip_imgs, nonhip_kinds = render_non_hip(int(cfg["ood"]["nonhip_per_kind"]), int(cfg["ood"]["seed"]))
    except (ImportError, AttributeError) as e:        # the imaging package lacks the non-hip renderer
        log.error("non-hip images unavailable: %s", e)
    timings["nonhip_render_s"] = time.time() - t0

    t0 = time.time()
    ev = evaluate.evaluate(cfg, trained, graph, a, b, split, nonhip_imgs, nonhip_kinds, out_dir)
    timings["evaluate_s"] = time.time() - t0

    t0 = time.time()
    fixtures = parity.write_fixtures(cfg, graph, a, split, nonhip_imgs, out_dir, work)
    timings["parity_s"] = time.time() - t0
    timings["total_s"] = time.time() - t_start
    ev["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    ev["training"]["cohort_meta"] = {"A": a.meta.get("timings"), "B": b.meta.get("timings")}
    with open(os.path.join(out_dir, "evaluation.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in ev.items() if not k.startswith("_")}, f, indent=1, allow_nan=False)
    man = manifest.build(cfg, trained, ev, onnx_path, fixtures, a)
    manifest.validate(man)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(man, f, indent=1, allow_nan=False)
    card.write(cfg, man, ev, out_dir)
    log.info("pipeline finished in %.0f s", time.time() - t_start)
    return {"evaluation": ev, "manifest": man, "out_dir": out_dir, "work": work}
