"""Benchmark results: per-batch figures, the report, and SPEC's response shape (light: no torch).

SPEC's `results` arrays are aligned with the request's `batchSizes`; a batch size without a
measurement (out of memory, over the limit before running, an error) is null in each array.
A batch size that ran but went over the memory limit keeps its measured figures, with its
status saying so. Memory figures are in MB of 2**20 bytes (MiB); costs in USD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modelport.benchmarking.config import BenchmarkConfig

MiB = 2**20
STATUSES = ("ok", "oom", "over_memory_limit", "over_objective", "error")
# A window is stable when it has enough iterations to judge its spread, its coefficient of
# variation is at most STABLE_MAX_CV and its p99 is at most STABLE_MAX_TAIL times its p50.
STABLE_MIN_ITERATIONS = 3
STABLE_MAX_CV = 0.10
STABLE_MAX_TAIL = 2.0


def format_bytes(nbytes: float) -> str:
    """Bytes as GiB (one decimal) from 1 GiB up, else whole MiB: "7.4 GiB", "612 MiB"."""
    if abs(nbytes) >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / MiB:.0f} MiB"


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, linearly interpolated (numpy's default)."""
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per batch over the timed iterations; std is the sample standard deviation."""

    mean: float
    p50: float
    p95: float
    p99: float
    std: float
    cv: float
    count: int = 0

    @classmethod
    def from_samples(cls, ms: list[float]) -> LatencyStats:
        ordered = sorted(ms)
        n = len(ordered)
        mean = sum(ordered) / n
        var = sum((x - mean) ** 2 for x in ordered) / (n - 1) if n > 1 else 0.0
        std = math.sqrt(var)
        return cls(
            mean=mean,
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            std=std,
            cv=std / mean if mean > 0 else 0.0,
            count=n,
        )

    @property
    def stable(self) -> bool:
        return (
            self.count >= STABLE_MIN_ITERATIONS
            and self.cv <= STABLE_MAX_CV
            and self.p99 <= STABLE_MAX_TAIL * self.p50
        )

    def to_dict(self) -> dict[str, float]:
        return {k: self.__dict__[k] for k in ("mean", "p50", "p95", "p99", "std", "cv")}


_ROW_KEYS = {
    "batch_size": "batchSize",
    "status": "status",
    "message": "message",
    "throughput": "throughput",
    "stable": "stable",
    "peak_rss_mb": "peakRssMb",
    "cuda_max_allocated_mb": "cudaMaxAllocatedMb",
    "flops": "flops",
    "achieved_flops_per_s": "achievedFlopsPerS",
    "peak_flops_per_s": "peakFlopsPerS",
    "flops_fraction": "flopsFraction",
    "ttft_ms": "ttftMs",
    "decode_tokens_per_s": "decodeTokensPerS",
    "cost_per_inference": "costPerInference",
    "cost_per_million": "costPerMillion",
    "iterations": "iterations",
    "windows": "windows",
    "warmup": "warmup",
    "sequence_length": "sequenceLength",
}


@dataclass
class BatchResult:
    """Everything measured at one batch size (`throughput` in samples/s; None = not measured)."""

    batch_size: int
    status: str = "ok"
    message: str | None = None
    throughput: float | None = None
    latency: LatencyStats | None = None
    stable: bool | None = None
    peak_rss_mb: float | None = None
    cuda_max_allocated_mb: float | None = None
    flops: float | None = None
    achieved_flops_per_s: float | None = None
    peak_flops_per_s: float | None = None
    flops_fraction: float | None = None
    ttft_ms: float | None = None
    decode_tokens_per_s: float | None = None
    cost_per_inference: float | None = None
    cost_per_million: float | None = None
    iterations: int = 0  # timed iterations actually run (in the reported window)
    windows: int = 0  # timed windows run until one was stable (at most runner.MAX_WINDOWS)
    warmup: int = 0
    sequence_length: int | None = None  # the input length used (models may cap the request)

    @property
    def measured(self) -> bool:
        return self.throughput is not None and self.latency is not None

    def to_dict(self) -> dict[str, Any]:
        data = {camel: getattr(self, name) for name, camel in _ROW_KEYS.items()}
        data["latencyMs"] = self.latency.to_dict() if self.latency else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchResult:
        values = {name: data.get(camel) for name, camel in _ROW_KEYS.items() if camel in data}
        latency = data.get("latencyMs")
        if latency:
            count = data.get("iterations") or 0
            values["latency"] = LatencyStats(**latency, count=count)
        values.setdefault("iterations", 0)
        values["windows"] = values.get("windows") or 0
        values.setdefault("warmup", 0)
        return cls(**values)


@dataclass
class BenchmarkReport:
    """One sweep's rows in request order, with the analysis made of them."""

    model: dict[str, Any]  # repoId, revision, task
    config: BenchmarkConfig
    device: dict[str, Any]  # type, name, threads, peakFlopsPerS
    rows: list[BatchResult]
    optimal_batch_size: int | None = None
    optimal_meets_requirements: bool = False
    recommendations: list[str] = field(default_factory=list)
    duration_s: float | None = None
    quality: dict[str, Any] | None = None  # quality.QualityCheck.to_dict(), vs float32

    @property
    def quality_failed(self) -> bool:
        return self.quality is not None and self.quality.get("passed") is False

    def analyze(self, other_device: Any = None) -> None:
        """Fill in the optimal batch size and recommendations (other_device: see analysis).
        A configuration that failed the quality gate is never said to meet the requirements."""
        from modelport.benchmarking.analysis import optimal_batch_size, recommendations

        rows = [row.to_dict() for row in self.rows]
        choice = optimal_batch_size(rows, self.config.latency_slo_ms, self.config.max_memory_bytes)
        self.optimal_batch_size = choice.batch_size
        self.optimal_meets_requirements = choice.qualified and not self.quality_failed
        self.recommendations = recommendations(
            rows, self.config, other_device, device=self.device, quality=self.quality
        )

    def row(self, batch_size: int) -> BatchResult:
        return next(r for r in self.rows if r.batch_size == batch_size)

    def to_spec(self) -> dict[str, Any]:
        """SPEC's response (`results`, `analysis`) plus additive `details`, `config`, etc."""
        by_size = {row.batch_size: row for row in self.rows}
        ordered = [by_size.get(size) for size in self.config.batch_sizes]

        def column(get) -> list[Any]:
            return [get(r) if r is not None and r.measured else None for r in ordered]

        return {
            "results": {
                "throughput": column(lambda r: r.throughput),
                "latency": column(lambda r: r.latency.mean),
                "memory_usage": column(lambda r: r.peak_rss_mb),
                "cost_per_inference": column(lambda r: r.cost_per_inference),
            },
            "analysis": {
                "optimal_batch_size": self.optimal_batch_size,
                "resource_recommendations": list(self.recommendations),
                "optimalMeetsRequirements": self.optimal_meets_requirements,
            },
            "details": [r.to_dict() for r in ordered if r is not None],
            "config": self.config.to_dict(),
            "device": dict(self.device),
            "model": dict(self.model),
            "durationS": self.duration_s,
            "quality": self.quality,
        }

    @classmethod
    def from_spec(cls, data: dict[str, Any]) -> BenchmarkReport:
        analysis = data.get("analysis") or {}
        return cls(
            model=dict(data.get("model") or {}),
            config=BenchmarkConfig.from_dict(data["config"]),
            device=dict(data.get("device") or {}),
            rows=[BatchResult.from_dict(d) for d in data.get("details") or []],
            optimal_batch_size=analysis.get("optimal_batch_size"),
            optimal_meets_requirements=bool(analysis.get("optimalMeetsRequirements")),
            recommendations=list(analysis.get("resource_recommendations") or []),
            duration_s=data.get("durationS"),
            quality=data.get("quality"),
        )

    def metric_rows(self) -> list[dict[str, Any]]:
        """SPEC `metrics` columns, one dict per batch size that ran within its limits."""
        return [
            {
                "batch_size": r.batch_size,
                "throughput": r.throughput,
                "latency": r.latency.mean,
                "memory_mb": r.peak_rss_mb,
                "gpu_memory_mb": r.cuda_max_allocated_mb,
                "cost_per_inference": r.cost_per_inference,
            }
            for r in self.rows
            if r.status == "ok" and r.measured
        ]
