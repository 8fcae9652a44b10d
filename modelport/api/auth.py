"""Bearer API keys on every /api route but health, when settings require them."""

from __future__ import annotations

from flask import Flask, current_app, g, request

from modelport.core import apikeys
from modelport.core.errors import Unauthorized

OPEN_ENDPOINTS = {"health.health", "openapi.document", "openapi.docs", "openapi.asset"}


def install(app: Flask) -> None:
    app.before_request(_check_key)


def _check_key():
    g.api_key_id = None
    if request.method == "OPTIONS" or request.endpoint in OPEN_ENDPOINTS:
        return
    if not request.path.startswith("/api/"):
        return
    settings = current_app.config["MODELPORT"]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    key_id = apikeys.verify(token.strip()) if scheme.lower() == "bearer" and token else None
    if key_id is None and settings.auth_required:
        raise Unauthorized(
            "a valid API key is required: send 'Authorization: Bearer <key>' "
            "(create one with `modelport api-key create NAME`)"
        )
    g.api_key_id = key_id
