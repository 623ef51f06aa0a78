"""A simulated new hospital for the site check: ``sh models/training/run bench/vendor-c-site.py --patients 300
--seed 7777 --out DIR [--workers 2] [--size full|demo]``.

Writes a cohort (FHIR bundles incl. DXA Observations, DICOM for every patient, truth files) in the layout of
``npm run cohort`` and of the demo cohort, so the embedded sandboxes can serve it (``SANDBOX_DATA_DIR=DIR``) and
``npm run site-check`` can be run against it. Its radiographs come from vendor C (``VENDORS["C"]`` in
``frcds/imaging/acquisition.py``), a detector and image processing that no model is trained on; its patients, their
charts and outcomes are drawn as the generator draws site B's (the generator knows two populations), with a seed of
its own. Patient ids therefore read ``frcds-b<seed>-…``; the DICOM Manufacturer is vendor C's.

How: the generator calls ``acquisition.sample_acquisition(cfg.site, …)`` per patient; this script runs the
generator with that function bound to vendor C (in this process and its forked workers only). Nothing else changes,
so the same seed gives the same patients and charts as a site-B cohort of that seed, imaged by another vendor.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from frcds.cohort.cli import generate
from frcds.cohort.patient import CohortConfig
from frcds.imaging import acquisition

VENDOR = "C"
POPULATION_SITE = "B"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vendor-c-site.py", description="Generate a vendor-C site for the site check.")
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7777)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", choices=("full", "demo"), default="full",
                    help="full: detector-size images (about 2000-2500 px); demo: 2.3x coarser (smaller files)")
    a = ap.parse_args(argv)
    if a.patients < 1:
        print("vendor-c-site: --patients must be >= 1", file=sys.stderr)
        return 2
    if os.path.exists(a.out) and os.listdir(a.out):
        print(f"vendor-c-site: {a.out} is not empty", file=sys.stderr)
        return 2

    original = acquisition.sample_acquisition

    def vendor_c(site, rng, **kw):  # noqa: ARG001 - the site's population stays, the vendor changes
        return original(VENDOR, rng, **kw)

    acquisition.sample_acquisition = vendor_c
    cfg = CohortConfig(seed=a.seed, site=POPULATION_SITE, n=a.patients, n_dicom=a.patients, size=a.size)
    config = {"demo": False, "seed": a.seed, "site": f"vendor {VENDOR} (population of site {POPULATION_SITE})",
              "patients": a.patients, "dicom": "all", "images": True, "size": a.size}
    t0 = time.perf_counter()
    s = generate([cfg], a.out, max(1, a.workers), config)
    print(f"[vendor-c-site] wrote {s['counts']['patients']} patients ({s['counts'].get('dicom_written', 0)} DICOM "
          f"studies) to {a.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
