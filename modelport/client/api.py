"""A small REST client for the modelport API (requests only, no platform imports)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import requests

DEFAULT_URL = "http://localhost:5000"
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class ApiError(Exception):
    """The API answered with SPEC's error body (or something unexpected)."""

    def __init__(self, status: int, code: int | None, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"error {self.code}: {self.message}" if self.code else f"error: {self.message}"


class Unreachable(Exception):
    """No answer from the API (connection refused, DNS, timeout)."""


class Client:
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30):
        self.url = (url or os.environ.get("MODELPORT_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or os.environ.get("MODELPORT_API_KEY")
        self.timeout = timeout
        self.session = requests.Session()
        if self.api_key:
            self.session.headers["Authorization"] = f"Bearer {self.api_key}"

    def request(
        self, method: str, path: str, *, wait: float = 0, **kwargs
    ) -> tuple[int, dict, Any]:
        """Send one request; return (status, headers, JSON body) or raise ApiError/Unreachable."""
        try:
            resp = self.session.request(
                method, self.url + path, timeout=(5, self.timeout + wait), **kwargs
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach the API at {self.url}: {type(exc).__name__}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                raise ApiError(
                    resp.status_code, error.get("code"), error.get("message", ""),
                    error.get("details"),
                )  # fmt: skip
            raise ApiError(resp.status_code, None, f"HTTP {resp.status_code} from {path}")
        return resp.status_code, dict(resp.headers), body

    def get(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs)[2]

    def submit(self, path: str, body: dict) -> tuple[dict | None, str | None]:
        """POST a job; (result, None) when answered at once (cached), else (None, job path)."""
        status, headers, data = self.request("POST", path, json=body)
        if status == 202:
            return None, headers.get("Location") or data["links"]["self"]
        return data, None

    def wait_job(
        self, location: str, on_update: Callable[[dict], None] | None = None, wait: float = 5
    ) -> dict:
        """Long-poll a job (?wait=N) until it ends; on_update sees every answer."""
        while True:
            job = self.get(f"{location}?wait={wait:g}", wait=wait)
            if on_update:
                on_update(job)
            if job["status"] in FINAL_STATUSES:
                return job
            time.sleep(0.2)  # the server already waited; only guards against a busy loop
