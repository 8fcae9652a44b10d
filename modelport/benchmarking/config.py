"""What one benchmark run measures: batch sizes, iterations, device, limits (light: no torch).

The API validates requests against core.schemas' bounds (the same ones checked here) and
builds a `BenchmarkConfig`; the worker hands it to `runner.run_benchmark`. `fingerprint()`
identifies an identical configuration, so cached results are reused only for the same
measurement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from modelport.core.errors import BadRequest
from modelport.core.schemas import (  # the bounds the API validates requests against
    MAX_BATCH_SIZE,
    MAX_BATCH_SIZES,
    MAX_ITERATIONS,
    MAX_NEW_TOKENS,
    MAX_SEQUENCE_LENGTH,
    MAX_WARMUP,
)
from modelport.packaging.options import OPTIMIZATION_LEVELS

DEFAULT_ITERATIONS = 100
DEFAULT_WARMUP = 10
DEFAULT_SEQUENCE_LENGTH = 128
DEFAULT_MAX_NEW_TOKENS = 16
DEFAULT_OPTIMIZATION_LEVEL = "standard"


@dataclass(frozen=True)
class BenchmarkConfig:
    """One sweep. `max_new_tokens` matters only for generative models; `gpu_name` prices a GPU."""

    batch_sizes: list[int]
    iterations: int = DEFAULT_ITERATIONS
    warmup: int = DEFAULT_WARMUP
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    device: Literal["cpu", "cuda"] = "cpu"
    optimization_level: str = DEFAULT_OPTIMIZATION_LEVEL
    latency_slo_ms: float | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_memory_bytes: int = 8 * 2**30
    cpu_cores: float = 4.0
    gpu_name: str | None = None
    # a search's sweep (search.py): batch sizes larger than one whose p95 is over this many
    # times latency_slo_ms are not run (their p95 would only be higher); None: run them all
    stop_over_objective: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", list(self.batch_sizes))
        self.validate()

    def validate(self) -> None:
        """Raise BadRequest (a ValueError) naming the field when a value is out of bounds."""
        sizes = self.batch_sizes
        if not sizes or len(sizes) > MAX_BATCH_SIZES:
            raise BadRequest(f"batchSizes must hold 1 to {MAX_BATCH_SIZES} batch sizes")
        for size in sizes:
            if not _is_int(size) or not 1 <= size <= MAX_BATCH_SIZE:
                raise BadRequest(f"each batch size must be an integer from 1 to {MAX_BATCH_SIZE}")
        if len(set(sizes)) != len(sizes):
            raise BadRequest("batchSizes must not repeat a batch size")
        _bounded("iterations", self.iterations, 1, MAX_ITERATIONS)
        _bounded("warmup", self.warmup, 0, MAX_WARMUP)
        _bounded("sequenceLength", self.sequence_length, 1, MAX_SEQUENCE_LENGTH)
        _bounded("maxNewTokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        if self.device not in ("cpu", "cuda"):
            raise BadRequest("device must be 'cpu' or 'cuda'")
        if self.optimization_level not in OPTIMIZATION_LEVELS:
            raise BadRequest(f"optimizationLevel must be one of {sorted(OPTIMIZATION_LEVELS)}")
        slo = self.latency_slo_ms
        if slo is not None and (isinstance(slo, bool) or not slo > 0):
            raise BadRequest("latencySloMs must be a positive number of milliseconds")
        if not _is_int(self.max_memory_bytes) or self.max_memory_bytes <= 0:
            raise BadRequest("max_memory_bytes must be a positive integer")
        if isinstance(self.cpu_cores, bool) or not self.cpu_cores > 0:
            raise BadRequest("cpu_cores must be positive")

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    @classmethod
    def from_settings(cls, batch_sizes: list[int], settings: Any = None, **kwargs: Any):
        """A config whose memory limit and cores come from MAX_MEMORY and MAX_CPU_CORES."""
        if settings is None:
            from modelport.core.settings import get_settings

            settings = get_settings()
        kwargs.setdefault("max_memory_bytes", settings.max_memory_bytes)
        kwargs.setdefault("cpu_cores", float(settings.MAX_CPU_CORES))
        return cls(batch_sizes=batch_sizes, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """camelCase, as the report's `config` shows it."""
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        names = {_camel(f.name): f.name for f in fields(cls)}
        return cls(**{names[k]: v for k, v in data.items() if k in names})

    def fingerprint(self) -> str:
        """16 hex digits identifying what is measured (the order of batch sizes aside)."""
        data = self.to_dict()
        data["batchSizes"] = sorted(self.batch_sizes)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded(name: str, value: Any, lo: int, hi: int) -> None:
    if not _is_int(value) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
