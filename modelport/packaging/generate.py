"""The generation capability: model reference + options -> SPEC's generate response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelport.core import cache
from modelport.core.errors import ValidationFailed
from modelport.core.modelref import ModelRef
from modelport.core.registry import upsert_model
from modelport.core.settings import get_settings
from modelport.packaging.bundle import render_bundle
from modelport.packaging.facts import ModelFacts, resolve
from modelport.packaging.options import GenerateOptions, unsupported
from modelport.packaging.validate import validate_bundle

Progress = Callable[[float, str], None]


def model_info(facts: ModelFacts) -> dict[str, Any]:
    """SPEC's `model_info:{model_id}` cache shape, plus the pinned revision."""
    return {
        "id": facts.repo_id,
        "pipeline_type": facts.task,
        "description": facts.description,
        "tags": facts.tags,
        "revision": facts.revision,
        "library_name": facts.library_name,
        "parameters": facts.parameters,
        "gated": facts.gated,
    }


def generate_bundle(params: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or (lambda fraction, stage: None)
    settings = get_settings()
    ref = ModelRef(params["repoId"], params.get("revision"))
    options = GenerateOptions(**params["options"])

    progress(0.1, "resolving model")
    facts = resolve(ref, endpoint=settings.HF_ENDPOINT, token=settings.HF_TOKEN)
    info = model_info(facts)
    cache.set_model_info(facts.repo_id, info)
    upsert_model(info)
    why = unsupported(options.optimization_level, facts.task)
    if why:
        raise ValidationFailed(why, {"field": "options.optimizationLevel"})

    progress(0.4, "rendering bundle")
    files = render_bundle(facts, options, params.get("benchmark"))

    progress(0.7, "validating bundle")
    report = validate_bundle(
        files,
        facts,
        options,
        max_memory_bytes=settings.max_memory_bytes,
        hadolint_bin=settings.HADOLINT_BIN,
    )
    response = {
        "files": files,
        "validation": report.to_spec(),
        "model": {
            "id": facts.repo_id,
            "revision": facts.revision,
            "task": facts.task,
            "source": facts.source,
        },
    }
    if params.get("cacheKey"):
        cache.set_files(facts.repo_id, params["cacheKey"], response)
    return response
