"""POST /api/benchmark: SPEC's Benchmark API as a job on the cpu or gpu queue."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify

from modelport.api import ratelimit
from modelport.api.common import job_response, parse_body, wait_seconds
from modelport.core import jobs
from modelport.core.celery_app import BENCHMARK_TASK, get_celery
from modelport.core.db import session_scope
from modelport.core.errors import ValidationFailed
from modelport.core.modelref import parse_model_url
from modelport.core.redis_client import get_redis
from modelport.core.schemas import BenchmarkRequest, benchmark_config_key

bp = Blueprint("benchmark", __name__, url_prefix="/api")
GPU_WORKERS_KEY = "modelport:gpu_workers"


@bp.post("/benchmark")
def benchmark():
    ratelimit.check("submit")
    req = parse_body(BenchmarkRequest)
    settings = current_app.config["MODELPORT"]
    ref = parse_model_url(req.modelId)
    device = pick_device(req.device, settings)
    params = {
        "repoId": ref.repo_id,
        "revision": ref.revision,
        "batchSizes": req.batchSizes,
        "iterations": req.iterations,
        "warmup": req.warmup,
        "sequenceLength": req.sequenceLength,
        "device": device,
        "optimizationLevel": req.optimizationLevel,
        "latencySloMs": req.latencySloMs,
        "maxNewTokens": req.maxNewTokens,
    }
    params["configKey"] = benchmark_config_key(ref.revision_or_default, params)
    from modelport.benchmarking.cached import cached_answer

    cached = cached_answer(params, settings)
    if cached is not None:
        return jsonify(cached), 200
    queue = "gpu" if device == "cuda" else "cpu"
    with session_scope() as session:
        job = jobs.new_job(
            session,
            kind="benchmark",
            task_name=BENCHMARK_TASK,
            queue=queue,
            params=params,
            model_id=ref.repo_id,
            cache_key=params["configKey"],
            api_key_id=g.get("api_key_id"),
        )
        job_id = job.id
    jobs.enqueue(job_id, BENCHMARK_TASK, queue)
    return job_response(job_id, wait_seconds())


def pick_device(asked: str, settings) -> str:
    if asked == "gpu" and not settings.ENABLE_GPU:
        raise ValidationFailed(
            "device 'gpu' was asked for but this platform has ENABLE_GPU=false; "
            "use device 'cpu' or 'auto'",
            {"field": "device"},
        )
    if asked == "gpu":
        return "cuda"
    if asked == "auto" and settings.ENABLE_GPU and gpu_workers_online() > 0:
        return "cuda"
    return "cpu"


def gpu_workers_online() -> int:
    """How many workers consume the gpu queue (asked of the workers, cached 30 s)."""
    cache = get_redis()
    cached = cache.get(GPU_WORKERS_KEY)
    if cached is not None:
        return int(cached)
    try:
        replies = get_celery().control.inspect(timeout=0.5).active_queues() or {}
    except Exception:
        replies = {}
    count = sum(1 for queues in replies.values() if any(q["name"] == "gpu" for q in queues))
    cache.set(GPU_WORKERS_KEY, json.dumps(count), ex=30)
    return count
