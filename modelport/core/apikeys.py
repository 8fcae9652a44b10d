"""API keys: `mp_<prefix>_<secret>`, stored as SHA-256 of the whole key, compared in
constant time. High-entropy keys need no slow hash; the prefix finds the row."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update

from modelport.core.db import session_scope
from modelport.core.models import ApiKey, utcnow


@dataclass
class NewKey:
    id: int
    name: str
    key: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str) -> NewKey:
    prefix = secrets.token_hex(6)
    key = f"mp_{prefix}_{secrets.token_urlsafe(32)}"
    with session_scope() as session:
        row = ApiKey(name=name[:100], prefix=prefix, key_hash=_hash(key))
        session.add(row)
        session.flush()
        return NewKey(row.id, row.name, key)


def revoke_key(key_id: int) -> bool:
    with session_scope() as session:
        res = session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return res.rowcount == 1


def list_keys() -> list[ApiKey]:
    with session_scope() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def verify(key: str) -> int | None:
    """The key's id when `key` is a live key, else None."""
    parts = key.split("_", 2) if isinstance(key, str) and len(key) < 200 else []
    if len(parts) != 3 or parts[0] != "mp":
        hmac.compare_digest(_hash(key or ""), _hash("x"))  # same work on every path
        return None
    with session_scope() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
        expected = row.key_hash if row else _hash("missing")
        ok = hmac.compare_digest(_hash(key), expected)
        if not ok or row is None or row.revoked_at is not None:
            return None
        return row.id
