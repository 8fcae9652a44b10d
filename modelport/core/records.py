"""Writing measurements: `metrics` rows and `events` rows (SPEC's tables)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from modelport.core.db import session_scope
from modelport.core.models import Event, Metric, utcnow


def add_metrics(
    model_id: str,
    rows: Iterable[dict[str, Any]],
    *,
    source: str,
    job_id: str | None = None,
    device: str | None = None,
    timestamp: datetime | None = None,
) -> int:
    """Insert SPEC metrics rows (batch_size, throughput, latency, memory_mb, gpu_memory_mb,
    cost_per_inference). Returns how many were written."""
    when = timestamp or utcnow()
    count = 0
    with session_scope() as session:
        for row in rows:
            session.add(
                Metric(
                    timestamp=when,
                    model_id=model_id,
                    batch_size=int(row["batch_size"]),
                    throughput=float(row["throughput"]),
                    latency=float(row["latency"]),
                    memory_mb=float(row["memory_mb"]),
                    gpu_memory_mb=row.get("gpu_memory_mb"),
                    cost_per_inference=float(row["cost_per_inference"]),
                    source=source,
                    job_id=job_id,
                    device=device,
                )
            )
            count += 1
    return count


def add_event(model_id: str, event_type: str, description: str, severity: str = "info") -> None:
    with session_scope() as session:
        session.add(
            Event(
                timestamp=utcnow(),
                model_id=model_id,
                event_type=event_type,
                description=description[:2000],
                severity=severity,
            )
        )
