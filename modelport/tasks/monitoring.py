"""Monitoring tasks: beat's sampling and retention, and the alert webhook with retries."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from modelport.monitoring import retention, sampler, webhook


@shared_task(name="monitoring.sample", acks_late=False)
def sample() -> dict[str, int]:
    return sampler.sample_due()


@shared_task(name="monitoring.retention", acks_late=False)
def purge() -> dict[str, int]:
    return retention.purge()


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
