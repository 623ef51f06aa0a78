"""MODEL_CARD.md and its PNG plots, rendered from evaluation.json and the manifest by script (issue 3, item 5).
Every number in the card is read from those two objects; nothing is typed in by hand."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .data import OUTCOMES  # noqa: E402

MODELS = ("fused", "image", "clinical", "oracle")
LABEL = {"fused": "fused (image + QFracture)", "image": "image only", "clinical": "clinical only (QFracture-2012)",
         "oracle": "oracle (true risk)"}
COLOR = {"fused": "C0", "image": "C1", "clinical": "C2", "oracle": "C3"}


def _f(x, nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}"


def _ci(m: dict, nd=3) -> str:
    if m is None or m.get("value") is None:
        return "n/a"
    ci = m.get("ci95")
    return f"{m['value']:.{nd}f}" + (f" ({ci[0]:.{nd}f}–{ci[1]:.{nd}f})" if ci else "")


def plots(ev: dict, out_dir: str) -> list[str]:
    files = []
    # calibration: predicted vs Kaplan-Meier observed by decile of predicted 10-y risk
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, o in zip(axes, OUTCOMES):
        hi = 0.0
        for m in MODELS:
            pts = ev["calibration_plot"][o][m]
            p = [d["predicted"] for d in pts]
            k = [d["observed_km"] for d in pts]
            hi = max(hi, max(p), max(k))
            ax.plot(p, k, "o-", color=COLOR[m], label=LABEL[m], ms=4)
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel("mean predicted 10-year risk (decile)")
        ax.set_ylabel("Kaplan–Meier observed 10-year incidence")
        ax.set_title(f"{o.upper()} — site-A test")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    files.append("calibration.png")
    fig.savefig(os.path.join(out_dir, files[-1]), dpi=110)
    plt.close(fig)

    # discrimination with CIs, site A test vs site B
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, o in zip(axes, OUTCOMES):
        for j, (setname, key) in enumerate((("site-A test", "test"), ("site B", "site_b"))):
            for i, m in enumerate(MODELS):
                c = ev[key][o][m]["harrell_c10"]
                if c["value"] is None:
                    continue
                x = i + (j - 0.5) * 0.3
                err = None if not c["ci95"] else [[c["value"] - c["ci95"][0]], [c["ci95"][1] - c["value"]]]
                ax.errorbar(x, c["value"], yerr=err, fmt="o" if j == 0 else "s", color=COLOR[m],
                            label=setname if i == 0 else None, mfc="white" if j else COLOR[m])
        ax.set_xticks(range(len(MODELS)))
        ax.set_xticklabels([m for m in MODELS])
        ax.set_ylabel("Harrell's C at 10 years (95 % CI)")
        ax.set_title(o.upper())
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append("discrimination.png")
    fig.savefig(os.path.join(out_dir, files[-1]), dpi=110)
    plt.close(fig)

    # OOD distances
    d = ev.get("_distances") or {}
    fig, ax = plt.subplots(figsize=(7, 4))
    allv = np.concatenate([np.asarray(v) for v in d.values() if v is not None])
    bins = np.linspace(0, np.quantile(allv, 0.995), 60)
    for name, v in d.items():
        if v is not None:
            ax.hist(np.clip(v, 0, bins[-1]), bins=bins, histtype="step", density=True, label=f"{name} (n={len(v)})")
    ax.axvline(ev["ood"]["threshold"], color="k", ls="--", label="threshold (validation)")
    ax.set_xlabel("Mahalanobis distance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append("ood.png")
    fig.savefig(os.path.join(out_dir, files[-1]), dpi=110)
    plt.close(fig)

    # CAM examples
    ex = ev.get("_cam_examples")
    if ex is not None:
        n = len(ex["images"])
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6))
        for i, ax in enumerate(np.atleast_1d(axes)):
            img, cam, mask = ex["images"][i], ex["cam"][i, 0], ex["masks"][i]
            s = img.shape[0]
            up = np.kron(cam, np.ones((s // cam.shape[0], s // cam.shape[1])))
            ax.imshow(img, cmap="gray")
            if up.max() > 0:
                ax.imshow(up / up.max(), cmap="jet", alpha=0.35)
            ax.contour(mask, levels=[0.5], colors="w", linewidths=0.8)
            ax.set_title(f"hip risk {100 * ex['risk_hip'][i]:.1f} %", fontsize=8)
            ax.axis("off")
        fig.suptitle("Hip CAM (colour) and truth signal mask (white contour), site-A test", fontsize=9)
        fig.tight_layout()
        files.append("cam_examples.png")
        fig.savefig(os.path.join(out_dir, files[-1]), dpi=110)
        plt.close(fig)
    return files


def write(cfg: dict, man: dict, ev: dict, out_dir: str) -> None:
    if "_distances" in ev:
        files = plots(ev, out_dir)
    else:                       # re-rendering from the saved JSON: the PNGs of the run are already there
        files = [f for f in ("calibration.png", "discrimination.png", "ood.png", "cam_examples.png")
                 if os.path.exists(os.path.join(out_dir, f))]
    L = []
    L.append(f"# Model card: {man['id']} v{man['version']}\n")
    L.append("> **Research use only — trained and evaluated on SYNTHETIC data.** This model has never seen a real patient's "
             "radiograph or outcome and must not inform the care of a real person. Its numbers show that the "
             "pipeline recovers a signal that the simulation put into the images, nothing more. "
             "Clinical factors: " + man["clinical_term"]["attribution"] + ".\n")
    L.append("*Generated by `npm run train -- --config " + cfg.get("_config_path", "") + "` "
             "(models/training/frcds/model/card.py) from `evaluation.json` and `manifest.json`; do not edit by hand.*\n")
    L.append("## Intended use\n")
    L.append(man["intended_use"]["purpose"] + "\n")
    L.append(f"Population: {man['intended_use']['population']['description']}. "
             f"Out of scope: {'; '.join(man['intended_use']['out_of_scope'])}.\n")
    L.append("## Model\n")
    ar = man["architecture"]
    L.append(f"- Backbone: {ar['backbone']}, {ar['feature_channels']} feature channels, "
             f"{ar['parameters_per_member']:,} parameters per member; {man['ensemble']['members']} members "
             f"({man['ensemble']['method']}).")
    L.append(f"- Fusion: {ar['fusion']}. {man['clinical_term']['definition']}.")
    L.append(f"- Training: mini-batch Cox partial likelihood for both outcomes + auxiliary regression of "
             f"{' and '.join(ar['auxiliary_training_targets'])} (available in the synthetic training cohort; a real "
             f"development cohort would need DXA). Then: {ar['head_refit']}.")
    L.append(f"- Risk: {man['risk_model']['formula']}; {man['risk_model']['baseline']}.")
    L.append(f"- Interval: {man['uncertainty']['interval']}; k = "
             + ", ".join(f"{o} {_f(v, 2)}" for o, v in man["uncertainty"]["interval_factor"].items())
             + " (calibrated on validation).")
    L.append(f"- OOD: {man['ood']['method']}; threshold {_f(man['ood']['threshold'], 2)} "
             f"({man['ood']['threshold_rule']}).")
    L.append(f"- Heatmap: {man['explanation']['method']}; {man['explanation']['grid'][0]}×"
             f"{man['explanation']['grid'][1]} grid, {man['explanation']['aggregation']}.")
    L.append(f"- ONNX: opset {man['onnx']['opset']}, {man['onnx']['bytes'] / 1e6:.1f} MB, sha256 "
             f"`{man['onnx']['sha256']}`.\n")
    L.append("## Data\n")
    td = man["training_data"]
    L.append(f"Source: {td['source']}. Site A: {td['site_a']['patients']} patients (seed "
             f"{td['site_a']['seed']}), split by patient into train {td['split']['train']}, validation "
             f"{td['split']['validation']}, and test (clean n = {ev['sets']['test_site_a']}). Site B (another vendor and "
             f"population mix, external): {td['site_b_external']['patients']} patients, clean n = {ev['sets']['site_b']}. "
             f"{td['eligibility']}. Reference standard: {td['reference_standard']}.\n")
    L.append("## Must-show targets (site-A test, hip, 10 years)\n")
    L.append("| target | value | required | met |\n|---|---|---|---|")
    def fmt(x):
        if isinstance(x, bool) or x is None:
            return "n/a" if x is None else str(x)
        if isinstance(x, int):
            return str(x)
        if isinstance(x, float):
            return _f(x)
        if isinstance(x, list):
            return "–".join(fmt(y) for y in x)
        return str(x)

    for k, v in ev["must_show"].items():
        L.append(f"| {k} | {fmt(v['value'])} | {fmt(v['target'])} | {'yes' if v['met'] else '**NO**'} |")
    L.append("")
    for o in OUTCOMES:
        t = ev["test"][o]
        L.append(f"## Discrimination and calibration — {o.upper()} (site-A test, n = {t['n']}, "
                 f"{t['events_10y']} events by 10 y; bootstrap 95 % CI)\n")
        L.append("| model | Harrell C10 | Uno C10 | AUC 2 y | AUC 5 y | AUC 10 y | IBS | cal. slope | cal. intercept "
                 "| 95 % interval coverage |\n|---|---|---|---|---|---|---|---|---|---|")
        for m in MODELS:
            r = t[m]
            L.append(f"| {LABEL[m]} | {_ci(r['harrell_c10'])} | {_ci(r['uno_c10'])} | {_ci(r['auc_2y'])} | "
                     f"{_ci(r['auc_5y'])} | {_ci(r['auc_10y'])} | {_ci(r['ibs_10y'], 4)} | "
                     f"{_ci(r['calibration_slope'], 2)} | {_ci(r['calibration_intercept'], 2)} | "
                     f"{_ci(r['coverage_95'], 3)} |")
        d = t["differences"]
        L.append("\nDifferences in Harrell's C: " + "; ".join(f"{k.replace('_', ' ')} {_ci(v)}" for k, v in d.items())
                 + ".\n")
    L.append("Oracle interval coverage is n/a: the oracle is the true risk itself. The clinical-only comparator's "
             "interval comes from bootstrap refits of its Cox coefficient, widened on validation like the others.\n")
    L.append(f"![calibration]({files[0]})\n\n![discrimination]({files[1]})\n")
    L.append("## Subgroups and site B (Harrell's C at 10 y, calibration slope)\n")
    for o in OUTCOMES:
        L.append(f"**{o.upper()}**\n")
        L.append("| subgroup | n | events | fused C | clinical C | oracle C | fused slope | fused coverage |\n"
                 "|---|---|---|---|---|---|---|---|")
        for g, r in ev["subgroups"][o].items():
            L.append(f"| {g} | {r['n']} | {r['events_10y']} | {_ci(r['fused']['harrell_c10'])} | "
                     f"{_ci(r['clinical']['harrell_c10'])} | {_ci(r['oracle']['harrell_c10'])} | "
                     f"{_ci(r['fused']['calibration_slope'], 2)} | {_ci(r['fused']['coverage_95'])} |")
        drop = ev["site_b"][o]["c_drop_vs_site_a"]
        L.append(f"\nSite-B drop in Harrell's C (site-A test minus site B): " +
                 ", ".join(f"{m} {_f(drop[m])}" for m in MODELS) + ". The oracle's drop measures the change in "
                 "case mix alone; the fused model's drop beyond it is the cost of the vendor shift.\n")
    oo = ev["ood"]
    L.append("## Out-of-distribution detection\n")
    L.append(f"Threshold {_f(oo['threshold'], 2)} ({oo['threshold_rule']}). Flagged: validation "
             f"{_f(oo['flagged_fraction']['validation_site_a'])}, site-A test {_f(oo['flagged_fraction']['test_site_a'])}, "
             f"site B {_f(oo['flagged_fraction']['site_b'])}.\n")
    L.append("| positives vs site-A test | n | AUROC | sensitivity at threshold |\n|---|---|---|---|")
    for grp in ("artefact", "non_hip"):
        if grp in oo:
            L.append(f"| {grp} (all) | {oo[grp]['n']} | {_f(oo[grp]['auroc'])} | "
                     f"{_f(oo[grp]['sensitivity_at_threshold'])} |")
            for k, v in oo[grp]["by_kind"].items():
                L.append(f"| {grp}: {k} | {v['n']} | {_f(v['auroc'])} | {_f(v['sensitivity_at_threshold'])} |")
        else:
            L.append(f"| {grp} | 0 | not evaluated | |")
    L.append(f"\n![ood]({files[2]})\n")
    cm = ev["cam"]
    L.append("## Heatmap\n")
    L.append(f"Share of positive CAM mass inside the truth signal mask (femoral neck + intertrochanteric region), "
             f"median over site-A test: hip {_f(cm['hip']['median_share_in_mask'])} (IQR "
             f"{_f(cm['hip']['iqr'][0])}–{_f(cm['hip']['iqr'][1])}), MOF {_f(cm['mof']['median_share_in_mask'])}; "
             f"the mask covers a median {_f(cm['mask_area_fraction_median'])} of the working image, which is what a "
             f"uniform map would score. Hip, by predicted risk: top quintile "
             f"{_f(cm['hip'].get('median_share_in_mask_top_risk_quintile'))}, other four quintiles "
             f"{_f(cm['hip'].get('median_share_in_mask_bottom_four_quintiles'))}.\n")
    if len(files) > 3:
        L.append(f"![cam]({files[3]})\n")
    L.append("## Limitations\n")
    for x in man["limitations"]:
        L.append(f"- {x}")
    missed = [k for k, v in ev["must_show"].items() if not v["met"]]
    if missed:
        L.append(f"- Must-show targets NOT met in this run: {', '.join(missed)}. See the notes below.")
    for note in cfg.get("card_notes", []):
        L.append(f"- {note}")
    L.append("\n## Timings of the pipeline run that wrote this card (this machine, 2 CPU cores)\n")
    tm = ev.get("timings_s", {})
    L.append(", ".join(f"{k} {v:.0f} s" for k, v in tm.items()) + "."
             + (" Ensemble members were loaded from the training run's checkpoints (cohorts and members are reused "
                "when present); the training run's own timings are in the notes above." if
                tm.get("train_members_s", 1e9) < 60 else "") + "\n")
    with open(os.path.join(out_dir, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


def main(argv=None) -> int:
    """Re-renders MODEL_CARD.md from an artefact's evaluation.json and manifest.json (e.g. after editing the
    config's ``card_notes``) without re-running the pipeline: ``python -m frcds.model.card --config C --out DIR``."""
    import argparse
    import json

    from .pipeline import load_config, repo_path
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", help="artefact directory (default: the config's out_dir)")
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    out = repo_path(a.out or cfg["out_dir"])
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        man = json.load(f)
    with open(os.path.join(out, "evaluation.json"), encoding="utf-8") as f:
        ev = json.load(f)
    write(cfg, man, ev, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
