"""Codes the generator writes, read from the FHIR ValueSet resources in ``fhir-profiles/valuesets/`` (the single
source of truth shared with the service). Naming convention of ValueSet ids:

- ``qfracture-<input>``          codes that set a QFracture-2012 boolean (``b-type2`` ↔ ``b_type2``),
- ``qfracture-smoke-cat-<n>``    smoking-status codes for smoke_cat n,
- ``qfracture-ethrisk-<n>``      NHS ethnic category codes for ethrisk n,
- anything else                  supporting codes (observation-codes, imaging-procedure, ...).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

VALUESET_DIR = Path(__file__).resolve().parents[4] / "fhir-profiles" / "valuesets"


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str

    def coding(self) -> dict:
        return {"system": self.system, "code": self.code, "display": self.display}


class ValueSetError(LookupError):
    pass


@lru_cache(maxsize=1)
def all_valuesets() -> dict[str, dict]:
    if not VALUESET_DIR.is_dir():
        raise ValueSetError(f"value set directory not found: {VALUESET_DIR}")
    out = {}
    for p in sorted(VALUESET_DIR.glob("*.json")):
        with open(p, encoding="utf-8") as f:
            vs = json.load(f)
        if vs.get("resourceType") != "ValueSet":
            raise ValueSetError(f"{p.name} is not a ValueSet")
        out[vs["id"]] = vs
    return out


@lru_cache(maxsize=None)
def codes(vs_id: str) -> tuple[Code, ...]:
    vs = all_valuesets().get(vs_id)
    if vs is None:
        raise ValueSetError(f"unknown value set {vs_id!r}")
    return tuple(Code(inc["system"], c["code"], c["display"]) for inc in vs["compose"]["include"]
                 for c in inc.get("concept", []))


def code(vs_id: str, code_value: str) -> Code:
    for c in codes(vs_id):
        if c.code == code_value:
            return c
    raise ValueSetError(f"code {code_value!r} not in value set {vs_id!r}")


def qf_valueset_id(boolean: str) -> str:
    """``b_ra_sle`` → ``qfracture-b-ra-sle``."""
    return "qfracture-" + boolean.replace("_", "-")
