"""MODEL_CARD.md of hip-xray-v2 (TRIPOD+AI items) and its calibration plot, rendered from evaluation.json and the
manifest; every number is read from those objects."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .observables import OUTCOMES  # noqa: E402


def _f(x, nd=3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _s(x, nd=3) -> str:
    """Signed, or n/a: a small cohort can leave a difference undefined (no events: NaN, stored as null)."""
    return "n/a" if x is None else f"{x:+.{nd}f}"


def _p(x, nd=1) -> str:
    return "n/a" if x is None else f"{100 * x:.{nd}f} %"


def plot(ev: dict, out_dir: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, o in zip(axes, OUTCOMES):
        hi = 0.0
        for mode, col in (("served", "C0"), ("image", "C1")):
            pts = ev[f"site_a_{mode}"][o]["km_deciles"]
            p, k = [d["predicted"] for d in pts], [d["observed_km"] for d in pts]
            hi = max(hi, max(p), max(k))
            ax.plot(p, k, "o-", color=col, ms=4, label=f"{mode} (site-A test)")
            pts = ev[f"site_b_{mode}"][o]["km_deciles"]
            ax.plot([d["predicted"] for d in pts], [d["observed_km"] for d in pts], "s:", color=col, ms=3,
                    label=f"{mode} (site B)")
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel("mean predicted 10-year risk (decile)")
        ax.set_ylabel("Kaplan-Meier observed 10-year incidence")
        ax.set_title(o.upper())
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "calibration.png"), dpi=100)
    plt.close(fig)
    return "calibration.png"


def _risk_table(ev: dict, site: str) -> list[str]:
    rows = ["| outcome | mode | n (events) | C | QFracture C | C - QF (95 % CI) | KM-decile slope | top decile "
            "pred / KM obs | coverage of true risk | interval score | median top-decile interval |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for o in OUTCOMES:
        for mode in ("served", "image"):
            m = ev[f"{site}_{mode}"][o]
            td, w = m["top_decile"], m["median_top_decile_interval"]
            ci = m["c_minus_qfracture_ci95"]
            rows.append(f"| {o} | {mode} | {m['n']} ({m['events_10y']}) | {_f(m['harrell_c10'])} | "
                        f"{_f(m['qfracture_harrell_c10'])} | {_s(m['c_minus_qfracture'])} ({_s(ci[0])} to "
                        f"{_s(ci[1])}) | {_f(m['km_decile_slope'], 2)} | {_p(td['predicted'])} / "
                        f"{_p(td['observed_km'])} | {_f(m['coverage_true_risk10'])} | "
                        f"{_f(m['interval_score_alpha05'], 4)} | {_p(w['lo'])}-{_p(w['hi'])} |")
    return rows


def _recalibration(man: dict) -> list[str]:
    """The risk recalibration line, when the manifest records one (eta' = a + b * eta per outcome)."""
    rc = man["risk_model"].get("recalibration")
    if not rc:
        return []
    per = "; ".join(f"{o}: b {rc[o]['slope']:.3f}, a {rc[o]['intercept']:+.3f} ({rc[o]['observed']} events, "
                    f"{rc[o]['expected']:.1f} expected before the shift)" for o in ("hip", "mof"))
    return [f"- Risk recalibration on the site-A validation outcomes (rule fixed before any test figure was seen): "
            f"{rc['rule']} Fitted: {per}."]


def _fresh(ev: dict) -> list[str]:
    """The fresh-seed cohorts' section (evaluation.json "fresh"), when the config named them."""
    fr = ev.get("fresh")
    if not fr:
        return []
    c, oo, ts = fr["cohorts"], fr["ood"], fr["tscore"]
    return [
        "## Performance — fresh-seed cohorts (the figures this version is judged on)",
        f"Site A seed {c['site_a']['seed']} ({fr['sets']['test_site_a']} patients, {fr['sets']['test_site_a_clean']} "
        f"without quality-review rejects) and site B seed {c['site_b']['seed']} ({fr['sets']['site_b']} patients), "
        "generated after this version's choices were fixed; every patient is a test patient.", "",
        *_risk_table(fr, "site_a"), "", *_risk_table(fr, "site_b"), "",
        f"- Hip C drop site A -> B (served): {_s(fr['site_b_c_drop_served']['hip']['drop'])} "
        f"({_s(fr['site_b_c_drop_served']['hip']['ci95'][0])} to {_s(fr['site_b_c_drop_served']['hip']['ci95'][1])}).",
        f"- T-score vs measured DXA, site A: r {_f(ts['site_a_r_measured_dxa'])}, coverage "
        f"{_p(ts['site_a_coverage_measured_dxa'])} ({ts['site_a_dxa_pairs']} pairs); site B: r "
        f"{_f(ts['site_b_r_measured_dxa'])}, coverage {_p(ts['site_b_coverage_measured_dxa'])}, bias "
        f"{_s(ts['site_b_bias_vs_measured_dxa'], 2)} T.",
        f"- OOD: site-B clean flagged {_p(oo['site_b_clean_flagged'])}; artefact AUROC {_f(oo.get('artefact_auroc_site_a'))}"
        f" (site A), {_f(oo.get('artefact_auroc_site_b'))} (site B); by kind at site A: "
        + ", ".join(f"{k} {_f(v['auroc'])}" for k, v in oo.get("artefact_by_kind_site_a", {}).items()) + ".",
        f"- Low confidence (served): {_p(fr['site_a_served']['low_confidence']['high_tier'])} of high-tier site-A "
        f"patients; tiers {fr['site_a_served']['tiers']}.", ""]


def write(cfg: dict, man: dict, ev: dict, out_dir: str) -> None:
    fig = plot(ev, out_dir)
    ts, oo, cal = ev["tscore"], ev["ood"], man["tscore_head"]["calibration"]
    lines = [
        f"# Model card — {man['name']} ({man['id']} {man['version']})", "",
        "**Research use only. Trained and evaluated on SYNTHETIC data; not validated on patients.**", "",
        "## Model (TRIPOD+AI 1-3, 12)",
        "- Input: an AP hip radiograph (preprocessing recipe `frcds-hip-ap-v1`, unchanged from v1) and the chart's "
        "QFracture-2012 10-year risks (cloglog scale).",
        f"- An ensemble of {man['ensemble']['members']} small CNNs (bootstrap samples) gives a femoral-neck T-score "
        "predictive distribution (mean and sd per member) calibrated against measured DXA, and a base log-hazard "
        "per outcome; the risk is eta = base + gamma * T, integrated over the T-score mixture by "
        f"{man['uncertainty']['gauss_hermite_nodes']}-node Gauss-Hermite quadrature x members (no random numbers).",
        "- A measured DXA T-score in the chart no older than "
        f"{man['tscore_head']['dxa_max_age_years']} years replaces the estimate (sd "
        f"{man['tscore_head']['dxa_precision_sd']}, the densitometer's precision).",
        "- MOF includes hip: at every quadrature atom the MOF cumulative hazard is at least the hip's.", "",
        "## Data (TRIPOD+AI 4-8) — what is simulated",
        "- Everything: patients, charts, radiographs (phantoms rendered by two synthetic vendors), DXA results and "
        "outcomes come from this project's generator with known hidden variables.",
        f"- Site A (seed {cfg['cohort']['site_a']['seed']}, {cfg['cohort']['site_a']['patients']} patients): "
        f"train {cfg['split']['train']}, validation {cfg['split']['val']}, test {ev['sets']['test_site_a']} "
        f"({ev['sets']['test_site_a_clean']} without quality-review rejects). Site B (seed "
        f"{cfg['cohort']['site_b']['seed']}, {ev['sets']['site_b']} patients, another vendor and population): "
        "external test only; no site-B image was used for training, augmentation design or tuning.",
        "- **Observables only**: training and every tuned number (T-score calibration, Cox coefficients, "
        "baselines, low-confidence rule, OOD threshold) used the radiograph, the chart's QFracture inputs, censored "
        "outcomes, measured DXA read from the FHIR charts and the quality-review flag. The true T-score, "
        "microarchitecture, true risks and truth masks were read by the evaluation only (a test proves the training "
        "stage gives identical output when they are poisoned).",
        f"- T-score calibration: intercept {cal['intercept']:.3f}, slope {cal['slope']:.3f}, sd_scale "
        f"{cal['sd_scale']:.3f}, fitted on {cal['fitted_on']}.", *_recalibration(man), "",
        *([f"- Unmeasured determinants: log-hazard term u ~ N(-s^2/2, s^2), s = "
           f"{man['uncertainty']['unmeasured_log_hazard_sd']:.3f}, shared by hip and MOF and part of every interval "
           f"and threshold probability. {man['uncertainty'].get('unmeasured_log_hazard_note', '')}"]
          if man["uncertainty"].get("unmeasured_log_hazard_sd") else []), "",
        *_fresh(ev),
        "## Performance — site-A test (TRIPOD+AI 23)" + (" split (development data for this version)"
                                                         if ev.get("fresh") else ""),
        "'served' = measured DXA (<= max age) replaces the image T-score; 'image' = image T-score for everyone. "
        "Coverage and interval score use the TRUE simulated 10-year risk (available only because the data are "
        "simulated).", "", *_risk_table(ev, "site_a"), "",
        "## Performance — site B (external)", "", *_risk_table(ev, "site_b"), "",
        "| C drop site A -> B | hip | MOF |", "|---|---|---|",
        *[f"| {mode} | {ev[f'site_b_c_drop_{mode}']['hip']['drop']:+.3f} ({ev[f'site_b_c_drop_{mode}']['hip']['ci95'][0]:+.3f} to "
          f"{ev[f'site_b_c_drop_{mode}']['hip']['ci95'][1]:+.3f}) | {ev[f'site_b_c_drop_{mode}']['mof']['drop']:+.3f} |"
          for mode in ("served", "image")], "",
        "## T-score estimate",
        f"- Site A: r with the true T-score {_f(ts['site_a_r_true_t'])}, with measured DXA "
        f"{_f(ts['site_a_r_measured_dxa'])} ({ts['site_a_dxa_pairs']} pairs); 95 % interval covers measured DXA "
        f"{_p(ts['site_a_coverage_measured_dxa'])}; median width {_f(ts['site_a_median_interval_width'], 2)} T.",
        f"- Site B: r with the true T-score {_f(ts['site_b_r_true_t'])}, coverage of measured DXA "
        f"{_p(ts['site_b_coverage_measured_dxa'])}, bias {ts['site_b_bias_vs_measured_dxa']:+.2f} T.", "",
        "## Fail-safes",
        f"- OOD threshold {oo['threshold']:.2f} ({oo['threshold_rule']}). Flagged: site-A clean test "
        f"{_p(oo['site_a_test_clean_flagged'])}, site-B clean {_p(oo['site_b_clean_flagged'])}; artefact AUROC "
        f"{_f(oo.get('artefact_auroc_site_a'))} (site A), {_f(oo.get('artefact_auroc_site_b'))} (site B); "
        f"non-hip AUROC {_f(oo.get('non_hip_auroc'))}.",
        f"- Low confidence (served): {_p(ev['site_a_served']['low_confidence']['all'])} of site-A test patients, "
        f"{_p(ev['site_a_served']['low_confidence']['high_tier'])} of high-tier ones.", "",
        "## Decisions (site-A test, served)",
        f"- Tiers: {ev['site_a_served']['tiers']}; a measured DXA replaced the estimate for "
        f"{_p(ev['site_a_served'].get('dxa_used_fraction'))} of patients.",
        "- Brier score of P(10-year risk >= threshold) against the true risk being over it: hip (3 %) "
        f"{_f(ev['site_a_served']['hip']['threshold_probability_brier'], 4)} (prevalence-only reference "
        f"{_f(ev['site_a_served']['hip']['threshold_probability_brier_reference_prevalence'], 4)}), MOF (20 %) "
        f"{_f(ev['site_a_served']['mof']['threshold_probability_brier'], 4)} (reference "
        f"{_f(ev['site_a_served']['mof']['threshold_probability_brier_reference_prevalence'], 4)}).", "",
        "## What a site must check before use",
        "- Run the site check (recalibrate the T-score head on local radiograph + DXA pairs; the service records "
        "which calibration version it used) and confirm coverage of measured DXA 0.93-0.97 locally.",
        "- Confirm the OOD flag rate on a local sample of clean radiographs and that local artefacts are refused.",
        "- Check calibration of the risks against local outcomes (KM by decile) before any threshold is trusted; "
        "real outcomes are not generated by a known proportional-hazards model.",
        "- QFracture-2012 (not the current release) is the clinical term; the chart inputs must be complete.", "",
        "## Limitations", *[f"- {x}" for x in man.get("limitations", [])], "",
        *(["## Notes", *[f"- {x}" for x in cfg.get("card_notes", [])], ""] if cfg.get("card_notes") else []),
        f"![calibration]({fig})", "",
        f"Timings (s): {ev.get('timings_s', {})}", ""]
    with open(os.path.join(out_dir, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
