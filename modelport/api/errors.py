"""One handler renders every error as SPEC's `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from modelport.core.errors import (
    BadRequest,
    ModelportError,
    NotFound,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)


def render(err: ModelportError):
    response = jsonify(err.to_dict())
    response.status_code = err.status
    if err.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def register(app: Flask) -> None:
    app.register_error_handler(ModelportError, render)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code == 404:
            err = NotFound("no such endpoint; see the README for the API's paths")
        elif exc.code == 405:
            err = BadRequest(f"method not allowed here: {exc.description}", status=405)
        elif exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            err = BadRequest(f"request body is larger than {limit} bytes", status=413)
        else:
            err = BadRequest(exc.description or exc.name, status=exc.code or 400)
        return render(err)

    @app.errorhandler(redis.RedisError)
    def _redis(exc):
        log.warning("redis unavailable: %s", exc)
        return render(ServiceUnavailable("the queue/cache (Redis) is unavailable; retry shortly"))

    @app.errorhandler(OperationalError)
    def _db(exc):
        log.warning("database unavailable: %s", exc.orig)
        return render(ServiceUnavailable("the database is unavailable or busy; retry shortly"))

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return render(ModelportError("internal error; it has been logged"))
