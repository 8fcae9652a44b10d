"""The benchmark capability as the worker runs it: facts -> measurements -> records.

Reuses `benchmark:{model_id}:{batch_size}` entries measured with an identical configuration
(30 minutes), measures the rest, writes one `metrics` row per newly measured batch size
and one `events` row for the run, and compares cost with the other device's latest run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.report import BatchResult, BenchmarkReport
from modelport.core import cache
from modelport.core.db import session_scope
from modelport.core.modelref import ModelRef
from modelport.core.models import Metric
from modelport.core.records import add_event, add_metrics
from modelport.core.registry import upsert_model
from modelport.core.schemas import benchmark_config_key
from modelport.core.settings import get_settings
from modelport.packaging.facts import resolve
from modelport.packaging.generate import model_info

Progress = Callable[[float, str], None]


def benchmark_model(
    params: dict[str, Any], progress: Progress | None = None, job_id: str | None = None
) -> dict[str, Any]:
    from celery.exceptions import SoftTimeLimitExceeded

    from modelport.benchmarking.runner import run_benchmark

    settings = get_settings()
    progress = progress or (lambda fraction, stage: None)
    progress(0.01, "resolving model")
    facts = resolve(
        ModelRef(params["repoId"], params.get("revision")),
        endpoint=settings.HF_ENDPOINT,
        token=settings.HF_TOKEN,
    )
    info = model_info(facts)
    cache.set_model_info(facts.repo_id, info)
    upsert_model(info)

    config = BenchmarkConfig(
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
    )
    key = params.get("configKey") or benchmark_config_key(facts.revision, params)
    reused = {}
    for size in config.batch_sizes:
        row = cache.get_benchmark(facts.repo_id, size, key)
        if row is not None:
            reused[size] = row
    missing = [size for size in config.batch_sizes if size not in reused]

    measured: BenchmarkReport | None = None
    if missing:
        measured = run_benchmark(
            facts,
            replace(config, batch_sizes=missing),
            lambda fraction, stage: progress(0.05 + 0.9 * fraction, stage),
            reraise=(SoftTimeLimitExceeded,),
        )
    rows = {size: BatchResult.from_dict(row["detail"]) for size, row in reused.items()}
    if measured:
        rows.update({row.batch_size: row for row in measured.rows})
    device = measured.device if measured else next(iter(reused.values()))["device"]
    report = BenchmarkReport(
        model={"repoId": facts.repo_id, "revision": facts.revision, "task": facts.task},
        config=config,
        device=device,
        rows=[rows[size] for size in config.batch_sizes],
        duration_s=measured.duration_s if measured else 0.0,
    )
    report.analyze(other_device_rows(facts.repo_id, config.device))

    if measured:
        add_metrics(
            facts.repo_id,
            measured.metric_rows(),
            source="benchmark",
            job_id=job_id,
            device=config.device,
        )
        for row in measured.rows:
            if row.status == "ok" and row.measured:
                cache.set_benchmark(
                    facts.repo_id,
                    row.batch_size,
                    key,
                    {
                        "throughput": row.throughput,
                        "latency": row.latency.mean,
                        "detail": row.to_dict(),
                        "device": device,
                    },
                )
    add_event(facts.repo_id, "benchmark_completed", _summary(report), "info")
    spec = report.to_spec()
    spec["reusedBatchSizes"] = sorted(reused)
    return spec


def _summary(report: BenchmarkReport) -> str:
    where = report.device.get("name") or report.config.device
    best = report.optimal_batch_size
    if best is None:
        return f"benchmark on {where}: no batch size could be measured"
    row = report.row(best)
    return (
        f"benchmark on {where}: optimal batch size {best} at {row.throughput:.1f} samples/s, "
        f"{row.latency.mean:.1f} ms mean latency"
    )


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
