"""Fracture-enriched CT studies for bench/ct-accuracy.ts: the studies of ``frcds.ct.cli``'s stream (seed, index)
whose phantom has a prevalent fracture at T11-L4 and whose acquisition allows heights (abdomen field, slices
<= 2.5 mm).

    sh models/training/run bench/ct_accuracy_studies.py --out DIR --studies N --seed S [--max-index M]

Prevalent fractures are rare (a few per hundred studies), so an unenriched run gives too few positive levels to
measure a sensitivity. Each index draws the patient, anatomy and acquisition exactly as ``simulate_study`` does
(same generator, same order; cheap) and only the selected indices are voxelised and written, by
``simulate_study`` itself, so every written study is identical to the one the CLI writes for that (seed, index).
Prints one JSON line per written study and writes ``index.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from frcds.cohort.bone import sample_bone
from frcds.cohort.population import sample_person
from frcds.ct.acquisition import sample_acquisition
from frcds.ct.cli import simulate_study
from frcds.ct.phantom import sample_anatomy

GRADED = ("T11", "T12", "L1", "L2", "L3", "L4")


def selected(seed: int, i: int, site: str) -> bool:
    rng = np.random.default_rng([seed, i, 0xC7])
    person = sample_person(rng, site)
    bone = sample_bone(person, rng)
    an = sample_anatomy(rng, t_score=bone.bmd_t, age=person.age, sex=person.sex, bmi=person.bmi)
    acq = sample_acquisition(rng, an, size="full")
    fractured = any(v.grade >= 1 and v.label in GRADED for v in an.vertebrae)
    return fractured and acq.protocol == "abdomen" and acq.slice_thickness <= 2.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--studies", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--site", default="A")
    ap.add_argument("--max-index", type=int, default=100_000)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(a.max_index):
        if len(rows) >= a.studies:
            break
        if not selected(a.seed, i, a.site):
            continue
        r = simulate_study(out, a.seed, i, site=a.site)
        r["index"] = i
        print(json.dumps(r), flush=True)
        rows.append(r)
    (out / "index.json").write_text(json.dumps({"seed": a.seed, "site": a.site, "enriched": "fracture T11-L4, abdomen, <= 2.5 mm",
                                               "studies": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
