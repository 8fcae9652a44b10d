"""What every job task does around its one call: claim, lease, progress, result.

Database outages are transient here: a claim that cannot reach the database, or an attempt
that loses it mid-run, comes back later through Celery's retry instead of failing the job;
recording the outcome is retried in place so finished work is not thrown away.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from modelport.core import jobs
from modelport.core.errors import ModelportError
from modelport.core.records import Outcome
from modelport.core.settings import get_settings

log = logging.getLogger(__name__)

# How often a busy job's redelivered message may come back before it gives up.
MAX_BUSY_RETRIES = 100
# A job whose database is unreachable comes back this often (with backoff) before the
# reconciler is left to re-send it.
MAX_DB_RETRIES = 30
DB_ERRORS = (OperationalError, InterfaceError)
# How long a finished attempt keeps trying to record its outcome while the database is away.
RECORD_PATIENCE_SECONDS = 120.0


class Cancelled(Exception):
    """The job was cancelled (or taken over) while this attempt ran."""


class Attempt:
    """One claimed attempt: renews the lease in the background and reports progress.
    `outcome` collects the rows the job writes with its success."""

    def __init__(self, job_id: str, token: str):
        self.job_id = job_id
        self.token = token
        self.outcome = Outcome()
        self.lost = threading.Event()
        self._stop = threading.Event()
        interval = max(get_settings().JOB_LEASE_SECONDS / 3, 0.5)
        self._thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)

    def __enter__(self) -> Attempt:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if not jobs.heartbeat(self.job_id, self.token):
                    self.lost.set()
                    return
            except Exception as exc:  # a DB hiccup must not kill the attempt
                log.warning("lease renewal failed for %s: %s", self.job_id, exc)

    def progress(self, fraction: float, stage: str) -> None:
        if self.lost.is_set():
            raise Cancelled(self.job_id)
        try:
            owned = jobs.report_progress(self.job_id, self.token, fraction, stage)
        except DB_ERRORS as exc:  # progress is informative; the lease decides ownership
            log.warning("progress of %s not recorded: %s", self.job_id, exc)
            return
        if not owned:
            raise Cancelled(self.job_id)


def _db_backoff(task: Task) -> float:
    return min(30.0, 1.0 * 2 ** (task.request.retries or 0))


def _persist(record: Callable[[], Any], job_id: str) -> Any:
    """Run `record` until the database takes it, for up to RECORD_PATIENCE_SECONDS."""
    deadline = time.monotonic() + RECORD_PATIENCE_SECONDS
    delay = 0.5
    while True:
        try:
            return record()
        except DB_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("recording the outcome of %s failed (%s); retrying", job_id, exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def run_job(
    task: Task,
    job_id: str,
    work: Callable[[dict[str, Any], Attempt], dict[str, Any]],
    failure: type[ModelportError],
) -> str:
    """Claim `job_id`, run `work(params, attempt)`, record the outcome. Returns the outcome."""
    try:
        claim = jobs.claim(job_id)
    except DB_ERRORS as exc:
        log.warning("job %s: database unavailable at claim (%s); retrying", job_id, exc)
        raise task.retry(countdown=_db_backoff(task), max_retries=MAX_DB_RETRIES) from None
    if claim.outcome == "busy":
        # Another attempt holds a live lease (or its worker just died): look again later.
        raise task.retry(countdown=claim.retry_in, max_retries=MAX_BUSY_RETRIES)
    if claim.outcome != "claimed":
        log.info("job %s not run: %s", job_id, claim.outcome)
        return claim.outcome
    job, token = claim.job, claim.token

    def fail(err: ModelportError) -> str:
        _persist(lambda: jobs.fail(job_id, token, err.to_dict()["error"]), job_id)
        return "failed"

    with Attempt(job_id, token) as attempt:
        try:
            result = work(job.params, attempt)
        except Cancelled:
            return "cancelled"
        except ModelportError as exc:
            return fail(exc)
        except SoftTimeLimitExceeded:
            limit = get_settings().TASK_SOFT_TIME_LIMIT
            return fail(failure(f"the job ran past its time limit of {limit} s and was stopped"))
        except DB_ERRORS as exc:
            log.warning("job %s lost the database mid-run (%s); retrying", job_id, exc)
            # if this fails too, the lease runs out and the retry's claim takes the job then
            with contextlib.suppress(*DB_ERRORS):
                jobs.release(job_id, token)
            raise task.retry(countdown=_db_backoff(task), max_retries=MAX_DB_RETRIES) from None
        except Exception:
            # the exception's text can hold paths and reprs: it goes to the worker's log
            # under the job id, and the answer says where to look
            log.exception("job %s crashed", job_id)
            return fail(failure(
                f"the job failed on an unexpected error in the worker; its log has the "
                f"details under job {job_id}", {"stage": "internal"},
            ))  # fmt: skip
        # still inside the attempt: the lease is renewed while the outcome is being recorded
        recorded = _persist(lambda: jobs.succeed(job_id, token, result, attempt.outcome), job_id)
    # not recorded: another attempt took the job over (its lease ran out meanwhile)
    return "succeeded" if recorded else "superseded"
