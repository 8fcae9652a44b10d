"""POST /api/benchmark: SPEC's Benchmark API as a job on the cpu or gpu queue."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify

from modelport.api import ratelimit
from modelport.api.common import parse_body, submit_job
from modelport.core.celery_app import BENCHMARK_TASK, workers_by_queue
from modelport.core.errors import ServiceUnavailable, ValidationFailed
from modelport.core.modelref import parse_model_url
from modelport.core.redis_client import get_redis
from modelport.core.schemas import CPU_ONLY_LEVELS, BenchmarkRequest, benchmark_config_key

bp = Blueprint("benchmark", __name__, url_prefix="/api")
GPU_WORKERS_KEY = "modelport:gpu_workers"


@bp.post("/benchmark")
def benchmark():
    ratelimit.check("submit")
    req = parse_body(BenchmarkRequest)
    settings = current_app.config["MODELPORT"]
    ref = parse_model_url(req.modelId)
    device = pick_device(req.device, settings)
    if device == "cuda" and req.optimizationLevel in CPU_ONLY_LEVELS and not req.search:
        raise ValidationFailed(
            f"optimizationLevel {req.optimizationLevel!r} runs on CPU: use device 'cpu'",
            {"field": "optimizationLevel"},
        )
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
    if req.servedConcurrency:
        params["servedConcurrency"] = req.servedConcurrency
    if req.batchDelaysMs:
        params["batchDelaysMs"] = req.batchDelaysMs
    params["configKey"] = benchmark_config_key(ref.revision_or_default, params)
    if req.search:
        params.update(search_params(req, device, ref.revision_or_default, params))
    elif not req.servedConcurrency:  # the served path is measured each time
        from modelport.benchmarking.cached import cached_answer

        cached = cached_answer(params, settings)
        if cached is not None:
            return jsonify(cached), 200
    queue = "gpu" if device == "cuda" else "cpu"
    if queue == "gpu" and gpu_workers_online() == 0:
        # queued, it would wait for a worker that may never come
        raise ServiceUnavailable(
            "device 'gpu' was asked for and ENABLE_GPU=true, but no worker consumes the gpu "
            "queue: start one on a machine with a GPU (the Procfile's worker_gpu), or "
            "use device 'cpu' or 'auto'",
            {"field": "device", "queue": "gpu", "workersOnline": 0},
        )
    return submit_job(
        kind="benchmark",
        task_name=BENCHMARK_TASK,
        queue=queue,
        params=params,
        model_id=ref.repo_id,
        cache_key=params["configKey"],
    )


def search_params(req: BenchmarkRequest, device: str, revision: str, params: dict) -> dict:
    """A search's levels and each level's cache key (the same key a plain benchmark of that
    level has, so either reuses the other's measurements)."""
    from modelport.benchmarking.search import search_levels

    levels = search_levels(device, req.optimizationLevels)
    keys = {
        level: benchmark_config_key(revision, {**params, "optimizationLevel": level})
        for level in levels
    }
    search_key = benchmark_config_key(revision, {**params, "optimizationLevel": ",".join(levels)})
    return {
        "search": True,
        "optimizationLevels": levels,
        "configKeys": keys,
        "configKey": f"search:{search_key}",
    }


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
    count = len(workers_by_queue(timeout=0.5)["gpu"])
    # a worker that comes online is seen within seconds; a live one is not asked again soon
    cache.set(GPU_WORKERS_KEY, json.dumps(count), ex=30 if count else 5)
    return count
