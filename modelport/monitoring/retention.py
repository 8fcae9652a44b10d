"""Retention: delete `metrics` and `events` older than METRICS_RETENTION_DAYS.

Deletes run in bounded batches, each its own transaction, so writers (sampling, the API)
wait at most one batch for the database lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from modelport.core.db import session_scope
from modelport.core.models import Event, Metric, utcnow
from modelport.core.settings import get_settings

log = logging.getLogger(__name__)


def purge(now: datetime | None = None, batch_size: int = 5000) -> dict[str, int]:
    """Delete rows older than the retention window; how many went, by table."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    days = get_settings().METRICS_RETENTION_DAYS
    cutoff = (now or utcnow()) - timedelta(days=days)
    removed = {"metrics": 0, "events": 0}
    for name, table in (("metrics", Metric), ("events", Event)):
        while True:
            batch = select(table.id).where(table.timestamp < cutoff).limit(batch_size)
            with session_scope() as session:
                gone = session.execute(
                    delete(table)
                    .where(table.id.in_(batch.scalar_subquery()))
                    .execution_options(synchronize_session=False)
                ).rowcount
            removed[name] += gone
            if gone < batch_size:
                break
    log.info(
        "retention: removed %d metrics rows and %d events rows older than %s (%d days)",
        removed["metrics"], removed["events"], cutoff.isoformat(), days,
    )  # fmt: skip
    return removed
