"""POST /api/generate: SPEC's Model Generation API as a job."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from modelport.api import ratelimit
from modelport.api.common import parse_body, submit_job
from modelport.core import cache
from modelport.core.celery_app import GENERATE_TASK
from modelport.core.db import session_scope
from modelport.core.errors import Conflict, NotFound, ValidationFailed
from modelport.core.modelref import ModelRef, parse_model_url
from modelport.core.models import Job
from modelport.core.quantity import parse_memory
from modelport.core.schemas import (
    DEFAULT_BATCH_DELAY_MS,
    GenerateOptions,
    GenerateRequest,
    fingerprint,
)

bp = Blueprint("generate", __name__, url_prefix="/api")


@bp.post("/generate")
def generate():
    ratelimit.check("submit")
    req = parse_body(GenerateRequest)
    settings = current_app.config["MODELPORT"]
    ref = parse_model_url(req.modelUrl)
    options, provenance = req.options, None
    if req.fromBenchmark is not None:
        if "options" in req.model_fields_set:
            raise ValidationFailed(
                "give either options or fromBenchmark: the benchmark's configuration is the "
                "options",
                {"field": "options"},
            )
        options, provenance = options_from_benchmark(req.fromBenchmark, ref)
    _check_limits(options, settings)
    params: dict[str, Any] = {
        "repoId": ref.repo_id,
        # from a benchmark, the bundle is of the revision that was measured
        "revision": ref.revision or (provenance or {}).get("revision"),
        "options": options.model_dump(by_alias=True),
    }
    if provenance is not None:
        params["benchmark"] = provenance
    revision = params["revision"] or ref.revision_or_default
    key = fingerprint({"revision": revision, "options": params["options"], "benchmark": provenance})
    cached = cache.get_files(ref.repo_id, key)
    if cached is not None:
        return jsonify(cached), 200

    return submit_job(
        kind="generate",
        task_name=GENERATE_TASK,
        queue="default",
        params={**params, "cacheKey": key},
        model_id=ref.repo_id,
        cache_key=key,
    )


def options_from_benchmark(job_id: str, ref: ModelRef) -> tuple[GenerateOptions, dict[str, Any]]:
    """The options a succeeded benchmark of this model recommends (its level, device and
    optimal batch size), and the provenance the bundle records. 404 for an unknown job, 409
    for one that cannot back a bundle (not finished, or its quality gate failed)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != "benchmark":
            raise NotFound(f"no benchmark job {job_id}", {"field": "fromBenchmark"})
        status, model_id, result, finished = job.status, job.model_id, job.result, job.finished_at
        params = dict(job.params or {})
    if model_id != ref.repo_id:
        raise ValidationFailed(
            f"benchmark {job_id} measured {model_id}, not {ref.repo_id}",
            {"field": "fromBenchmark", "modelId": model_id},
        )
    if params.get("revision") and ref.revision and params["revision"] != ref.revision:
        raise ValidationFailed(
            f"benchmark {job_id} measured revision {params['revision']}, not {ref.revision}",
            {"field": "fromBenchmark"},
        )
    if status != "succeeded" or not result:
        raise Conflict(
            f"benchmark {job_id} is {status}: only a succeeded benchmark can back a bundle",
            {"field": "fromBenchmark", "status": status},
        )
    search = result.get("search")
    if search is not None and not search.get("recommended"):
        raise Conflict(
            f"search {job_id} found no configuration to recommend: {search.get('sentence')}",
            {"field": "fromBenchmark"},
        )
    quality = result.get("quality")
    if quality and quality.get("passed") is False:
        raise Conflict(
            f"benchmark {job_id} failed its quality gate against float32 "
            f"({quality.get('metric')} {quality.get('value')}, threshold "
            f"{quality.get('threshold')}): a bundle of that configuration would change the "
            "model's answers; benchmark another optimizationLevel",
            {"field": "fromBenchmark", "quality": quality},
        )
    analysis = result.get("analysis") or {}
    pick = search["recommended"] if search is not None else None  # exactly a search's options
    size = pick["options"]["batchSize"] if pick else analysis.get("optimal_batch_size")
    if not isinstance(size, int):
        raise Conflict(
            f"benchmark {job_id} measured no batch size it could recommend",
            {"field": "fromBenchmark"},
        )
    row = next((r for r in result.get("details") or [] if r.get("batchSize") == size), {})
    device = (result.get("config") or {}).get("device") or params.get("device") or "cpu"
    level = (result.get("config") or {}).get("optimizationLevel") or params["optimizationLevel"]
    level = pick["options"]["optimizationLevel"] if pick else level
    served = result.get("served") or {}
    delay = (  # a delay search's pick: in a search's options, else the served section's
        pick["options"].get("maxBatchDelayMs") if pick
        else served.get("maxDelayMs") if served.get("delays") else None
    )  # fmt: skip
    options = GenerateOptions(batchSize=size, gpu=device == "cuda", optimizationLevel=level,
                              maxBatchDelayMs=delay)  # fmt: skip
    provenance = {
        "jobId": job_id,
        "revision": (result.get("model") or {}).get("revision") or params.get("revision"),
        "device": device,
        "deviceName": (result.get("device") or {}).get("name"),
        "optimizationLevel": level,
        "batchSize": size,
        "maxBatchDelayMs": DEFAULT_BATCH_DELAY_MS if delay is None else delay,
        "throughput": row.get("throughput"),
        "latencyP95Ms": (row.get("latencyMs") or {}).get("p95"),
        "sequenceLength": row.get("sequenceLength"),
        "meetsRequirements": bool(
            pick.get("meetsRequirements") if pick else analysis.get("optimalMeetsRequirements")
        ),
        "quality": _quality_text(quality),
        "finishedAt": finished.isoformat() if finished else None,
    }
    return options, provenance


def _quality_text(quality: dict[str, Any] | None) -> str | None:
    if not quality:
        return None  # the float32 reference level itself
    if quality.get("passed") is None:
        return f"skipped: {quality.get('reason')}"
    return f"{quality['metric']} {quality['value']} (threshold {quality['threshold']}): passed"


def _check_limits(options, settings) -> None:
    if options.gpu and not settings.ENABLE_GPU:
        raise ValidationFailed(
            "options.gpu is true but this platform has ENABLE_GPU=false; ask for a CPU "
            "bundle (gpu: false) or enable GPUs",
            {"field": "options.gpu"},
        )
    if options.memory and parse_memory(options.memory) > settings.max_memory_bytes:
        raise ValidationFailed(
            f"options.memory {options.memory} is above this platform's MAX_MEMORY "
            f"{settings.MAX_MEMORY}",
            {"field": "options.memory", "max": settings.MAX_MEMORY},
        )
