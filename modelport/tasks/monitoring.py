"""Monitoring tasks: beat's sampling and retention, and the alert webhook with retries."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from modelport.core.periodic import run_periodic
from modelport.core.settings import get_settings
from modelport.monitoring import retention, sampler, webhook

SAMPLE_TASK = "monitoring.sample"
RETENTION_TASK = "monitoring.retention"


@shared_task(name=SAMPLE_TASK, acks_late=False)
def sample(periodic: bool = False) -> dict[str, Any]:
    """Beat's sends (periodic=True) run at most once per SAMPLE_INTERVAL_SECONDS slot."""
    interval = get_settings().SAMPLE_INTERVAL_SECONDS
    return run_periodic(SAMPLE_TASK, interval, periodic, sampler.sample_due)


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
