"""frcds — Fracture Risk CDS training package.

Sub-packages: ``cohort`` (synthetic cohort: population, bone, outcomes, EHR view, FHIR charts, CLI),
``imaging`` (hip radiograph phantoms, acquisition/site model, DICOM writing), ``preprocess`` (the serve-time
preprocessing recipe) and ``qfracture`` (QFracture-2012 equations, published by ClinRisk Ltd under LGPL-3.0).
Research use only: everything is trained and tested on synthetic data.
"""

__all__ = ["qfracture"]
