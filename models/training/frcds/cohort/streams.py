"""Per-patient random streams. Each patient's streams derive only from (seed, site, patient index) through
``np.random.SeedSequence``, so results do not depend on worker count or on which other patients are simulated, and
each model part (population, bone, outcomes, EHR, image, DICOM choices) has its own stream: changing how many draws
one part makes does not shift the others. New parts are appended to ``PARTS``: ``SeedSequence.spawn`` numbers its
children, so the existing parts keep their streams (and every output they make) when a part is added."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SITE_CODES = {"A": 1, "B": 2}
PARTS = ("population", "bone", "outcomes", "ehr", "image", "dicom", "chart", "dxa")


@dataclass(frozen=True)
class Streams:
    population: np.random.Generator
    bone: np.random.Generator
    outcomes: np.random.Generator
    ehr: np.random.Generator
    image: np.random.Generator
    dicom: np.random.Generator
    chart: np.random.Generator
    dxa: np.random.Generator


def patient_streams(seed: int, site: str, index: int) -> Streams:
    ss = np.random.SeedSequence(entropy=[int(seed), SITE_CODES[site]], spawn_key=(int(index),))
    children = ss.spawn(len(PARTS))
    return Streams(**{name: np.random.default_rng(c) for name, c in zip(PARTS, children)})
