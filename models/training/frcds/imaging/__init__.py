"""Synthetic radiographs: AP hip phantoms (``phantom``), the acquisition/site model (``acquisition``), DICOM DX
writing and lossless compression (``dicom``) and non-hip radiographs for out-of-distribution tests (``nonhip``)."""

from .acquisition import ARTEFACT_KINDS, VENDORS, Acquisition, sample_acquisition
from .phantom import PhantomSubject, RenderedImage, render_hip

__all__ = ["ARTEFACT_KINDS", "VENDORS", "Acquisition", "PhantomSubject", "RenderedImage", "render_hip",
           "sample_acquisition"]
