"""Training of ct-spine-v1 from OBSERVABLES only (the columns :func:`frcds.ct.cohort.load_observables` returns):
the chart QFracture-2012 risks, the charted DXA femoral-neck T-score, the CT header fields, what the service's
analysis measured (L1 median HU, reported contrast phase, worst Genant grade) and the censored outcomes.

1. Contrast phase offsets (HU added at the trabecular ROI): least squares of the measured HU on the reported phase
   (+ age, sex), non-contrast the reference, each phase with at least ``min_phase_n`` studies. When the analysis
   reports no labelled non-contrast reference (a series description without a phase word reads as 'unknown'), the
   portal-venous offset comes from the split on the ContrastBolusAgent header tag, and 'unknown' is referred to the
   no-agent studies. Phases absent from the data get the documented fallback of the config.
2. T-score from attenuation: ordinary least squares of the charted DXA T-score on the phase-adjusted HU over the
   training patients with both; predictive sd = the residual sd. An unknown phase widens the sd by
   ``unknown_phase_extra_sd`` = |slope| × the sd of the contrast offset among unknown-phase studies.
3. Per member (bootstrap of the training patients) and outcome a Cox model on [clinical_k = cloglog(QF10_k), T,
   grade 1, 2, 3 dummies], T = the measured DXA where the chart has one, else the CT estimate, else the prior
   (``model2.fit.best_tscore``), with the offset ½γ²sd² of the T predictive (as model2's ``fit_survival``), γ
   re-estimated over three passes. Ridge on the grade dummies only (``grade_l2``): a bootstrap sample may hold few
   grade-3 events.
4. Breslow baselines 0..10 y (monthly) on the log of the served mixture-mean multiplier (T as the service serves
   it: DXA no older than ``dxa_max_age_years``, else the CT estimate, else the prior), as model2 does.

Cox, Breslow and the mixture come from :mod:`frcds.model.survival`, :mod:`frcds.model2.fit` and
:mod:`frcds.model2.mixture`; nothing here opens the truth file.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

import numpy as np

from ..model.survival import MONTHLY_GRID, breslow, fit_cox
from ..model2 import mixture
from ..model2.fit import best_tscore
from ..model2.observables import OUTCOMES, ObservableTable, cloglog_risk
from .cohort import load_observables

log = logging.getLogger("frcds.ct.train")
PHASES = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")


def clinical(tab: ObservableTable) -> np.ndarray:
    """[N, 2] cloglog of the chart QFracture-2012 10-year risks (hip, MOF)."""
    return np.stack([cloglog_risk(np.asarray(tab["qf_risk10_hip"], float) / 100.0),
                     cloglog_risk(np.asarray(tab["qf_risk10_mof"], float) / 100.0)], axis=1)


def grade_dummies(grade: np.ndarray) -> np.ndarray:
    g = np.asarray(grade, int)
    return np.stack([(g == k).astype(float) for k in (1, 2, 3)], axis=1)


def _ols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(x, y, rcond=None)[0]


def fit_phase_offsets(tab: ObservableTable, cfg: dict) -> dict:
    hu = np.asarray(tab["ct_hu"], float)
    phase = np.asarray(tab["ct_phase"]).astype(str)
    ok = np.isfinite(hu)
    age, sex = np.asarray(tab["age"], float), np.asarray(tab["sex"], float)
    min_n = int(cfg["min_phase_n"])
    counts = {p: int((ok & (phase == p)).sum()) for p in PHASES}
    offsets: dict[str, float] = {"non-contrast": 0.0}
    how: dict[str, str] = {"non-contrast": "reference"}
    if counts["non-contrast"] >= min_n:
        est = [p for p in PHASES[1:] if counts[p] >= min_n]
        sel = ok & np.isin(phase, ["non-contrast"] + est)
        x = np.column_stack([np.ones(sel.sum()), age[sel] - 70, sex[sel]] +
                            [(phase[sel] == p).astype(float) for p in est])
        b = _ols(x, hu[sel])
        for j, p in enumerate(est):
            offsets[p], how[p] = float(b[3 + j]), f"least squares on reported phase ({counts[p]} vs " \
                                                    f"{counts['non-contrast']} non-contrast studies)"
    agent = np.asarray(tab["contrast_agent_recorded"], bool)
    if "portal-venous" not in offsets and (ok & agent).sum() >= min_n and (ok & ~agent).sum() >= min_n:
        # no labelled phases: a recorded contrast agent marks (portal-venous) contrast studies; the no-agent group is
        # the reference (it still holds contrast studies whose agent was not recorded, so this is a lower bound)
        x = np.column_stack([np.ones(ok.sum()), age[ok] - 70, sex[ok], agent[ok].astype(float)])
        b = _ols(x, hu[ok])
        offsets["portal-venous"] = float(b[3])
        how["portal-venous"] = f"least squares on the ContrastBolusAgent tag ({int((ok & agent).sum())} with, " \
                               f"{int((ok & ~agent).sum())} without)"
        if "unknown" not in offsets:
            # 'unknown' studies are referred to the no-agent ones: their own mean offset is then 0 by construction,
            # and the agent ones are adjusted by the estimate above only when the service reports their phase
            offsets["unknown"], how["unknown"] = 0.0, "reference (no-agent studies) when no phase is reported"
    fb = cfg["fallback_offsets_hu"]
    for p in PHASES:
        if p not in offsets:
            offsets[p] = float(fb[p]) if p != "unknown" else float(offsets.get("portal-venous", fb["portal-venous"])
                                                                  * cfg["unknown_contrast_share"])
            how[p] = "fallback (not enough studies): " + ("config" if p != "unknown" else
                                                          "portal-venous offset x config unknown_contrast_share")
    return {"offsets": offsets, "how": how, "counts": counts}


def adjusted_hu(tab: ObservableTable, offsets: dict[str, float]) -> np.ndarray:
    hu = np.asarray(tab["ct_hu"], float)
    phase = np.asarray(tab["ct_phase"]).astype(str)
    return hu - np.array([offsets.get(p, offsets["unknown"]) for p in phase])


def fit_tscore(tab: ObservableTable, adj: np.ndarray, phases: dict, cfg: dict) -> dict:
    dxa = np.asarray(tab["dxa_t"], float)
    pair = np.isfinite(adj) & np.isfinite(dxa)
    slope, intercept = np.polyfit(adj[pair], dxa[pair], 1)
    resid = dxa[pair] - (intercept + slope * adj[pair])
    sd = float(resid.std(ddof=2))
    pv = phases["offsets"]["portal-venous"]
    q = float(cfg["unknown_contrast_share"])
    extra = abs(slope) * abs(pv) * math.sqrt(q * (1 - q))
    return {"intercept": float(intercept), "slope": float(slope), "sd": sd, "pairs": int(pair.sum()),
            "unknown_phase_extra_sd": float(extra)}


def ct_tscore(tab: ObservableTable, adj: np.ndarray, ts: dict, prior: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """The T estimate from attenuation and its sd as the service computes it; the prior where none."""
    phase = np.asarray(tab["ct_phase"]).astype(str)
    m = ts["intercept"] + ts["slope"] * adj
    s = np.where(phase == "unknown", math.hypot(ts["sd"], ts["unknown_phase_extra_sd"]), ts["sd"])
    if prior is not None:
        miss = ~np.isfinite(adj)
        m, s = np.where(miss, prior["mean"], m), np.where(miss, prior["sd"], s)
    return m, s


def served_tscore(tab: ObservableTable, t_ct: np.ndarray, sd_ct: np.ndarray, dxa_sd: float,
                  max_age: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T as the service uses it: a measured DXA no older than ``max_age`` years, else the CT estimate (or prior)."""
    dxa, yrs = np.asarray(tab["dxa_t"], float), np.asarray(tab["dxa_years"], float)
    use = np.isfinite(dxa) & (np.nan_to_num(yrs, nan=np.inf) <= max_age)
    return np.where(use, np.nan_to_num(dxa), t_ct), np.where(use, dxa_sd, sd_ct), use


