"""jobs.reconcile: beat's safety net for lost messages and dead attempts."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from modelport.core import jobs
from modelport.core.celery_app import RECONCILE_TASK
from modelport.core.periodic import run_periodic
from modelport.core.settings import get_settings


@shared_task(name=RECONCILE_TASK, ignore_result=True, acks_late=False)
def reconcile(periodic: bool = False) -> dict[str, Any]:
    """Beat's sends (periodic=True) run at most once per RECONCILE_INTERVAL slot."""
    interval = get_settings().RECONCILE_INTERVAL
    return run_periodic(RECONCILE_TASK, interval, periodic, jobs.reconcile)


@shared_task(name="jobs.ping")
def ping() -> str:
    """A no-op round trip: health checks and the Celery baseline in bench/generate.py."""
    return "pong"
