"""The server's OpenAPI 3.1 document, built from the same pydantic models that validate."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import RUNTIME_VERSION
from .config import RuntimeConfig
from .params import parameters_for

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_type": {"type": "string"}},
}


def openapi_document(config: RuntimeConfig) -> dict[str, Any]:
    from .openai_routes import ChatBody, CompletionsBody, EmbeddingsBody

    models: list[type[BaseModel]] = [
        parameters_for(config.task, sentence_transformers=config.sentence_transformers)
    ]
    if config.sentence_transformers:
        models.append(EmbeddingsBody)
    if config.task == "text-generation":
        models += [ChatBody, CompletionsBody]
    _, schema = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    components = dict(schema.get("$defs", {}))
    components["Error"] = ERROR
    params_ref = {"$ref": f"#/components/schemas/{models[0].__name__}"}
    request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "inputs": {"description": f"one input for {config.task}, or a list of inputs"},
            "parameters": params_ref,
        },
    }
    errors = {
        str(code): {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, text in (
            (400, "malformed body"),
            (413, "over a size limit"),
            (422, "invalid input or parameters"),
            (503, "loading, draining or busy; see Retry-After"),
        )
    }
    predict = {
        "summary": f"Run {config.task} (Hugging Face Inference API)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "200": {"description": "the outputs, shaped as the transformers pipeline gives them"},
            **errors,
        },
    }
    paths: dict[str, Any] = {
        "/": {"post": {**predict, "operationId": "predict_root"}},
        "/predict": {"post": {**predict, "operationId": "predict"}},
        "/health": {
            "get": {
                "summary": "Liveness and what is served",
                "operationId": "health",
                "responses": {"200": {"description": "the process is up"}},
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness",
                "operationId": "ready",
                "responses": {"200": {"description": "ready"}, "503": errors["503"]},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    }
    for path, model in (
        ("/v1/embeddings", "EmbeddingsBody"),
        ("/v1/chat/completions", "ChatBody"),
        ("/v1/completions", "CompletionsBody"),
    ):
        if model in components:
            paths[path] = {
                "post": {
                    "summary": "OpenAI-compatible",
                    "operationId": path.strip("/").replace("/", "_"),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{model}"}
                            }
                        },
                    },
                    "responses": {"200": {"description": "OpenAI's response shape"}, **errors},
                }
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{config.model_id} ({config.task})", "version": RUNTIME_VERSION},
        "paths": paths,
        "components": {"schemas": components},
    }
