"""The benchmark capability as the worker runs it: facts -> measurements -> records.

Reuses `benchmark:{model_id}:{batch_size}` entries measured with an identical configuration
(30 minutes), measures the rest, writes one `metrics` row per newly measured batch size
and one `events` row for the run, and compares cost with the other device's latest run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from modelport.benchmarking.cached import assemble, cached_rows, config_from
from modelport.benchmarking.report import BatchResult, BenchmarkReport
from modelport.core import cache
from modelport.core.modelref import ModelRef
from modelport.core.records import Outcome, add_event, add_metrics
from modelport.core.registry import upsert_model
from modelport.core.schemas import benchmark_config_key
from modelport.core.settings import get_settings
from modelport.packaging.facts import ModelFacts, resolve
from modelport.packaging.generate import model_info
from modelport.packaging.options import unsupported

Progress = Callable[[float, str], None]
log = logging.getLogger(__name__)
# A search does not run a level's batch sizes larger than one whose p95 is over this many times
# the objective (as Model Analyzer stops raising a parameter past the latency budget): their
# p95 would only be higher. Batch sizes are reported with status over_objective.
STOP_OVER_OBJECTIVE = 1.5


def benchmark_model(
    params: dict[str, Any],
    progress: Progress | None = None,
    job_id: str | None = None,
    outcome: Outcome | None = None,
    facts: ModelFacts | None = None,
) -> dict[str, Any]:
    """Measure (or reuse) and return SPEC's benchmark result. Rows and cache entries go to
    `outcome` (a job commits them with its success); without one they are written here.
    `facts`: the model, when the caller resolved it already (a search, once for all levels)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from modelport.benchmarking.runner import run_benchmark

    settings = get_settings()
    progress = progress or (lambda fraction, stage: None)
    if facts is None:
        progress(0.01, "resolving model")
        facts = _resolve(params, settings)
    info = model_info(facts)
    cache.set_model_info(facts.repo_id, info)
    upsert_model(info)

    config = config_from(params, settings)
    key = params.get("configKey") or benchmark_config_key(facts.revision, params)
    reused = cached_rows(facts.repo_id, config.batch_sizes, key)
    missing = [size for size in config.batch_sizes if size not in reused]
    measured: BenchmarkReport | None = None
    if missing:
        measured = run_benchmark(
            facts,
            replace(config, batch_sizes=missing),
            lambda fraction, stage: progress(0.05 + 0.9 * fraction, stage),
            reraise=(SoftTimeLimitExceeded,),
        )
    rows = {size: BatchResult.from_dict(entry["detail"]) for size, entry in reused.items()}
    if measured:
        rows.update({row.batch_size: row for row in measured.rows})
    first = next(iter(reused.values()), {})
    device = measured.device if measured else first["device"]
    # the quality gate is of the configuration, so a reused row carries it too
    quality = measured.quality if measured else first.get("quality")
    model = {"repoId": facts.repo_id, "revision": facts.revision, "task": facts.task}
    duration = measured.duration_s if measured else 0.0
    report = assemble(model, config, rows, device, duration_s=duration, quality=quality)

    own = outcome is None
    outcome = outcome or Outcome()
    if measured:
        _record(outcome, facts.repo_id, measured, key, device, job_id)
    summary = _summary(report)
    outcome.write(
        lambda session: add_event(
            facts.repo_id, "benchmark_completed", summary, "info", session=session
        )
    )
    if own:
        outcome.apply_now()
    spec = report.to_spec()
    spec["reusedBatchSizes"] = sorted(reused)
    concurrency = params.get("servedConcurrency")
    if concurrency and report.optimal_batch_size is not None:
        progress(0.96, "serving the bundle")
        spec["served"] = served_section(
            facts, config, report.rows, report.optimal_batch_size, concurrency, params
        )
    return spec


