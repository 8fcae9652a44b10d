"""Monitoring tasks: beat's sampling and retention, and the alert webhook with retries."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from modelport.core.periodic import run_periodic
from modelport.core.settings import get_settings
from modelport.monitoring import retention, sampler, webhook

SAMPLE_TASK = "monitoring.sample"
RETENTION_TASK = "monitoring.retention"


SAMPLE_WAIT_FRACTION = 0.8  # of the interval: how long beat's run waits for slow scrapes


@shared_task(name=SAMPLE_TASK, acks_late=False)
def sample(periodic: bool = False) -> dict[str, Any]:
    """Beat's sends (periodic=True) run at most once per SAMPLE_INTERVAL_SECONDS slot, and
    return within most of the interval (scrapes still running then finish in the background),
    so one slow deployment never holds the worker into the next slot. Other sends wait for
    every scrape."""
    interval = get_settings().SAMPLE_INTERVAL_SECONDS
    wait_s = interval * SAMPLE_WAIT_FRACTION if periodic else None
    return run_periodic(SAMPLE_TASK, interval, periodic, lambda: sampler.sample_due(wait_s=wait_s))


@shared_task(name=RETENTION_TASK, acks_late=False)
def purge(periodic: bool = False) -> dict[str, Any]:
    """Beat's sends (periodic=True) run at most once per RETENTION_INTERVAL_SECONDS slot."""
    interval = get_settings().RETENTION_INTERVAL_SECONDS
    return run_periodic(RETENTION_TASK, interval, periodic, retention.purge)


@shared_task(
    name="monitoring.webhook",
    autoretry_for=(webhook.WebhookRetryable,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def post_webhook(payload: dict[str, Any]) -> int:
    return webhook.deliver(payload)
