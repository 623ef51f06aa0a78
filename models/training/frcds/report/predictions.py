"""The predictions file of the v2 contract: one row per test patient, written by training (v2) and by
``frcds.report.v1`` (v1 on the same patients), read by the report.

Format: gzip-compressed CSV with a header row and exactly the contract's columns (any order; extra columns are kept
but unused). Risks, bounds and probabilities are fractions (0.03 = 3 %); times are years. An empty cell is a missing
value (NaN): allowed only in the columns a model may lack (T-score and threshold-probability columns for v1,
``dxa_tscore`` when the chart has no DXA result). Writing is deterministic: fixed gzip header time, rows as given,
floats with ``repr`` (round-trip exact).
"""
from __future__ import annotations

import csv
import gzip
import io
import math

import numpy as np

COLUMNS = (
    "patient_id", "site", "split", "time_hip", "event_hip", "time_mof", "event_mof", "true_risk10_hip",
    "true_risk10_mof", "bmd_t_true", "qf10_hip", "qf10_mof", "pred10_hip", "lo10_hip", "hi10_hip", "pthr_hip",
    "pred10_mof", "lo10_mof", "hi10_mof", "pthr_mof", "tscore_mean", "tscore_sd", "tscore_lo", "tscore_hi",
    "dxa_tscore", "ood_distance", "ood_flag", "low_confidence", "tier", "image_kind",
)
TEXT = ("patient_id", "site", "split", "tier", "image_kind")
FLAGS = ("event_hip", "event_mof", "ood_flag", "low_confidence")
#: numeric columns that may be empty (the model has no such output, or the chart no DXA)
OPTIONAL = ("pthr_hip", "pthr_mof", "tscore_mean", "tscore_sd", "tscore_lo", "tscore_hi", "dxa_tscore")
FRACTIONS = ("true_risk10_hip", "true_risk10_mof", "qf10_hip", "qf10_mof", "pred10_hip", "lo10_hip", "hi10_hip",
             "pthr_hip", "pred10_mof", "lo10_mof", "hi10_mof", "pthr_mof")
#: beyond the contract, read when present: the image-only variant of the risk columns (training writes the served
#: risk, where a recent measured DXA replaces the image's T-score, in the contract columns) and whether a DXA was used
IMAGE_ONLY = {"pred10_hip_image": "pred10_hip", "lo10_hip_image": "lo10_hip", "hi10_hip_image": "hi10_hip",
              "pthr_hip_image": "pthr_hip", "pred10_mof_image": "pred10_mof", "lo10_mof_image": "lo10_mof",
              "hi10_mof_image": "hi10_mof", "pthr_mof_image": "pthr_mof", "low_confidence_image": "low_confidence",
              "tier_image": "tier"}
EXTRA = (*IMAGE_ONLY, "dxa_used")
TIERS = ("low", "moderate", "high")
IMAGE_KINDS = ("clean", "artefact", "nonhip")


class PredictionsFormatError(ValueError):
    """A predictions file does not follow the contract (the report refuses it rather than guessing)."""


Table = dict[str, np.ndarray]


def _number(path: str, col: str, line: int, s: str) -> float:
    if s == "":
        if col in OPTIONAL:
            return math.nan
        raise PredictionsFormatError(f"{path}: line {line}: '{col}' is empty")
    try:
        v = float(s)
    except ValueError:
        raise PredictionsFormatError(f"{path}: line {line}: '{col}' is not a number: {s!r}") from None
    if not math.isfinite(v):
        raise PredictionsFormatError(f"{path}: line {line}: '{col}' is not finite: {s!r}")
    return v


