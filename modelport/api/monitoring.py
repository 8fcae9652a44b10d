"""Monitoring routes: deployments, alert rules, and SPEC's POST /api/monitor."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid

import redis
from flask import Blueprint, current_app, jsonify, request

from modelport.api.common import parse_body
from modelport.core.db import session_scope
from modelport.core.errors import BadRequest, NotFound
from modelport.core.modelref import parse_model_url
from modelport.core.models import Deployment, Model, utcnow
from modelport.core.redis_client import get_redis
from modelport.core.schemas import AlertRuleCreate, DeploymentCreate, MonitorRequest, fingerprint

bp = Blueprint("monitoring", __name__, url_prefix="/api")
log = logging.getLogger(__name__)
MONITOR_CACHE_TTL = 30  # seconds: the statistics are cached briefly, samples arrive per minute


@bp.post("/monitor")
def monitor():
    from modelport.monitoring.report import monitor_report

    req = parse_body(MonitorRequest)
    model_id = parse_model_url(req.modelId).repo_id
    key = f"monitor:{model_id}:" + fingerprint({"days": req.days, "metrics": req.metrics})
    # the cache only saves work: with Redis down the answer comes from the database
    try:
        cached = get_redis().get(key)
    except redis.RedisError as exc:
        log.warning("monitor cache unavailable: %s", exc)
        cached = None
    if cached:
        return current_app.response_class(cached, mimetype="application/json")
    body = json.dumps(monitor_report(model_id, req.days, req.metrics))
    with contextlib.suppress(redis.RedisError):
        get_redis().set(key, body, ex=MONITOR_CACHE_TTL)
    return current_app.response_class(body, mimetype="application/json")


def _deployment(row: Deployment) -> dict:
    def ts(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": row.id,
        "modelId": row.model_id,
        "url": row.url,
        "name": row.name,
        "labels": row.labels or {},
        "active": row.active,
        "status": row.status,
        "consecutiveFailures": row.consecutive_failures,
        "createdAt": ts(row.created_at),
        "lastSampledAt": ts(row.last_sampled_at),
        "links": {"self": f"/api/deployments/{row.id}"},
    }


@bp.post("/deployments")
def create_deployment():
    from modelport.monitoring.urls import check_deployment_url

    req = parse_body(DeploymentCreate)
    model_id = parse_model_url(req.modelId).repo_id
    settings = current_app.config["MODELPORT"]
    url = check_deployment_url(req.url, settings.DEPLOYMENT_ALLOWED_HOSTS)
    with session_scope() as session:
        if session.get(Model, model_id) is None:
            session.add(Model(id=model_id, created_at=utcnow(), updated_at=utcnow()))
            session.flush()
        row = Deployment(
            id=str(uuid.uuid4()),
            model_id=model_id,
            url=url,
            name=req.name,
            labels=req.labels,
            active=True,
            status="pending",
            consecutive_failures=0,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        body = _deployment(row)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = body["links"]["self"]
    return response


@bp.get("/deployments")
def list_deployments():
    model = request.args.get("modelId")
    with session_scope() as session:
        query = session.query(Deployment).order_by(Deployment.created_at.desc())
        if model:
            query = query.filter(Deployment.model_id == model[:300])
        rows = [_deployment(r) for r in query.limit(500)]
    return jsonify({"deployments": rows, "total": len(rows)})


def _load_deployment(session, deployment_id: str) -> Deployment:
    row = session.get(Deployment, deployment_id[:64])
    if row is None:
        raise NotFound(f"no deployment with id {deployment_id[:64]!r}")
    return row


@bp.get("/deployments/<deployment_id>")
def get_deployment(deployment_id: str):
    with session_scope() as session:
        return jsonify(_deployment(_load_deployment(session, deployment_id)))


@bp.delete("/deployments/<deployment_id>")
def delete_deployment(deployment_id: str):
    with session_scope() as session:
        session.delete(_load_deployment(session, deployment_id))
    return "", 204


def _rule(rule) -> dict:
    return {
        "id": rule.id,
        "modelId": rule.model_id,
        "kind": rule.kind,
        "threshold": rule.threshold,
        "severity": rule.severity,
        "cooldownSeconds": rule.cooldown_seconds,
        "default": rule.id is None,  # a built-in default (the model has no rules of its own)
    }


@bp.get("/alerts")
def list_alert_rules():
    from modelport.monitoring.alerts import effective_rules

    model = request.args.get("modelId")
    if not model:
        raise BadRequest("give the model: /api/alerts?modelId=<org/name>")
    model_id = parse_model_url(model).repo_id
    return jsonify({"modelId": model_id, "rules": [_rule(r) for r in effective_rules(model_id)]})


@bp.post("/alerts")
def create_alert_rule():
    from modelport.monitoring.alerts import create_rule

    req = parse_body(AlertRuleCreate)
    model_id = parse_model_url(req.modelId).repo_id
    with session_scope() as session:
        if session.get(Model, model_id) is None:
            raise NotFound(f"no model {model_id!r}: register a deployment or benchmark it first")
    rule = create_rule(
        model_id,
        req.kind,
        req.threshold,
        severity=req.severity,
        cooldown_seconds=req.cooldownSeconds,
    )
    response = jsonify(_rule(rule))
    response.status_code = 201
    return response


@bp.delete("/alerts/<int:rule_id>")
def delete_alert_rule(rule_id: int):
    from modelport.monitoring.alerts import delete_rule

    if not 0 < rule_id < 2**63 or not delete_rule(rule_id):
        raise NotFound(f"no alert rule with id {rule_id}")
    return "", 204
