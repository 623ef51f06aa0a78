"""Synthetic cohort generator (issue 2): population → latent bone state → outcomes (truth) → EHR view → FHIR charts,
with hip radiograph phantoms from :mod:`frcds.imaging`. Entry point: :mod:`frcds.cohort.cli`."""