def read_predictions(path: str) -> Table:
    """Reads and checks one predictions file; columns as numpy arrays (text as str, flags as bool, rest float64)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise PredictionsFormatError(f"{path}: not a readable gzip CSV ({e})") from None
    if not rows:
        raise PredictionsFormatError(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PredictionsFormatError(f"{path}: missing columns {missing}")
    if not body:
        raise PredictionsFormatError(f"{path}: no rows")
    # an image-only variant is used only when complete
    extra = tuple(c for c in EXTRA if c in header)
    if not all(c in header for c in IMAGE_ONLY):
        extra = tuple(c for c in extra if c not in IMAGE_ONLY)
    cols = COLUMNS + extra
    pos = {c: header.index(c) for c in cols}
    kind = {c: _kind(IMAGE_ONLY.get(c, c)) for c in cols}
    out: dict[str, list] = {c: [] for c in cols}
    for ln, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise PredictionsFormatError(f"{path}: line {ln}: {len(row)} fields, header has {len(header)}")
        for c in cols:
            s = row[pos[c]].strip()
            if kind[c] == "text":
                out[c].append(s)
            elif kind[c] == "flag":
                if s not in ("0", "1"):
                    raise PredictionsFormatError(f"{path}: line {ln}: '{c}' must be 0 or 1, got {s!r}")
                out[c].append(s == "1")
            else:
                out[c].append(_number(path, IMAGE_ONLY.get(c, c), ln, s))
    t: Table = {c: np.array(v, dtype={"text": str, "flag": bool, "number": np.float64}[kind[c]])
                for c, v in out.items()}
    _check(path, t)
    if all(c in t for c in IMAGE_ONLY):
        _check(path + " (image-only columns)", image_only(t))
    return t


def _kind(c: str) -> str:
    return "text" if c in TEXT else "flag" if c in FLAGS or c == "dxa_used" else "number"


def image_only(t: Table) -> Table:
    """The table with the image-only risk columns in place of the served ones."""
    v = dict(t)
    for src, dst in IMAGE_ONLY.items():
        v[dst] = t[src]
    return v


def outside_interval(t: Table, k: str) -> int:
    """Rows whose point estimate lies outside its own 95 % interval: possible, not malformed, when the point is a
    mean of a skewed predictive distribution and the interval its percentiles; the report counts them."""
    return int(((t[f"pred10_{k}"] < t[f"lo10_{k}"]) | (t[f"pred10_{k}"] > t[f"hi10_{k}"])).sum())


def _check(path: str, t: Table) -> None:
    ids = t["patient_id"]
    if (ids == "").any():
        raise PredictionsFormatError(f"{path}: empty patient_id")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise PredictionsFormatError(f"{path}: duplicate patient_id {uniq[counts > 1][:3].tolist()}")
    for c, allowed in (("tier", TIERS), ("image_kind", IMAGE_KINDS)):
        bad = sorted(set(t[c].tolist()) - set(allowed))
        if bad:
            raise PredictionsFormatError(f"{path}: '{c}' has values {bad}; allowed {list(allowed)}")
    for c in FRACTIONS:
        v = t[c][np.isfinite(t[c])]
        if ((v < 0) | (v > 1)).any():
            raise PredictionsFormatError(f"{path}: '{c}' must be a fraction in [0, 1] (found {v.min()}..{v.max()})")
    for c in ("time_hip", "time_mof"):
        if (t[c] < 0).any():
            raise PredictionsFormatError(f"{path}: negative '{c}'")
    for k in ("hip", "mof"):
        if (t[f"lo10_{k}"] > t[f"hi10_{k}"]).any():
            raise PredictionsFormatError(f"{path}: {int((t[f'lo10_{k}'] > t[f'hi10_{k}']).sum())} rows with lo10_{k} > hi10_{k}")
    have = np.isfinite(t["tscore_lo"]) & np.isfinite(t["tscore_hi"])
    if (t["tscore_lo"][have] > t["tscore_hi"][have]).any():
        raise PredictionsFormatError(f"{path}: tscore_lo > tscore_hi")


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def write_predictions(path: str, t: Table) -> None:
    """Writes the contract's columns in contract order, then those of ``EXTRA`` the table has (missing optional values
    as empty cells)."""
    n = len(t["patient_id"])
    for c in COLUMNS:
        if c not in t or len(t[c]) != n:
            raise ValueError(f"column '{c}' missing or of the wrong length")
    cols = COLUMNS + tuple(c for c in EXTRA if c in t)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for i in range(n):
        w.writerow([_cell(t[c][i]) for c in cols])
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode("utf-8"))
