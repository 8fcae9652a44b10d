"""Job lifecycle. The database is the truth; every transition is a conditional UPDATE.

A job is claimed by one attempt at a time (a token in `worker`) under a lease that the
running attempt renews. A redelivered message finds the job finished (and does nothing),
running under a live lease (and comes back later), or claimable (and runs it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modelport.core import events
from modelport.core.celery_app import get_celery, waiting_messages
from modelport.core.db import session_scope
from modelport.core.models import FINAL_STATUSES, Job, utcnow
from modelport.core.records import Outcome
from modelport.core.settings import get_settings

log = logging.getLogger(__name__)


def new_job(
    session: Session,
    *,
    kind: str,
    task_name: str,
    queue: str,
    params: dict[str, Any],
    model_id: str | None = None,
    cache_key: str | None = None,
    api_key_id: int | None = None,
) -> Job:
    job = Job(
        id=str(uuid.uuid4()),
        kind=kind,
        task_name=task_name,
        queue=queue,
        status="queued",
        params=params,
        model_id=model_id,
        cache_key=cache_key,
        api_key_id=api_key_id,
        progress=0.0,
        attempts=0,
        enqueues=0,
        max_attempts=get_settings().JOB_MAX_ATTEMPTS,
        created_at=utcnow(),
    )
    session.add(job)
    return job


def enqueue(job_id: str, task_name: str, queue: str) -> bool:
    """Send the job's message (after its row is committed). False if the broker is down:
    the row stays `queued` with no `enqueued_at`, and the reconciler sends it later."""
    try:
        get_celery().send_task(
            task_name,
            args=[job_id],
            task_id=job_id,
            queue=queue,
            # the DB row is the result: no Celery result subscription (which would also
            # block for long retrying a Redis that is down)
            ignore_result=True,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:  # kombu raises several connection error types
        log.warning("could not enqueue job %s: %s", job_id, exc)
        return False
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(enqueued_at=utcnow(), enqueues=Job.enqueues + 1)
        )
    return True


@dataclass
class Claim:
    outcome: str  # "claimed" | "finished" | "busy" | "exhausted" | "missing"
    job: Job | None = None
    token: str | None = None
    retry_in: float = 0.0


def claim(job_id: str) -> Claim:
    """Take the job for one attempt, if nobody finished or holds it."""
    settings = get_settings()
    now = utcnow()
    token = uuid.uuid4().hex
    with session_scope() as session:
        claimable = or_(
            Job.status == "queued",
            and_(Job.status == "running", Job.lease_expires_at < now),
        )
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempts < Job.max_attempts, claimable)
            .values(
                status="running",
                attempts=Job.attempts + 1,
                started_at=now,
                worker=token,
                lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
                stage="starting",
            )
        )
        job = session.get(Job, job_id)
        if job is None:
            return Claim("missing")
        if result.rowcount == 1:
            return Claim("claimed", job, token)
        if job.status in FINAL_STATUSES:
            return Claim("finished", job)
        if job.status == "running" and job.lease_expires_at and job.lease_expires_at >= now:
            wait = (job.lease_expires_at - now).total_seconds()
            return Claim("busy", job, retry_in=wait + 0.5)
    _give_up(job_id)
    return Claim("exhausted", job)


def _give_up(job_id: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.status in FINAL_STATUSES:
            return
        error = {
            "code": 1012,
            "message": f"the job was attempted {job.attempts} times and each attempt was lost "
            "(worker killed or timed out); it will not be retried",
            "details": {"attempts": job.attempts},
        }
        if job.kind == "generate":
            error["code"] = 1002
        elif job.kind == "benchmark":
            error["code"] = 1004
    _finish(job_id, None, "failed", error=error)


def heartbeat(job_id: str, token: str) -> bool:
    """Renew the lease; False when the attempt no longer owns the job (cancelled, taken)."""
    lease = timedelta(seconds=get_settings().JOB_LEASE_SECONDS)
    with session_scope() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.worker == token)
            .values(lease_expires_at=utcnow() + lease)
        )
        return result.rowcount == 1


def release(job_id: str, token: str) -> bool:
    """Give a claimed job back after a transient failure (the database went away mid-run):
    queued again for the retry that follows. The attempt still counts toward the cap."""
    with session_scope() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.worker == token)
            .values(status="queued", worker=None, lease_expires_at=None, stage="retrying")
        )
        return result.rowcount == 1


def report_progress(job_id: str, token: str, progress: float, stage: str) -> bool:
    progress = max(0.0, min(1.0, progress))
    with session_scope() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running", Job.worker == token)
            .values(progress=progress, stage=stage)
        )
    owned = result.rowcount == 1
    if owned:
        events.publish_job(job_id, "job_progress", {"progress": progress, "stage": stage})
    return owned


def succeed(
    job_id: str, token: str, result: dict[str, Any], outcome: Outcome | None = None
) -> bool:
    """Record success, with the rows in `outcome`, in one transaction: only if this attempt
    still owns the job, so a result is recorded once however often the job ran."""
    return _finish(job_id, token, "succeeded", result=result, outcome=outcome)


def fail(job_id: str, token: str | None, error: dict[str, Any]) -> bool:
    return _finish(job_id, token, "failed", error=error)


def _finish(job_id, token, status, *, result=None, error=None, outcome=None) -> bool:
    now = utcnow()
    owner = Job.worker == token if token else Job.status.in_(("queued", "running"))
    with session_scope() as session:
        res = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(("queued", "running")), owner)
            .values(
                status=status,
                result=result,
                error=error,
                finished_at=now,
                lease_expires_at=None,
                progress=1.0 if status == "succeeded" else Job.progress,
                stage=status,
            )
        )
        done = res.rowcount == 1
        if done and outcome is not None:
            outcome.write_rows(session)
    if done and outcome is not None:
        outcome.committed()
    if done:
        _announce(job_id, status, result, error)
    return done


def _announce(job_id: str, status: str, result: Any, error: Any) -> None:
    """Put job_completed on the bus, then note it on the row. A process killed in between
    leaves the note unset and reconcile announces the job again (published at most once)."""
    data = {"status": status, "result": result, "error": error}
    if not events.publish_job_once(job_id, "job_completed", data):
        return
    try:
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == job_id).values(notified_at=utcnow()))
    except SQLAlchemyError as exc:  # the job is final either way; reconcile notes it later
        log.warning("could not note %s as announced: %s", job_id, exc)


def cancel(job_id: str) -> bool:
    """Cancel a queued or running job; the running attempt sees it at its next heartbeat."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        was_running = job is not None and job.status == "running"
    cancelled = _finish(
        job_id,
        None,
        "cancelled",
        error={"code": 1011, "message": "the job was cancelled", "details": {}},
    )
    if cancelled:
        try:
            get_celery().control.revoke(job_id, terminate=was_running, signal="SIGTERM")
        except Exception as exc:  # the DB state already stops any later attempt
            log.warning("could not revoke %s: %s", job_id, exc)
    return cancelled


