"""Metrics recomputed from saved predictions (hip-xray-v2 beside v1), independent of the training code.

``predictions`` reads and writes the predictions file of the v2 contract; ``v1`` makes v1's predictions on the same
test patients (ONNX in onnxruntime-node via ``run_onnx.mjs``, numbers derived as the service derives them);
``decision`` mirrors the service's tier rule; ``stats`` holds the metrics; ``report`` builds report.json and the
markdown table from a predictions directory (entry: ``models/training/report_v2.py``).
"""
