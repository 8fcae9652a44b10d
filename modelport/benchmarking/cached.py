"""Benchmark answers from what was already measured (light: no torch, safe in the API).

`benchmark:{model_id}:{batch_size}` holds one batch size's figures for one configuration
key (everything measured but the batch sizes and the SLO). A request whose every batch size
is there is answered without running anything; the analysis is redone for its SLO.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.report import BatchResult, BenchmarkReport
from modelport.core import cache
from modelport.core.db import session_scope
from modelport.core.models import Metric
from modelport.core.settings import Settings


def config_from(params: dict[str, Any], settings: Settings) -> BenchmarkConfig:
    return BenchmarkConfig(
        batch_sizes=params["batchSizes"],
        iterations=params["iterations"],
        warmup=params["warmup"],
        sequence_length=params["sequenceLength"],
        device=params["device"],
        optimization_level=params["optimizationLevel"],
        latency_slo_ms=params.get("latencySloMs"),
        max_new_tokens=params["maxNewTokens"],
        max_memory_bytes=settings.max_memory_bytes,
        cpu_cores=settings.MAX_CPU_CORES,
        stop_over_objective=params.get("stopOverObjective"),
    )


def cached_rows(model_id: str, batch_sizes: list[int], key: str) -> dict[int, dict[str, Any]]:
    found = {}
    for size in batch_sizes:
        entry = cache.get_benchmark(model_id, size, key)
        if entry is not None:
            found[size] = entry
    return found


def assemble(
    model: dict[str, Any],
    config: BenchmarkConfig,
    rows: dict[int, BatchResult],
    device: dict[str, Any],
    *,
    duration_s: float = 0.0,
    quality: dict[str, Any] | None = None,
) -> BenchmarkReport:
    report = BenchmarkReport(
        model=model,
        config=config,
        device=device,
        rows=[rows[size] for size in config.batch_sizes],
        duration_s=duration_s,
        quality=quality,
    )
    report.analyze(other_device_rows(model["repoId"], config.device))
    return report


def cached_answer(params: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """SPEC's benchmark response when every batch size is cached, else None."""
    info = cache.get_model_info(params["repoId"])
    if info is None:
        return None
    found = cached_rows(params["repoId"], params["batchSizes"], params["configKey"])
    if len(found) != len(params["batchSizes"]):
        return None
    rows = {size: BatchResult.from_dict(entry["detail"]) for size, entry in found.items()}
    model = {
        "repoId": info["id"],
        "revision": info.get("revision"),
        "task": info.get("pipeline_type"),
    }
    first = next(iter(found.values()))
    config = config_from(params, settings)
    spec = assemble(model, config, rows, first["device"], quality=first.get("quality")).to_spec()
    spec["reusedBatchSizes"] = sorted(found)
    return spec


def other_device_rows(model_id: str, device: str) -> list[dict[str, Any]] | None:
    """The other device's latest benchmark run of this model, from the metrics table."""
    other = "cpu" if device == "cuda" else "cuda"
    with session_scope() as session:
        latest = session.scalar(
            select(Metric.job_id)
            .where(Metric.model_id == model_id, Metric.source == "benchmark")
            .where(Metric.device == other, Metric.job_id.is_not(None))
            .order_by(Metric.timestamp.desc(), Metric.id.desc())
            .limit(1)
        )
        if latest is None:
            return None
        metrics = session.scalars(select(Metric).where(Metric.job_id == latest)).all()
    return [
        {
            "batchSize": m.batch_size,
            "status": "ok",
            "throughput": m.throughput,
            "latencyMs": {"mean": m.latency},
            "costPerInference": m.cost_per_inference,
        }
        for m in metrics
    ]
