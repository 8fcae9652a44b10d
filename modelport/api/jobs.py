"""GET/DELETE /api/jobs: polling, listing and cancelling jobs."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy import func, select

from modelport.api.common import wait_for_job, wait_seconds
from modelport.core import jobs
from modelport.core.db import session_scope
from modelport.core.errors import BadRequest, Conflict, NotFound
from modelport.core.models import JOB_STATUSES, Job

bp = Blueprint("jobs", __name__, url_prefix="/api")

MAX_PAGE_SIZE = 100
JOB_KINDS = ("generate", "benchmark")


def _load(job_id: str) -> Job:
    if len(job_id) > 64:
        raise NotFound("no such job")
    with session_scope() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", {"jobId": job_id[:64]})
    return job


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    job = _load(job_id)
    wait = wait_seconds()
    if wait > 0:
        job = wait_for_job(job_id, wait)
    return jsonify(jobs.to_dict(job))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str):
    job = _load(job_id)
    if not jobs.cancel(job_id):
        raise Conflict(f"job {job_id} already ended as {job.status}", {"status": job.status})
    return jsonify(jobs.to_dict(_load(job_id)))


@bp.get("/jobs")
def list_jobs():
    status = request.args.get("status")
    kind = request.args.get("kind")
    model = request.args.get("modelId")
    if status and status not in JOB_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(JOB_STATUSES)}")
    if kind and kind not in JOB_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(JOB_KINDS)}")
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("perPage", 20, 1, MAX_PAGE_SIZE)

    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if model:
        query = query.where(Job.model_id == model[:300])
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(
            query.order_by(Job.created_at.desc(), Job.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    return jsonify(
        {
            "jobs": [_summary(job) for job in rows],
            "page": page,
            "perPage": per_page,
            "total": total,
        }
    )


def _summary(job: Job) -> dict:
    body = jobs.to_dict(job)
    body.pop("result", None)
    return body


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value
