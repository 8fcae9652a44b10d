"""What every job task does around its one call: claim, lease, progress, result."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from modelport.core import jobs
from modelport.core.errors import ModelportError
from modelport.core.settings import get_settings

log = logging.getLogger(__name__)

# How often a busy job's redelivered message may come back before it gives up.
MAX_BUSY_RETRIES = 100


class Cancelled(Exception):
    """The job was cancelled (or taken over) while this attempt ran."""


class Attempt:
    """One claimed attempt: renews the lease in the background and reports progress."""

    def __init__(self, job_id: str, token: str):
        self.job_id = job_id
        self.token = token
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
        if self.lost.is_set() or not jobs.report_progress(self.job_id, self.token, fraction, stage):
            raise Cancelled(self.job_id)


def run_job(
    task: Task,
    job_id: str,
    work: Callable[[dict[str, Any], Attempt], dict[str, Any]],
    failure: type[ModelportError],
) -> str:
    """Claim `job_id`, run `work(params, attempt)`, record the outcome. Returns the outcome."""
    claim = jobs.claim(job_id)
    if claim.outcome == "busy":
        # Another attempt holds a live lease (or its worker just died): look again later.
        raise task.retry(countdown=claim.retry_in, max_retries=MAX_BUSY_RETRIES)
    if claim.outcome != "claimed":
        log.info("job %s not run: %s", job_id, claim.outcome)
        return claim.outcome
    job = claim.job
    try:
        with Attempt(job_id, claim.token) as attempt:
            result = work(job.params, attempt)
    except Cancelled:
        return "cancelled"
    except ModelportError as exc:
        jobs.fail(job_id, claim.token, exc.to_dict()["error"])
        return "failed"
    except SoftTimeLimitExceeded:
        limit = get_settings().TASK_SOFT_TIME_LIMIT
        err = failure(f"the job ran past its time limit of {limit} s and was stopped")
        jobs.fail(job_id, claim.token, err.to_dict()["error"])
        return "failed"
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        err = failure(f"{type(exc).__name__}: {exc}"[:500], {"stage": "internal"})
        jobs.fail(job_id, claim.token, err.to_dict()["error"])
        return "failed"
    jobs.succeed(job_id, claim.token, result)
    return "succeeded"
