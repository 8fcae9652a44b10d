"""Request models mirroring SPEC's JSON, validated before anything is enqueued."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from modelport.core.quantity import parse_memory

# The documented optimisation levels; packaging maps each to concrete runtime settings.
OPTIMIZATION_LEVELS = ("none", "standard", "aggressive")
# Bumped when the bundle templates change, so cached answers from older templates miss.
BUNDLE_FORMAT = 1


class GenerateOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    batchSize: StrictInt = Field(8, ge=1, le=1024)
    memory: str | None = Field(None, max_length=32)
    gpu: StrictBool = False
    optimizationLevel: Literal["none", "standard", "aggressive"] = "standard"

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modelUrl: str  # parsed by modelref, which says what is accepted (1001)
    options: GenerateOptionsIn = Field(default_factory=GenerateOptionsIn)


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable short hash of normalised request data (cache keys, dedup)."""
    blob = json.dumps({"format": BUNDLE_FORMAT, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def pydantic_details(exc) -> dict[str, Any]:
    """Pydantic errors as SPEC error details a person can act on."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        problems.append({"field": where, "problem": msg})
    return {"fields": problems}
