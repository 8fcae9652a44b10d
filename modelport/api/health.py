"""GET /api/health: database, Redis and workers per queue.

`ok` (200) only when the database and Redis answer and every queue the platform needs has a
worker consuming it (control for beat's and the reconciler's tasks, default for generation,
cpu for benchmarks); otherwise `degraded` (503 with SPEC's error, 1010), naming what is
down and the queues nobody consumes, so a submission would not wait for a worker that is not
there. The gpu queue is optional (device "auto" uses it only while a GPU worker is online).
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from modelport.core.celery_app import CONTROL_QUEUE, QUEUES, workers_by_queue
from modelport.core.db import get_engine
from modelport.core.errors import ServiceUnavailable
from modelport.core.redis_client import get_redis

bp = Blueprint("health", __name__, url_prefix="/api")
REQUIRED_QUEUES = (CONTROL_QUEUE, "default", "cpu")


@bp.get("/health")
def health():
    checks = {"database": _database(), "redis": _redis()}
    checks["workers"] = workers_by_queue() if checks["redis"]["ok"] else {q: [] for q in QUEUES}
    down = [name for name in ("database", "redis") if not checks[name]["ok"]]
    idle = unconsumed(checks["workers"]) if not down else []
    body = {"status": "degraded" if down or idle else "ok", **checks}
    body["queues"] = {q: len(w) for q, w in checks["workers"].items()}
    body["unconsumedQueues"] = idle
    if not down and not idle:
        return jsonify(body), 200
    error = ServiceUnavailable(degraded_message(down, idle), {"down": down, "queues": idle})
    body["error"] = error.to_dict()["error"]
    return jsonify(body), 503, {"Retry-After": "5"}


def unconsumed(workers: dict[str, list[str]]) -> list[str]:
    """The queues the platform needs that no worker consumes."""
    return [queue for queue in REQUIRED_QUEUES if not workers.get(queue)]


def degraded_message(down: list[str], idle: list[str]) -> str:
    parts = [f"{' and '.join(down)} unavailable"] if down else []
    if idle:
        parts.append(
            f"no worker consumes the {', '.join(idle)} queue{'s' if len(idle) > 1 else ''} "
            "(start the workers: `modelport dev`, or the Procfile's worker lines)"
        )
    return "; ".join(parts) + "; retry shortly"


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
