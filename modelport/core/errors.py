"""One error hierarchy: each error carries SPEC's code and an HTTP status.

Codes 1001-1005 are SPEC's; 1006+ are the ones modelport adds. The README lists them all.
"""

from __future__ import annotations

from typing import Any

ERROR_CODES = {
    "INVALID_MODEL": 1001,
    "GENERATION_FAILED": 1002,
    "VALIDATION_FAILED": 1003,
    "BENCHMARK_FAILED": 1004,
    "MONITORING_ERROR": 1005,
    # added by modelport
    "BAD_REQUEST": 1006,
    "UNAUTHORIZED": 1007,
    "NOT_FOUND": 1008,
    "RATE_LIMITED": 1009,
    "SERVICE_UNAVAILABLE": 1010,
    "CONFLICT": 1011,
    "INTERNAL_ERROR": 1012,
}


class ModelportError(Exception):
    """Base error: renders as SPEC's `{"error": {"code", "message", "details"}}`."""

    name = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, status=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status = status

    @property
    def code(self) -> int:
        return ERROR_CODES[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ModelportError:
        err = body.get("error", {})
        by_code = {c.code_value(): c for c in _all_subclasses(cls)}
        kind = by_code.get(err.get("code"), ModelportError)
        return kind(err.get("message", ""), err.get("details") or {})

    @classmethod
    def code_value(cls) -> int:
        return ERROR_CODES[cls.name]


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


class InvalidModel(ModelportError, ValueError):
    name = "INVALID_MODEL"
    status = 400


class ModelNotFound(InvalidModel):
    status = 404


class GatedModel(InvalidModel):
    status = 403


class UnsupportedModel(InvalidModel):
    status = 422


class GenerationFailed(ModelportError):
    name = "GENERATION_FAILED"
    status = 500


class ValidationFailed(ModelportError, ValueError):
    """A request whose fields are well-formed JSON but not acceptable values."""

    name = "VALIDATION_FAILED"
    status = 400


class BenchmarkFailed(ModelportError):
    name = "BENCHMARK_FAILED"
    status = 500


class MonitoringError(ModelportError):
    name = "MONITORING_ERROR"
    status = 500


class BadRequest(ModelportError, ValueError):
    name = "BAD_REQUEST"
    status = 400


class Unauthorized(ModelportError):
    name = "UNAUTHORIZED"
    status = 401


class NotFound(ModelportError, LookupError):
    name = "NOT_FOUND"
    status = 404


class RateLimited(ModelportError):
    name = "RATE_LIMITED"
    status = 429


class ServiceUnavailable(ModelportError):
    name = "SERVICE_UNAVAILABLE"
    status = 503


class Conflict(ModelportError):
    name = "CONFLICT"
    status = 409
