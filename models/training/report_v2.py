"""Recomputes hip-xray-v2's figures from its saved predictions (v2 beside v1 on the same test patients) and writes
report.json and report.md; prints the table.

    sh models/training/run models/training/report_v2.py --pred-dir models/hip-xray-v2/predictions

v1's predictions on the same patients come from ``sh models/training/run -m frcds.report.v1 ...`` (frcds/report/v1.py).
Exit status: 0 when the report was written, whatever targets it misses; 2 when an input file is missing or malformed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from frcds.report.predictions import PredictionsFormatError
from frcds.report.report import build, markdown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pred-dir", required=True, help="directory with site_{a,b}_test.csv.gz and v1_site_{a,b}_test.csv.gz")
    ap.add_argument("--out", help="where report.json and report.md go (default: the parent of --pred-dir)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--training-eval", help="training's evaluation.json, for a non-hip OOD AUROC when the predictions "
                                            "hold no non-hip rows (default: evaluation.json beside --out)")
    args = ap.parse_args(argv)
    pred_dir = os.path.abspath(args.pred_dir)
    out = os.path.abspath(args.out or os.path.dirname(pred_dir))
    try:
        rep = build(pred_dir, args.bootstrap, args.seed, args.training_eval or os.path.join(out, "evaluation.json"))
    except PredictionsFormatError as e:
        print(f"report_v2: malformed input: {e}", file=sys.stderr)
        return 2
    md = markdown(rep)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(rep, f, indent=1, allow_nan=False)
        f.write("\n")
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
