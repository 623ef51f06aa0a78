"""Opportunistic CT: 3D thoracolumbar phantom, CT acquisition, CT DICOM series writer and CLI."""
