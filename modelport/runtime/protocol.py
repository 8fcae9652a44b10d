"""The Hugging Face Inference API's request body, independent of HTTP (the one-shot CLI and the
server both parse with it): {"inputs": one input or a list, "parameters": {...}}, TEI's
top-level embedding options, and `stream` for text generation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .engine import Engine
from .errors import InputError, TooLarge

LEGACY_FIELDS = frozenset({"options"})  # {"use_cache", "wait_for_model"}: accepted, ignored
ROOT_EMBEDDING_PARAMETERS = frozenset(
    {"normalize", "truncate", "prompt_name", "truncation_direction"}
)


@dataclass(frozen=True)
class InferenceRequest:
    items: list[Any]
    single: bool
    params: Any
    stream: bool = False


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"the body is not valid JSON: {exc}", 400) from None


def parse_request(body: Any, engine: Engine) -> InferenceRequest:
    """Items, whether one input was sent, and validated parameters; InputError otherwise."""
    if not isinstance(body, dict) or "inputs" not in body:
        raise InputError('the body must be a JSON object with "inputs" (and optional "parameters")')
    root = set()
    if engine.task in ("feature-extraction", "sentence-similarity"):
        root = set(ROOT_EMBEDDING_PARAMETERS)
    allowed = {"inputs", "parameters", *LEGACY_FIELDS, *root}
    if engine.task == "text-generation":
        allowed.add("stream")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InputError(
            f"unknown field(s) in the body: {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    raw_params = body.get("parameters")
    if root & set(body):
        if raw_params is not None and not isinstance(raw_params, dict):
            raise InputError('"parameters" must be a JSON object')
        raw_params = {**(raw_params or {}), **{k: body[k] for k in root & set(body)}}
    inputs = body["inputs"]
    single = not isinstance(inputs, list)
    items = [inputs] if single else inputs
    if not items:
        raise InputError('"inputs" must not be an empty list')
    limit = engine.config.limits.max_inputs_per_request
    if len(items) > limit:
        raise TooLarge(f'"inputs" holds {len(items)} items; the limit is {limit} per request')
    params = engine.parse_params(raw_params)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InputError('"stream" must be true or false')
    if stream and not single:
        raise InputError("streaming takes one input, not a list")
    return InferenceRequest([engine.check(item, params) for item in items], single, params, stream)
