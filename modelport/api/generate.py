"""POST /api/generate: SPEC's Model Generation API as a job."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from modelport.api import ratelimit
from modelport.api.common import parse_body, submit_job
from modelport.core import cache
from modelport.core.celery_app import GENERATE_TASK
from modelport.core.errors import ValidationFailed
from modelport.core.modelref import parse_model_url
from modelport.core.quantity import parse_memory
from modelport.core.schemas import GenerateRequest, fingerprint

bp = Blueprint("generate", __name__, url_prefix="/api")


@bp.post("/generate")
def generate():
    ratelimit.check("submit")
    req = parse_body(GenerateRequest)
    settings = current_app.config["MODELPORT"]
    ref = parse_model_url(req.modelUrl)
    options = req.options
    _check_limits(options, settings)
    params = {
        "repoId": ref.repo_id,
        "revision": ref.revision,
        "options": options.model_dump(by_alias=True),
    }
    key = fingerprint({"revision": ref.revision_or_default, "options": params["options"]})
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
