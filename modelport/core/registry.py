"""The `models` table: one row per Hub repo we have resolved."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

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
        dialect = session.get_bind().dialect.name
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
        if insert is not None:
            stmt = insert(Model).values(id=info["id"], created_at=now, **values)
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
            return
    _upsert_portable(info["id"], values, now)


def _upsert_portable(model_id: str, values: dict[str, Any], now) -> None:
    """Read, then insert or update; a lost insert race becomes an update."""
    for _ in range(2):
        try:
            with session_scope() as session:
                row = session.get(Model, model_id)
                if row is None:
                    row = Model(id=model_id, created_at=now)
                    session.add(row)
                for name, value in values.items():
                    setattr(row, name, value)
            return
        except IntegrityError:
            continue  # another process inserted it between our read and insert
    raise RuntimeError(f"could not record model {model_id!r}")
