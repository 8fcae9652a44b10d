"""Configuration search: which optimization level and batch size to ship (light: no torch).

A search benchmarks each candidate optimization level over the same batch sizes (the worker
runs one ordinary benchmark per level, so each is cached and recorded as usual), then
compares every (level, batch size) configuration:

- **qualified**: it ran with status "ok", is stable, stayed under the memory limit, meets the
  p95 objective (`latencySloMs`, when given) and passed the quality gate against float32 (the
  float32 reference itself needs no gate; a gate skipped because the reference did not fit
  qualifies, with the skip reported);
- **pareto**: no other measured configuration that passed its quality gate is at least as good
  on throughput, p95 latency, memory and cost and better on one of them;
- **recommended**: the qualified configuration with the highest throughput (ties: the smaller
  batch size, then the earlier level), given as the exact `options` object for
  `POST /api/generate` (or `fromBenchmark: <jobId>`). When none qualifies, as a single
  benchmark's optimal batch size does, the least violating one that passed the quality gate,
  with `meetsRequirements` false and its reasons; a configuration that failed the gate is
  never recommended.

The default configuration (level "none", the smallest batch size) is the reference the
speedup is reported against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelport.benchmarking.analysis import violations
from modelport.benchmarking.quality import REFERENCE_LEVEL
from modelport.benchmarking.report import MiB
from modelport.core.schemas import CPU_ONLY_LEVELS

# What a search tries on each device kind unless the request names levels; "none" (the
# float32 reference) is always measured, so every speedup has its baseline.
SEARCH_LEVELS = {
    "cpu": ("none", "standard", "bfloat16", "aggressive", "onnxruntime", "openvino"),
    "cuda": ("none", "standard", "bfloat16", "aggressive"),
}


def search_levels(device: str, asked: Iterable[str] | None = None) -> list[str]:
    """The levels to measure, the reference first and each once."""
    levels = list(asked) if asked else list(SEARCH_LEVELS[device])
    if device == "cuda":
        levels = [level for level in levels if level not in CPU_ONLY_LEVELS]
    return [REFERENCE_LEVEL, *dict.fromkeys(level for level in levels if level != REFERENCE_LEVEL)]


@dataclass(frozen=True)
class Configuration:
    level: str
    row: dict[str, Any]  # the benchmark's detail row (camelCase)
    quality: dict[str, Any] | None

    @property
    def batch_size(self) -> int:
        return int(self.row["batchSize"])

    @property
    def measured(self) -> bool:
        return bool(self.row.get("throughput")) and bool(self.row.get("latencyMs"))

    @property
    def quality_passed(self) -> bool:
        """Passed, the reference itself (no gate), or skipped because float32 did not fit."""
        return self.quality is None or self.quality.get("passed") is not False

    def objectives(self) -> tuple[float, float, float, float]:
        """Higher is better on each: throughput, -p95, -memory, -cost."""
        row = self.row
        return (
            row["throughput"],
            -row["latencyMs"]["p95"],
            -(row.get("peakRssMb") or row.get("cudaMaxAllocatedMb") or 0.0),
            -(row.get("costPerInference") or 0.0),
        )


def configurations(reports: dict[str, dict[str, Any]]) -> list[Configuration]:
    """Every measured (level, batch size) from per-level SPEC benchmark answers."""
    found = []
    for level, spec in reports.items():
        for row in spec.get("details") or []:
            config = Configuration(level, row, spec.get("quality"))
            if config.measured:
                found.append(config)
    return found


def pareto(configs: list[Configuration]) -> list[Configuration]:
    """The configurations that passed the quality gate and no other such one dominates."""
    eligible = [c for c in configs if c.quality_passed]
    front = []
    for config in eligible:
        mine = config.objectives()
        dominated = any(
            all(a >= b for a, b in zip(other.objectives(), mine, strict=True))
            and other.objectives() != mine
            for other in eligible
        )
        if not dominated:
            front.append(config)
    return front


def why_not(config: Configuration, slo_ms: float | None, limit_bytes: int | None) -> list[str]:
    """Why a configuration cannot be recommended, in words (empty: it qualifies)."""
    reasons = []
    quality = config.quality
    if not config.quality_passed and quality is not None:
        if quality.get("metric") == "error":
            reasons.append(f"quality check could not run ({quality.get('error')})")
        else:
            reasons.append(
                f"quality gate failed: {quality.get('metric')} {quality.get('value')} "
                f"(threshold {quality.get('threshold')})"
            )
    row = config.row
    if row.get("status") != "ok":
        reasons.append(f"status {row.get('status')}")
    found = violations(row, slo_ms, limit_bytes)
    if found.get("latency"):
        reasons.append(f"p95 {row['latencyMs']['p95']:.1f} ms is over the {slo_ms:g} ms objective")
    if found.get("memory"):
        reasons.append(
            f"peak memory {row.get('peakRssMb', 0):.0f} MiB is over the "
            f"{(limit_bytes or 0) / MiB:.0f} MiB limit"
        )
    if found.get("stability"):
        reasons.append(f"not stable (cv {row['latencyMs']['cv']:.2f})")
    return reasons


def least_violating(
    configs: list[Configuration], slo_ms: float | None, limit_bytes: int | None
) -> Configuration | None:
    """When none qualifies: among those that ran "ok" and passed the quality gate (never one
    that failed it), the smallest sum of normalised violations (analysis.violations), then the
    highest throughput; its recommendation says it does not meet every requirement."""
    passing = [c for c in configs if c.quality_passed and c.row.get("status") == "ok"]
    if not passing:
        return None
    return min(
        passing,
        key=lambda c: (
            sum(violations(c.row, slo_ms, limit_bytes).values()),
            -c.row["throughput"],
            c.batch_size,
        ),
    )


def summarize(
    reports: dict[str, dict[str, Any]],
    *,
    device: str,
    slo_ms: float | None,
    limit_bytes: int | None,
) -> dict[str, Any]:
    """The additive `search` section: every configuration, the Pareto front, the
    recommendation (exact generate options) and its speedup over the default."""
    levels = list(reports)
    configs = configurations(reports)
    front = {(c.level, c.batch_size) for c in pareto(configs)}
    reasons = {id(c): why_not(c, slo_ms, limit_bytes) for c in configs}
    qualified = [c for c in configs if not reasons[id(c)]]
    best = (
        max(
            qualified,
            key=lambda c: (c.row["throughput"], -c.batch_size, -levels.index(c.level)),
        )
        if qualified
        else least_violating(configs, slo_ms, limit_bytes)
    )
    default = min(
        (c for c in configs if c.level == REFERENCE_LEVEL),
        key=lambda c: c.batch_size,
        default=None,
    )
    table = []
    for config in sorted(configs, key=lambda c: (-c.row["throughput"], c.batch_size)):
        row = config.row
        table.append(
            {
                "optimizationLevel": config.level,
                "batchSize": config.batch_size,
                "throughput": row["throughput"],
                "latencyP95Ms": row["latencyMs"]["p95"],
                "memoryMb": row.get("peakRssMb"),
                "gpuMemoryMb": row.get("cudaMaxAllocatedMb"),
                "costPerMillion": row.get("costPerMillion"),
                "quality": _quality_cell(config.quality),
                "stable": row.get("stable"),
                "qualified": not reasons[id(config)],
                "rejectedBecause": reasons[id(config)],
                "pareto": (config.level, config.batch_size) in front,
                "recommended": config is best,
            }
        )
    recommended = None
    if best is not None:
        options = {
            "batchSize": best.batch_size,
            "gpu": device == "cuda",
            "optimizationLevel": best.level,
        }
        recommended = {
            "options": options,
            "meetsRequirements": not reasons[id(best)],
            "rejectedBecause": reasons[id(best)],
            "throughput": best.row["throughput"],
            "latencyP95Ms": best.row["latencyMs"]["p95"],
            "speedupVsDefault": (
                best.row["throughput"] / default.row["throughput"] if default else None
            ),
        }
    not_run = [
        {"optimizationLevel": level, "batchSize": row["batchSize"], "reason": row.get("message")}
        for level, spec in reports.items()
        for row in spec.get("details") or []
        if row.get("status") == "over_objective"
    ]
    return {
        "levels": levels,
        "notRun": not_run,
        "objective": {
            "latencyP95Ms": slo_ms,
            "maxMemoryMb": round(limit_bytes / MiB) if limit_bytes else None,
        },
        "default": (
            {
                "optimizationLevel": default.level,
                "batchSize": default.batch_size,
                "throughput": default.row["throughput"],
                "latencyP95Ms": default.row["latencyMs"]["p95"],
            }
            if default
            else None
        ),
        "configurations": table,
        "recommended": recommended,
        "sentence": _sentence(recommended, default, table, slo_ms),
    }


def _quality_cell(quality: dict[str, Any] | None) -> dict[str, Any]:
    if quality is None:
        return {"passed": True, "metric": "reference"}
    keep = ("passed", "metric", "value", "threshold", "reason", "error")
    return {k: quality[k] for k in keep if k in quality}


def _sentence(
    recommended: dict[str, Any] | None,
    default: Configuration | None,
    table: list[dict[str, Any]],
    slo_ms: float | None,
) -> str:
    if recommended is None:
        return (
            "No configuration both ran and passed the quality gate: each one's "
            "rejectedBecause says why."
        )
    options = recommended["options"]
    head = "Ship" if recommended["meetsRequirements"] else "No configuration met every requirement"
    if not recommended["meetsRequirements"]:
        objective = f" (p95 at most {slo_ms:g} ms, memory, stable timings)" if slo_ms else ""
        head += f"{objective}; the least violating is"
    text = (
        f"{head} optimization level '{options['optimizationLevel']}' at batch size "
        f"{options['batchSize']}: {recommended['throughput']:,.1f} samples/s at p95 "
        f"{recommended['latencyP95Ms']:.1f} ms"
    )
    speedup = recommended["speedupVsDefault"]
    if speedup is not None and default is not None:
        text += (
            f", {speedup:.2f}x the default ('{default.level}', batch size "
            f"{default.batch_size}: {default.row['throughput']:,.1f} samples/s)"
        )
    if not recommended["meetsRequirements"]:
        text += f" ({'; '.join(recommended['rejectedBecause'])})"
    failed = sorted({r["optimizationLevel"] for r in table if r["quality"]["passed"] is False})
    if failed:
        text += f"; level {', '.join(repr(level) for level in failed)} failed the quality gate"
    return text + "."