def served_section(
    facts, config, rows, batch_size: int, concurrency: list[int], params: dict[str, Any]
) -> dict:
    """The bundle's server at `batch_size`, driven at each concurrency (served.py), at each of
    the request's batchDelaysMs if any; a server that cannot start is reported here, the
    in-process figures stand."""
    from modelport.benchmarking.modelcache import default_cache
    from modelport.benchmarking.runner import threads_for
    from modelport.benchmarking.served import measure_served
    from modelport.core.errors import BenchmarkFailed

    loaded = default_cache().get(facts, config.device, config.optimization_level)
    try:
        return measure_served(
            facts, config, loaded, loaded.folder or "", batch_size=batch_size,
            concurrency=concurrency, threads=threads_for(config.cpu_cores), rows=rows,
            delays=params.get("batchDelaysMs"), slo_ms=params.get("latencySloMs"),
        )  # fmt: skip
    except BenchmarkFailed as exc:
        log.warning("served benchmark of %s failed: %s", facts.repo_id, exc.message)
        return {"maxBatchSize": batch_size, "error": exc.message}


def search_model(
    params: dict[str, Any],
    progress: Progress | None = None,
    job_id: str | None = None,
    outcome: Outcome | None = None,
) -> dict[str, Any]:
    """A configuration search (search.py): one benchmark per candidate level, then the
    recommended level's answer with the additive `search` section (the table, the Pareto
    front and the options to generate)."""
    from modelport.benchmarking.modelcache import default_cache
    from modelport.benchmarking.search import search_levels, summarize

    progress = progress or (lambda fraction, stage: None)
    settings = get_settings()
    facts = _resolve(params, settings)
    levels, skipped = [], {}
    for level in search_levels(params["device"], params.get("optimizationLevels")):
        why = unsupported(level, facts.task)
        if why:
            skipped[level] = why
        else:
            levels.append(level)
    keys = params.get("configKeys") or {}
    reports: dict[str, dict[str, Any]] = {}
    for index, level in enumerate(levels):

        def step(fraction: float, stage: str, index: int = index, level: str = level) -> None:
            progress((index + fraction) / len(levels), f"{level}: {stage}")

        one = {**params, "optimizationLevel": level, "configKey": keys.get(level),
               "stopOverObjective": STOP_OVER_OBJECTIVE}  # fmt: skip
        one.pop("servedConcurrency", None)  # served once, for the recommendation
        # each level measured with only itself loaded: peak memory compares configurations,
        # not how many were loaded before it
        default_cache().evict(facts.repo_id)
        reports[level] = benchmark_model(one, step, job_id, outcome, facts)
    search = summarize(
        reports,
        device=params["device"],
        slo_ms=params.get("latencySloMs"),
        limit_bytes=settings.max_memory_bytes,
    )
    search["skipped"] = skipped
    picked = search["recommended"]
    level = picked["options"]["optimizationLevel"] if picked else levels[0]
    answer = {**reports[level], "search": search}
    concurrency = params.get("servedConcurrency")
    if picked and concurrency:
        progress(0.97, "serving the recommended configuration")
        config = replace(config_from(params, settings), optimization_level=level)
        rows = [BatchResult.from_dict(r) for r in reports[level].get("details") or []]
        size = picked["options"]["batchSize"]
        served = answer["served"] = served_section(facts, config, rows, size, concurrency, params)
        if served.get("delays"):  # the searched delay is part of what to generate
            picked["options"]["maxBatchDelayMs"] = served["maxDelayMs"]
    return answer


def _resolve(params: dict[str, Any], settings: Any) -> ModelFacts:
    return resolve(
        ModelRef(params["repoId"], params.get("revision")),
        endpoint=settings.HF_ENDPOINT,
        token=settings.HF_TOKEN,
    )


def _record(outcome: Outcome, model_id, measured: BenchmarkReport, key, device, job_id) -> None:
    rows = measured.metric_rows()
    where, level = measured.config.device, measured.config.optimization_level
    outcome.write(
        lambda session: add_metrics(
            model_id,
            rows,
            source="benchmark",
            job_id=job_id,
            device=where,
            optimization_level=level,
            session=session,
        )
    )
    for row in measured.rows:
        if row.status == "ok" and row.measured:
            entry = {
                "throughput": row.throughput,
                "latency": row.latency.mean,
                "detail": row.to_dict(),
                "device": device,
                "quality": measured.quality,
            }
            outcome.then(
                lambda size=row.batch_size, entry=entry: cache.set_benchmark(
                    model_id, size, key, entry
                )
            )


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