def reconcile(now: datetime | None = None) -> dict[str, int]:
    """Re-send jobs whose message was lost and jobs whose running attempt died.

    A job never sent is sent. A job sent more than JOB_REQUEUE_AFTER ago and still queued is
    re-sent only when nothing waits in its queue: behind a backlog its message is most likely
    still there, and once the queue drains a lost one shows (a Redis restarted empty)."""
    settings = get_settings()
    now = now or utcnow()
    stale_enqueue = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    never_sent = now - timedelta(seconds=2)
    counts = {"requeued": 0, "expired": 0, "failed": 0, "waiting": 0}
    with session_scope() as session:
        queued = session.scalars(
            select(Job).where(
                Job.status == "queued",
                or_(
                    and_(Job.enqueued_at.is_(None), Job.created_at < never_sent),
                    Job.enqueued_at < stale_enqueue,
                ),
            )
        ).all()
        expired = session.scalars(
            select(Job).where(Job.status == "running", Job.lease_expires_at < now)
        ).all()
    backlog: dict[str, int | None] = {}
    for job in queued:
        if job.enqueued_at is not None:
            if job.queue not in backlog:
                backlog[job.queue] = waiting_messages(job.queue)
            if backlog[job.queue] != 0:
                counts["waiting"] += 1
                continue
        if enqueue(job.id, job.task_name, job.queue):
            counts["requeued"] += 1
    for job in expired:
        if job.attempts >= job.max_attempts:
            _give_up(job.id)
            counts["failed"] += 1
            continue
        with session_scope() as session:
            res = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == "running", Job.lease_expires_at < now)
                .values(status="queued", worker=None, stage="requeued", lease_expires_at=None)
            )
        if res.rowcount == 1 and enqueue(job.id, job.task_name, job.queue):
            counts["expired"] += 1
    counts["announced"] = _announce_missed(now)
    if any(counts.values()):
        log.info("reconciled jobs: %s", counts)
    return counts


def _announce_missed(now: datetime) -> int:
    """Announce final jobs whose job_completed never reached the bus (the finishing process
    died after its commit, or Redis was away). Jobs of the last day, settled for a moment."""
    with session_scope() as session:
        missed = session.scalars(
            select(Job).where(
                Job.status.in_(FINAL_STATUSES),
                Job.created_at > now - timedelta(days=1),
                Job.notified_at.is_(None),
                Job.finished_at < now - timedelta(seconds=2),
            )
        ).all()
    for job in missed:
        _announce(job.id, job.status, job.result, job.error)
    return len(missed)


def to_dict(job: Job) -> dict[str, Any]:
    """The job as GET /api/jobs/<id> shows it."""

    def ts(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    body: dict[str, Any] = {
        "jobId": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(job.progress or 0.0, 4),
        "stage": job.stage,
        "modelId": job.model_id,
        "queue": job.queue,
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "createdAt": ts(job.created_at),
        "startedAt": ts(job.started_at),
        "finishedAt": ts(job.finished_at),
        "links": {"self": f"/api/jobs/{job.id}"},
    }
    if job.status == "succeeded":
        body["result"] = job.result
    if job.status in ("failed", "cancelled") and job.error:
        body["error"] = job.error
    return body
