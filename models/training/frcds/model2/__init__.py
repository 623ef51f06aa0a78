"""hip-xray-v2: T-score-mediated fracture-risk model trained from observables only (see pipeline.py)."""
