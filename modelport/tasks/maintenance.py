"""jobs.reconcile: beat's safety net for lost messages and dead attempts."""

from __future__ import annotations

from celery import shared_task

from modelport.core import jobs
from modelport.core.celery_app import RECONCILE_TASK


@shared_task(name=RECONCILE_TASK, ignore_result=True, acks_late=False)
def reconcile() -> dict[str, int]:
    return jobs.reconcile()


@shared_task(name="jobs.ping")
def ping() -> str:
    """A no-op round trip: health checks and the Celery baseline in bench/generate.py."""
    return "pong"
