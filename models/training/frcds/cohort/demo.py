"""The committed demo cohort (contract 5): ≈40 site-A + 10 site-B patients whose hip radiographs were taken in
Oct–Nov 2026 (recent, fixed dates so the cohort is deterministic) with follow-up cut at ``DATA_CUTOFF`` (so no
future outcomes exist to leak); a few artefact cases and recent prior fractures; smaller (≈1,000 px) images except
two full-size studies; at least one study in every transfer syntax the generator makes; ≤ 30 MB in all.

Regenerate: ``npm run cohort -- --demo`` (writes ``server/sandbox/demo-cohort/``). Arrays are not written for the
demo (it is not a training set); run the CLI without ``--demo`` for training data.
"""
from __future__ import annotations

import datetime as dt

from .patient import CohortConfig, Override

DEMO_SEED = 2026
N_SITE_A, N_SITE_B = 40, 10
INDEX_START, INDEX_END = dt.date(2026, 10, 1), dt.date(2026, 11, 20)
DATA_CUTOFF = dt.date(2026, 11, 27)
# The phantom's images carry ≈8 bits of noise entropy per pixel, so lossless coding gives only ≈2:1 and fifty
# ≈1,000 px studies plus two full-size ones would take ≈50 MB. The demo-size images are therefore cropped to a
# 210 mm field (a tightly collimated hip view, ≈570 px at the demo pitch) around the image centre; the model's
# centred 200 mm window sees exactly the same pixels (asserted in patient.crop_centred). Full-size studies are
# not cropped.
DEMO_FIELD_MM = 210.0

# Per-patient adjustments (patient index within its site). Everything not listed: demo size, no artefact,
# JPEG-LS (the best lossless ratio, to fit the size budget).
OVERRIDES_A = {
    # the two full-size studies: the patients whose site-A acquisitions have the smallest matrices (≈2,100 px)
    22: Override(size="full", syntax="jpeg-ls", artefact="none"),
    35: Override(size="full", syntax="jpeg2000", artefact="none"),
    2: Override(recent_fracture_years=0.4),
    3: Override(syntax="explicit"),
    4: Override(syntax="jpeg-lossless"),
    5: Override(syntax="rle", artefact="hardware"),
    6: Override(syntax="jpeg2000"),
    9: Override(recent_fracture_years=1.6),
    12: Override(artefact="motion"),
    17: Override(recent_fracture_years=0.9, syntax="jpeg-lossless"),
    23: Override(artefact="cropped_neck"),
}
OVERRIDES_B = {
    0: Override(syntax="jpeg2000"),
    3: Override(recent_fracture_years=1.2),
    6: Override(artefact="underexposure", syntax="jpeg-lossless"),
}


def _fill(overrides: dict[int, Override], n: int) -> dict[int, Override]:
    out = {}
    for i in range(n):
        o = overrides.get(i, Override())
        size = o.size or "demo"
        out[i] = Override(recent_fracture_years=o.recent_fracture_years,
                          artefact=o.artefact if i in overrides else "none",
                          size=size, syntax=o.syntax or "jpeg-ls",
                          crop_mm=DEMO_FIELD_MM if size == "demo" else None)
    return out


def demo_parts(seed: int | None = None) -> list[CohortConfig]:
    s = DEMO_SEED if seed is None else seed
    common = dict(seed=s, images=True, size="demo", namespace="demo", index_start=INDEX_START,
                  index_end=INDEX_END, admin_cutoff=DATA_CUTOFF, write_arrays=False)
    return [CohortConfig(site="A", n=N_SITE_A, n_dicom=N_SITE_A, overrides=_fill(OVERRIDES_A, N_SITE_A), **common),
            CohortConfig(site="B", n=N_SITE_B, n_dicom=N_SITE_B, overrides=_fill(OVERRIDES_B, N_SITE_B), **common)]
