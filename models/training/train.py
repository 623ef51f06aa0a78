"""Entry point of `npm run train -- --config models/training/configs/<name>.json` (issue 3): rebuilds the model from
scratch (or reuses cohorts and member checkpoints already in the work directory) and writes the artefact."""
from __future__ import annotations

import argparse
import logging
import sys

from frcds.model.pipeline import load_config, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True, help="JSON config, path relative to the repository root")
    ap.add_argument("--work", help="work directory for cohorts and checkpoints (default: config work_dir, else "
                                   "<system temp>/frcds-train/<id>)")
    ap.add_argument("--out", help="artefact directory (default: config out_dir, else <work>/out)")
    ap.add_argument("--cohort-a", help="use an existing site-A cohort directory instead of generating one")
    ap.add_argument("--cohort-b", help="use an existing site-B cohort directory instead of generating one")
    ap.add_argument("--cohort-fresh-a", help="hip-xray-v2: an existing site-A cohort for the fresh-seed evaluation")
    ap.add_argument("--cohort-fresh-b", help="hip-xray-v2: an existing site-B cohort for the fresh-seed evaluation")
    ap.add_argument("--await-cohorts", type=float, default=0.0, metavar="SECONDS",
                    help="another process is generating the cohorts in --work: wait for them instead of generating")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    if cfg.get("pipeline") == "v2":
        # hip-xray-v2 (frcds/model2): either cohort may be an existing directory, the other is generated
        from frcds.model2.pipeline import run as run_v2
        res = run_v2(cfg, work=args.work, out_dir=args.out, cohort_dirs={"A": args.cohort_a, "B": args.cohort_b,
                                                                  "A_fresh": args.cohort_fresh_a,
                                                                  "B_fresh": args.cohort_fresh_b})
        print(f"artefact written to {res['out_dir']}; site-A served hip C "
              f"{res['evaluation']['site_a_served']['hip']['harrell_c10']:.3f}")
        return 0
    dirs = None
    if args.cohort_a or args.cohort_b:
        if not (args.cohort_a and args.cohort_b):
            ap.error("--cohort-a and --cohort-b go together")
        dirs = {"A": args.cohort_a, "B": args.cohort_b}
    res = run(cfg, work=args.work, out_dir=args.out, cohort_dirs=dirs, await_cohorts_s=args.await_cohorts)
    missed = [k for k, v in res["evaluation"]["must_show"].items() if not v["met"]]
    print(f"artefact written to {res['out_dir']}; must-show targets missed: {missed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
