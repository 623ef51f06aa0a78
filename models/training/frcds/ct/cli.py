"""Write N synthetic CT studies (axial series + localizer + truth.json) for the opportunistic-CT pathway.

    sh models/training/run -m frcds.ct.cli --out DIR --patients N --seed S [--site A] [--size full|test]
                                           [--syntax explicit|rle]

Each patient is drawn from the cohort generator's population (``sample_person``) and bone state
(``sample_bone``), so the T-score behind the CT is the same latent state the rest of the synthetic cohort uses.
Every patient has its own random stream (seed, index): adding patients does not change earlier ones.
Prints one JSON line per study (timings, size) and writes ``index.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..cohort.bone import sample_bone
from ..cohort.population import sample_person
from .acquisition import acquire, sample_acquisition
from .dicom import write_study
from .phantom import sample_anatomy


def simulate_study(out: Path, seed: int, i: int, *, site: str = "A", size: str = "full",
                   syntax: str = "explicit") -> dict:
    rng = np.random.default_rng([seed, i, 0xC7])
    person = sample_person(rng, site)
    bone = sample_bone(person, rng)
    an = sample_anatomy(rng, t_score=bone.bmd_t, age=person.age, sex=person.sex, bmi=person.bmi)
    acq = sample_acquisition(rng, an, size=size)
    t0 = time.perf_counter()
    vol = acquire(an, acq, rng)
    t1 = time.perf_counter()
    key = f"frcds-ct|{seed}|{site}|{i}"
    study_dir = out / f"ct-{site.lower()}{seed}-{i + 1:05d}"
    date = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 3)))
    truth = write_study(study_dir, key, an, vol, patient_id=f"SYNCT{site}{seed}-{i + 1:06d}",
                        study_date=date.strftime("%Y%m%d"), syntax=syntax)
    t2 = time.perf_counter()
    mb = sum(f.stat().st_size for f in study_dir.rglob("*.dcm")) / 1e6
    return {"study": study_dir.name, "slices": truth["geometry"]["n_slices"], "matrix": acq.matrix,
            "thickness_mm": acq.slice_thickness, "protocol": acq.protocol, "phase": acq.phase,
            "volume_s": round(t1 - t0, 3), "write_s": round(t2 - t1, 3), "mb": round(mb, 2),
            "t_score": round(an.t_score, 2), "l1_hu": round(an.l1_trab_hu, 1),
            "fractures": [(v.label, v.grade, v.morphology) for v in an.vertebrae if v.grade]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="frcds.ct.cli", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--patients", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--site", default="A")
    ap.add_argument("--size", choices=("full", "test"), default="full")
    ap.add_argument("--syntax", choices=("explicit", "rle"), default="explicit")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(a.patients):
        r = simulate_study(out, a.seed, i, site=a.site, size=a.size, syntax=a.syntax)
        print(json.dumps(r), flush=True)
        rows.append(r)
    (out / "index.json").write_text(json.dumps({"seed": a.seed, "site": a.site, "size": a.size, "studies": rows},
                                               indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