def fit_member(clin: np.ndarray, t_cov: np.ndarray, t_sd: np.ndarray, grades: np.ndarray, time_: np.ndarray,
               event: np.ndarray, grade_l2: float, iterations: int = 3) -> dict:
    """Cox on [clinical, T, grade dummies] with offset ½γ²sd² (γ from the previous pass)."""
    x = np.column_stack([clin, t_cov, grades])
    l2 = np.array([0.0, 0.0, grade_l2, grade_l2, grade_l2])
    gamma, b = -0.5, None
    for _ in range(iterations):
        b = fit_cox(x, time_, event, l2, offset=0.5 * gamma ** 2 * t_sd ** 2, weights_init=b)
        gamma = float(b[1])
    return {"clinical": float(b[0]), "tscore": float(b[1]), "fracture": [0.0] + [float(v) for v in b[2:]]}


def base_eta(members: list[dict], clin: np.ndarray, grade: np.ndarray) -> np.ndarray:
    """[N, M, 2] intercept + clinical + fracture terms."""
    g = np.asarray(grade, int)
    out = np.zeros((len(clin), len(members), 2))
    for m, mem in enumerate(members):
        for k, o in enumerate(OUTCOMES):
            out[:, m, k] = mem["intercept"][o] + mem["clinical"][o] * clin[:, k] + \
                np.asarray(mem["fracture"][o])[g]
    return out


