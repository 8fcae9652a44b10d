"""The `models` table: one row per Hub repo we have resolved."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from modelport.core.db import session_scope
from modelport.core.models import Model, utcnow


def upsert_model(info: dict[str, Any]) -> None:
    """Insert or refresh a model row from resolved facts (`model_info` cache shape).

    One statement, INSERT ... ON CONFLICT (id) DO UPDATE, so that two workers resolving the
    same new model at once both succeed (a read-then-insert lets the slower one fail its job
    with a UNIQUE constraint error). `created_at` is kept from the first insert."""
    now = utcnow()
    values = {
        "revision": info.get("revision"),
        "pipeline_type": info.get("pipeline_type"),
        "library_name": info.get("library_name"),
        "description": (info.get("description") or "")[:2000],
        "tags": list(info.get("tags") or [])[:100],
        "parameters": info.get("parameters"),
        "gated": bool(info.get("gated")),
        "updated_at": now,
    }
    with session_scope() as session:
        # SQLite and PostgreSQL (the databases modelport runs on) share this syntax
        sqlite_db = session.get_bind().dialect.name == "sqlite"
        insert = sqlite.insert if sqlite_db else postgresql.insert
        stmt = insert(Model).values(id=info["id"], created_at=now, **values)
        session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
