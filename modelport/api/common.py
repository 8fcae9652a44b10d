"""Shared route helpers: JSON parsing into request models, waiting for a job."""

from __future__ import annotations

import json
import logging
import time
from typing import TypeVar

import redis
from flask import current_app, g, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from modelport.core import events
from modelport.core import jobs as core_jobs
from modelport.core.db import session_scope
from modelport.core.errors import BadRequest, ValidationFailed
from modelport.core.models import FINAL_STATUSES, Job
from modelport.core.redis_client import get_redis
from modelport.core.schemas import pydantic_details

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_JSON_DEPTH = 20


def parse_body(model: type[M]) -> M:
    if not request.is_json:
        raise BadRequest("send a JSON body with 'Content-Type: application/json'")
    raw = request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # a chunked body is read up to the limit and cut there (the server terminates the
        # stream, werkzeug stops at the limit): refuse it rather than parse a truncated body
        raise RequestEntityTooLarge()
    try:
        data = loads_strict(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc)
        first = details["fields"][0]
        raise ValidationFailed(
            f"invalid request: {first['field']}: {first['problem']}", details
        ) from None


def loads_strict(raw: str | bytes) -> object:
    """JSON as RFC 8259 has it: no NaN or Infinity (Python's json accepts and would echo
    them, which no other parser reads), nested at most MAX_JSON_DEPTH levels; ValueError
    saying what is wrong otherwise (deep nesting included, never a RecursionError)."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON: send a number or null")


def _depth(value, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def wait_seconds() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest("wait must be a number of seconds, e.g. ?wait=30") from None
    if not 0 <= value < float("inf"):
        raise BadRequest("wait must be a non-negative number of seconds")
    return min(value, current_app.config["MODELPORT"].MAX_WAIT_SECONDS)


def wait_for_job(job_id: str, seconds: float) -> Job:
    """Block up to `seconds` for the job to finish (Redis pub/sub), then read its row."""
    deadline = time.monotonic() + seconds
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(events.job_channel(job_id))
        while True:
            with session_scope() as session:
                job = session.get(Job, job_id)
                if job is None or job.status in FINAL_STATUSES:
                    return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return job
            pubsub.get_message(timeout=min(remaining, 1.0))  # any event: look again
    finally:
        pubsub.close()


def submit_job(*, kind: str, task_name: str, queue: str, params: dict, model_id: str,
               cache_key: str | None):  # fmt: skip
    """Record the job, commit, then enqueue it by task name; answer as `job_response` does.
    `?wait` is checked first: a bad one is a 400 with nothing written or queued."""
    wait = wait_seconds()
    with session_scope() as session:
        job_id = core_jobs.new_job(
            session,
            kind=kind,
            task_name=task_name,
            queue=queue,
            params=params,
            model_id=model_id,
            cache_key=cache_key,
            api_key_id=g.get("api_key_id"),
        ).id
    core_jobs.enqueue(job_id, task_name, queue)
    return job_response(job_id, wait)


def job_response(job_id: str, wait: float):
    """200 with the SPEC result when done within `wait`, else 202 pointing at the job.

    The job row is already committed: if Redis fails while waiting, the answer is still the
    202 with the job's id (the reconciler sends a message that could not be sent)."""
    job = None
    if wait > 0:
        try:
            job = wait_for_job(job_id, wait)
        except redis.RedisError as exc:
            log.warning("cannot wait for job %s, answering 202: %s", job_id, exc)
    if job is None:
        with session_scope() as session:
            job = session.get(Job, job_id)
    if job.status == "succeeded":
        return jsonify(job.result), 200
    if job.status == "failed":
        body = {"error": job.error, "jobId": job.id}
        response = jsonify(body)
        # The model or options could not be used (4xx) vs. our own failure (5xx).
        response.status_code = 422 if job.error.get("code") in (1001, 1003) else 500
        return response
    body = core_jobs.to_dict(job)
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response
