"""Writing measurements: `metrics` rows and `events` rows (SPEC's tables).

Each writer takes an optional `session`: a job passes the session of its finishing
transaction, so its rows are committed together with its success, or not at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from modelport.core.db import session_scope
from modelport.core.models import Event, Metric, utcnow

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _within(session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
    else:
        with session_scope() as own:
            yield own


def add_metrics(
    model_id: str,
    rows: Iterable[dict[str, Any]],
    *,
    source: str,
    job_id: str | None = None,
    device: str | None = None,
    optimization_level: str | None = None,
    timestamp: datetime | None = None,
    session: Session | None = None,
) -> int:
    """Insert SPEC metrics rows (batch_size, throughput, latency, memory_mb, gpu_memory_mb,
    cost_per_inference). Returns how many were written."""
    when = timestamp or utcnow()
    count = 0
    with _within(session) as db:
        for row in rows:
            db.add(
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
                    optimization_level=optimization_level,
                )
            )
            count += 1
    return count


def add_event(
    model_id: str,
    event_type: str,
    description: str,
    severity: str = "info",
    session: Session | None = None,
) -> None:
    with _within(session) as db:
        db.add(
            Event(
                timestamp=utcnow(),
                model_id=model_id,
                event_type=event_type,
                description=description[:2000],
                severity=severity,
            )
        )


class Outcome:
    """What a job writes when it succeeds. Rows go into the job's finishing transaction, so an
    attempt that is killed or superseded before it finishes leaves none behind; cache
    updates run once that transaction committed."""

    def __init__(self) -> None:
        self._rows: list[Callable[[Session], Any]] = []
        self._after: list[Callable[[], Any]] = []

    def write(self, fn: Callable[[Session], Any]) -> None:
        self._rows.append(fn)

    def then(self, fn: Callable[[], Any]) -> None:
        self._after.append(fn)

    def write_rows(self, session: Session) -> None:
        for fn in self._rows:
            fn(session)

    def committed(self) -> None:
        for fn in self._after:
            try:
                fn()
            except Exception as exc:  # a cache is an optimisation: the rows are the record
                log.warning("after-commit step failed: %s", exc)

    def apply_now(self) -> None:
        """For callers outside a job: write everything at once."""
        with session_scope() as session:
            self.write_rows(session)
        self.committed()