def gammas(members: list[dict]) -> np.ndarray:
    return np.array([[mem["tscore"][o] for o in OUTCOMES] for mem in members])


def train(cfg: dict, tab: ObservableTable) -> dict:
    """Everything the manifest holds, fitted on ``tab`` (the training patients)."""
    t0 = time.time()
    mc = cfg["model"]
    ok = np.asarray(tab["ct_status"]).astype(str) == "ok"
    phases = fit_phase_offsets(tab.subset(np.flatnonzero(ok)), mc["phase"])
    adj = adjusted_hu(tab, phases["offsets"])
    ts = fit_tscore(tab, adj, phases, mc["phase"])
    t_ct, _ = ct_tscore(tab, adj, ts, None)
    have = np.isfinite(t_ct)
    prior = {"mean": float(np.mean(t_ct[have])), "sd": float(math.sqrt(np.var(t_ct[have]) + ts["sd"] ** 2))}
    t_ct, sd_ct = ct_tscore(tab, adj, ts, prior)
    dxa = np.asarray(tab["dxa_t"], float)
    dxa_sd, max_age = float(mc["dxa_precision_sd"]), float(mc["dxa_max_age_years"])
    t_cov, t_sd = best_tscore(t_ct, sd_ct, dxa, dxa_sd)
    clin = clinical(tab)
    grade = np.asarray(tab["ct_grade"], int)
    gd = grade_dummies(grade)
    times = {o: np.asarray(tab[f"time_{o}"], float) for o in OUTCOMES}
    events = {o: np.asarray(tab[f"event_{o}"]).astype(bool) for o in OUTCOMES}
    members = []
    rng = np.random.default_rng(int(mc["seed"]))
    n = len(clin)
    for m in range(int(mc["members"])):
        s = rng.integers(0, n, n)
        mem: dict = {"intercept": {}, "clinical": {}, "tscore": {}, "fracture": {}}
        for k, o in enumerate(OUTCOMES):
            f = fit_member(clin[s, k], t_cov[s], t_sd[s], gd[s], times[o][s], events[o][s], float(mc["grade_l2"]))
            mem["clinical"][o], mem["tscore"][o], mem["fracture"][o] = f["clinical"], f["tscore"], f["fracture"]
            # centre every member on the whole training set so members share one Breslow baseline
            eta = f["clinical"] * clin[:, k] + f["tscore"] * t_cov + np.asarray(f["fracture"])[grade]
            mem["intercept"][o] = -float(eta.mean())
        members.append(mem)
        log.info("member %d: %s", m, mem)
    sm, ss, _ = served_tscore(tab, t_ct, sd_ct, dxa_sd, max_age)
    m_count = len(members)
    eta, w = mixture.member_atoms(base_eta(members, clin, grade), gammas(members),
                                  np.repeat(sm[:, None], m_count, 1), np.repeat(ss[:, None], m_count, 1),
                                  int(cfg["uncertainty"]["gauss_hermite_nodes"]))
    h0 = {}
    for k, o in enumerate(OUTCOMES):
        eff = np.log((np.exp(eta[:, k]) * w).sum(1))
        h0[o] = breslow(eff, times[o], events[o], MONTHLY_GRID)
    return {"phases": phases, "tscore": ts, "prior": prior, "members": members, "h0": h0,
            "training": {"patients": n, "ct_ok": int(ok.sum()), "with_hu": int(np.isfinite(adj).sum()),
                         "dxa": int(np.isfinite(dxa).sum()), "events": {o: int(events[o].sum()) for o in OUTCOMES},
                         "grades": np.bincount(grade, minlength=4).tolist(),
                         "sources": {s: int(c) for s, c in zip(*np.unique(np.asarray(tab["ct_source"]).astype(str),
                                                                           return_counts=True))},
                         "seconds": round(time.time() - t0, 1)}}


