"""Request models mirroring SPEC's JSON, validated before anything is enqueued."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from modelport.core.quantity import parse_memory

# The documented optimisation levels; packaging maps each to concrete runtime settings.
OPTIMIZATION_LEVELS = ("none", "standard", "aggressive", "bfloat16", "onnxruntime", "openvino")
Level = Literal["none", "standard", "aggressive", "bfloat16", "onnxruntime", "openvino"]
CPU_ONLY_LEVELS = frozenset({"onnxruntime", "openvino"})
DEFAULT_BATCH_DELAY_MS = 5  # the bundle runtime's default (runtime/config.py)
MAX_BATCH_DELAY_MS = 1_000
MAX_BATCH_DELAYS = 6
# Bumped when the bundle templates change, so cached answers from older templates miss.
BUNDLE_FORMAT = 1


class GenerateOptions(BaseModel):
    """SPEC's `options` for POST /api/generate (camelCase on the wire), validated once here
    for the API and reused by the worker (packaging.options adds the runtime mapping)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    batch_size: int = Field(8, alias="batchSize", ge=1, le=1024, strict=True)
    memory: str | None = Field(None, description="Kubernetes quantity, e.g. 2Gi")
    gpu: bool = Field(False, strict=True)
    optimization_level: Level = Field("standard", alias="optimizationLevel")
    # how long the server's batcher waits for a batch to fill under load (a search over
    # batchDelaysMs picks it); None: the runtime's default
    max_batch_delay_ms: int | None = Field(
        None, alias="maxBatchDelayMs", ge=0, le=MAX_BATCH_DELAY_MS, strict=True
    )

    @field_validator("memory")
    @classmethod
    def _memory_is_quantity(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parse_memory(value)  # raises ValueError with the accepted form
        return value

    @field_validator("optimization_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("optimization_level")
    @classmethod
    def _level_runs_there(cls, value: str, info: ValidationInfo) -> str:
        if value in CPU_ONLY_LEVELS and info.data.get("gpu"):
            raise ValueError(f"optimizationLevel {value!r} runs on CPU: use gpu false")
        return value

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory) if self.memory is not None else None

    def normalized(self) -> dict[str, Any]:
        """Options with equivalent spellings made equal ("1Gi" and "1024Mi" agree)."""
        normal: dict[str, Any] = {
            "batchSize": self.batch_size,
            "memory": self.memory_bytes,
            "gpu": self.gpu,
            "optimizationLevel": self.optimization_level,
        }
        if self.max_batch_delay_ms not in (None, DEFAULT_BATCH_DELAY_MS):  # keys made before stay
            normal["maxBatchDelayMs"] = self.max_batch_delay_ms
        return normal

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of the normalized options, for cache keys."""
        text = json.dumps(self.normalized(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modelUrl: str  # parsed by modelref, which says what is accepted (1001)
    options: GenerateOptions = Field(default_factory=GenerateOptions)
    # a succeeded benchmark job of this model: its level, device and optimal batch size
    # become the options, and the bundle records where they came from
    fromBenchmark: str | None = Field(
        None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )


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


# The benchmark's bounds, here once: the request schema and benchmarking.config both use them.
MAX_BATCH_SIZES = 16
MAX_BATCH_SIZE = 1024
MAX_ITERATIONS = 10_000
MAX_WARMUP = 1_000
MAX_SEQUENCE_LENGTH = 8192
MAX_NEW_TOKENS = 512
MAX_SERVED_CONCURRENCY = 64


class BenchmarkRequest(BaseModel):
    """SPEC's benchmark request plus optional fields with documented defaults."""

    model_config = ConfigDict(extra="forbid")

    modelId: str  # a repo id or any accepted model URL; parsed by modelref (1001)
    batchSizes: list[StrictInt] = Field([1, 8, 32], min_length=1, max_length=MAX_BATCH_SIZES)
    iterations: StrictInt = Field(30, ge=1, le=MAX_ITERATIONS)
    warmup: StrictInt = Field(5, ge=0, le=MAX_WARMUP)
    sequenceLength: StrictInt = Field(128, ge=1, le=MAX_SEQUENCE_LENGTH)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    optimizationLevel: Level = "standard"
    # a configuration search (benchmarking/search.py): every level below (default: the
    # device's candidates), each over batchSizes, behind the quality gate
    search: StrictBool = False
    optimizationLevels: list[Level] | None = Field(
        None, min_length=1, max_length=len(OPTIMIZATION_LEVELS)
    )
    # the served path (benchmarking/served.py): the bundle's server driven by this many
    # concurrent clients each, after the in-process sweep (a search: its recommendation)
    servedConcurrency: list[StrictInt] | None = Field(None, min_length=1, max_length=4)
    # batching delays to serve at (each a server start, driven at every servedConcurrency);
    # the best under latencySloMs becomes the recommendation's maxBatchDelayMs
    batchDelaysMs: list[StrictInt] | None = Field(None, min_length=1, max_length=MAX_BATCH_DELAYS)
    latencySloMs: float | None = Field(None, gt=0, le=3_600_000)
    maxNewTokens: StrictInt = Field(16, ge=1, le=MAX_NEW_TOKENS)

    @field_validator("batchSizes")
    @classmethod
    def _batch_sizes(cls, value: list[int]) -> list[int]:
        return distinct_within(value, 1, MAX_BATCH_SIZE, "batch size")

    @field_validator("servedConcurrency")
    @classmethod
    def _concurrency(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        return distinct_within(value, 1, MAX_SERVED_CONCURRENCY, "concurrency level")

    @field_validator("batchDelaysMs")
    @classmethod
    def _delays(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if value is None:
            return None
        if not info.data.get("servedConcurrency"):
            raise ValueError(
                "batchDelaysMs are measured on the served path: add servedConcurrency, the "
                "concurrent clients to drive each delay with (e.g. [1, 8])"
            )
        return sorted(distinct_within(value, 0, MAX_BATCH_DELAY_MS, "batch delay", " ms"))

    @field_validator("optimizationLevels")
    @classmethod
    def _levels_need_a_search(cls, value: list[str] | None, info: ValidationInfo) -> Any:
        if value is not None and not info.data.get("search"):
            raise ValueError(
                'optimizationLevels names the levels of a search: add "search": true, or '
                "give one optimizationLevel"
            )
        return value


def distinct_within(values: list[int], low: int, high: int, what: str, unit: str = "") -> list[int]:
    """`values` when each lies in [low, high] and none repeats; else ValueError saying which."""
    for value in values:
        if not low <= value <= high:
            raise ValueError(f"each {what} must be between {low} and {high}{unit} (got {value})")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}s must not repeat")
    return values


def benchmark_config_key(revision: str, params: dict[str, Any]) -> str:
    """What makes two measurements comparable: all but the batch sizes and the SLO."""
    measured = ("iterations", "warmup", "sequenceLength", "device", "optimizationLevel",
                "maxNewTokens")  # fmt: skip
    return fingerprint({"revision": revision, **{k: params[k] for k in measured}})


class DeploymentCreate(BaseModel):
    """A running run_inference.py server to be sampled by beat."""

    model_config = ConfigDict(extra="forbid")

    modelId: str
    url: str = Field(..., min_length=1, max_length=2000)
    name: str | None = Field(None, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not 0 < len(key) <= 63 or len(item) > 200:
                raise ValueError("label keys are 1-63 characters and values at most 200")
        return value


class MonitorRequest(BaseModel):
    """SPEC's monitoring request."""

    model_config = ConfigDict(extra="forbid")

    modelId: str
    days: StrictInt = Field(7, ge=1, le=3650)
    metrics: list[str] | None = Field(None, max_length=10)


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modelId: str
    kind: str = Field(..., max_length=32)
    threshold: float
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldownSeconds: StrictInt = Field(900, ge=0, le=7 * 86400)
