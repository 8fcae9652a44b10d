"""Posting an alert to ALERT_WEBHOOK_URL, signed so the receiver can trust it.

Headers: `X-Modelport-Signature: sha256=<hex HMAC-SHA256 of the exact body with SECRET_KEY>`
and `X-Modelport-Timestamp` (Unix seconds; the body's `timestamp` is covered by the HMAC).
Connection errors, timeouts, 429 and 5xx are worth retrying; other answers are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests

from modelport.core.settings import get_settings

SIGNATURE_HEADER = "X-Modelport-Signature"
TIMESTAMP_HEADER = "X-Modelport-Timestamp"


class WebhookRetryable(Exception):
    """The receiver may accept it later."""


class WebhookRejected(Exception):
    """The receiver refused it; retrying would not help."""


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature or "")


def deliver(payload: dict[str, Any], url: str | None = None) -> int:
    """POST `payload` as JSON; the HTTP status, or WebhookRetryable / WebhookRejected."""
    settings = get_settings()
    url = url or settings.ALERT_WEBHOOK_URL
    if not url:
        raise WebhookRejected("ALERT_WEBHOOK_URL is not set")
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "modelport-alerts",
        SIGNATURE_HEADER: sign(body, settings.SECRET_KEY),
        TIMESTAMP_HEADER: str(int(time.time())),
    }
    try:
        response = requests.post(
            url,
            data=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise WebhookRetryable(f"cannot reach the webhook: {exc}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise WebhookRetryable(f"the webhook answered HTTP {response.status_code}")
    if not 200 <= response.status_code < 300:
        raise WebhookRejected(f"the webhook answered HTTP {response.status_code}")
    return response.status_code
