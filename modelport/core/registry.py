"""The `models` table: one row per Hub repo we have resolved."""

from __future__ import annotations

from typing import Any

from modelport.core.db import session_scope
from modelport.core.models import Model, utcnow


def upsert_model(info: dict[str, Any]) -> None:
    """Insert or refresh a model row from resolved facts (`model_info` cache shape)."""
    with session_scope() as session:
        row = session.get(Model, info["id"])
        if row is None:
            row = Model(id=info["id"], created_at=utcnow())
            session.add(row)
        row.revision = info.get("revision")
        row.pipeline_type = info.get("pipeline_type")
        row.library_name = info.get("library_name")
        row.description = (info.get("description") or "")[:2000]
        row.tags = list(info.get("tags") or [])[:100]
        row.parameters = info.get("parameters")
        row.gated = bool(info.get("gated"))
        row.updated_at = utcnow()
