"""GET /api/health: database, Redis and workers per queue."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from modelport.core.celery_app import QUEUES, workers_by_queue
from modelport.core.db import get_engine
from modelport.core.errors import ServiceUnavailable
from modelport.core.redis_client import get_redis

bp = Blueprint("health", __name__, url_prefix="/api")


@bp.get("/health")
def health():
    checks = {"database": _database(), "redis": _redis()}
    checks["workers"] = workers_by_queue() if checks["redis"]["ok"] else {q: [] for q in QUEUES}
    ok = checks["database"]["ok"] and checks["redis"]["ok"]
    body = {"status": "ok" if ok else "degraded", **checks}
    body["queues"] = {q: len(w) for q, w in checks["workers"].items()}
    if ok:
        return jsonify(body), 200
    down = [name for name in ("database", "redis") if not checks[name]["ok"]]
    error = ServiceUnavailable(f"{' and '.join(down)} unavailable; retry shortly", {"down": down})
    body["error"] = error.to_dict()["error"]
    return jsonify(body), 503, {"Retry-After": "5"}


def _database() -> dict:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _redis() -> dict:
    try:
        get_redis().ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