def _r(x: float, d: int = 6) -> float:
    return float(round(float(x), d))


def manifest(cfg: dict, fit: dict) -> dict:
    mc = cfg["model"]
    ts = fit["tscore"]
    return {
        "schema_version": "1.0", "id": cfg["id"], "version": cfg["version"], "kind": "ct-spine", "name": cfg["name"],
        "synthetic_training_data": True, "not_for_clinical_use": True, "use_statement": cfg["use_statement"],
        "tscore_from_hu": {
            "intercept": _r(ts["intercept"]), "slope": _r(ts["slope"], 8), "sd": _r(ts["sd"]),
            "phase_offset_hu": {p: _r(fit["phases"]["offsets"][p], 3) for p in PHASES},
            "unknown_phase_extra_sd": _r(ts["unknown_phase_extra_sd"]),
            "fitted_on": f"{ts['pairs']} training patients with a charted femoral-neck DXA T-score and a measured "
                         f"L1 (else T12/L2) attenuation; phase offsets: " +
                         "; ".join(f"{p}: {h}" for p, h in fit["phases"]["how"].items()),
            "version": cfg["version"]},
        "tscore_prior": {"mean": _r(fit["prior"]["mean"]), "sd": _r(fit["prior"]["sd"])},
        "risk_model": {
            "kind": "tscore-mediated",
            "baseline_cumulative_hazard": {"grid_years": [_r(g) for g in MONTHLY_GRID],
                                           "hip": [_r(v, 8) for v in fit["h0"]["hip"]],
                                           "mof": [_r(v, 8) for v in fit["h0"]["mof"]]},
            "members": [{"intercept": {o: _r(m["intercept"][o]) for o in OUTCOMES},
                         "clinical": {o: _r(m["clinical"][o]) for o in OUTCOMES},
                         "tscore": {o: _r(m["tscore"][o]) for o in OUTCOMES},
                         "fracture": {o: [_r(v) for v in m["fracture"][o]] for o in OUTCOMES}}
                        for m in fit["members"]],
            "dxa_precision_sd": float(mc["dxa_precision_sd"]), "dxa_max_age_years": float(mc["dxa_max_age_years"])},
        "uncertainty": {"method": "quadrature", "gauss_hermite_nodes": int(cfg["uncertainty"]["gauss_hermite_nodes"])},
        "training_data": fit["training"],
        "limitations": cfg["limitations"],
        "references": cfg["references"],
    }


def load_manifest_model(man: dict) -> dict:
    """The fitted pieces back from a manifest (what evaluation and the service use)."""
    rm = man["risk_model"]
    return {"tscore": {**man["tscore_from_hu"]}, "offsets": man["tscore_from_hu"]["phase_offset_hu"],
            "prior": man["tscore_prior"], "members": rm["members"],
            "grid": np.asarray(rm["baseline_cumulative_hazard"]["grid_years"], float),
            "h0": {o: np.asarray(rm["baseline_cumulative_hazard"][o], float) for o in OUTCOMES},
            "dxa_sd": rm["dxa_precision_sd"], "dxa_max_age": rm["dxa_max_age_years"],
            "nodes": man["uncertainty"]["gauss_hermite_nodes"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="frcds.ct.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--train", required=True, help="training cohort directory (frcds.ct.cohort build)")
    ap.add_argument("--out", required=True, help="model directory (manifest.json is written there)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with open(a.config, encoding="utf-8") as f:
        cfg = json.load(f)
    fit = train(cfg, load_observables(a.train))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest(cfg, fit), f, indent=1)
        f.write("\n")
    log.info("wrote %s in %.1f s", os.path.join(a.out, "manifest.json"), fit["training"]["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
