"""Retention removes only rows older than METRICS_RETENTION_DAYS, in batches."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

pytestmark = pytest.mark.usefixtures("platform_env")


def test_purge_removes_only_old_rows_in_batches(caplog):
    from sqlalchemy import func, select

    from modelport.core.db import session_scope
    from modelport.core.models import Event, Metric, Model, utcnow
    from modelport.monitoring import retention

    model_id = f"monitor/retention-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    row = {"batch_size": 1, "throughput": 1.0, "latency": 1.0, "memory_mb": 1.0,
           "cost_per_inference": 0.0}  # fmt: skip
    with session_scope() as session:
        session.add(Model(id=model_id))
        session.flush()
        for age_days, n in ((45, 23), (31, 2), (29, 3), (0, 4)):
            when = now - timedelta(days=age_days)
            session.add_all(
                Metric(timestamp=when, model_id=model_id, source="deployment", **row)
                for _ in range(n)
            )
            session.add(Event(timestamp=when, model_id=model_id, event_type="t",
                              description="d", severity="info"))  # fmt: skip

    def counts():
        with session_scope() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(t).where(t.model_id == model_id))
                for t in (Metric, Event)
            )

    assert counts() == (32, 4)
    caplog.set_level("INFO", logger="modelport.monitoring.retention")
    removed = retention.purge(now=now, batch_size=4)  # 30 days by default; 7 batches
    assert removed["metrics"] >= 25 and removed["events"] >= 2
    assert counts() == (7, 2)
    assert "retention: removed" in caplog.text
    assert retention.purge(now=now, batch_size=4) == {"metrics": 0, "events": 0}
