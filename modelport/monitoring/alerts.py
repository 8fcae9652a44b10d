"""Alert rules: checks on each deployment sample, with a cooldown so one incident is one alert.

Kinds (threshold meaning; default when a model has no rules of its own):
  p95_latency_ms       p95 latency above this many ms                        (10000)
  latency_vs_baseline  p95 latency above this multiple of the benchmark's     (2.0)
                       latency at the nearest batch size
  throughput_drop_pct  serving capacity (inputs per second of model time)     (50)
                       this many % below the benchmark's throughput
  memory_pct           resident memory above this % of MAX_MEMORY            (90)
  deployment_down      this many consecutive failed scrapes                   (3)

A model with rules of its own uses only those. Stored rules fire through a conditional
UPDATE of last_fired_at; the defaults (no row) through a Redis SET NX with the cooldown as
expiry. Either way two processes never both fire one rule within its cooldown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update

from modelport.core.db import session_scope
from modelport.core.errors import ValidationFailed
from modelport.core.events import publish
from modelport.core.models import AlertRule, Metric, utcnow
from modelport.core.records import add_event
from modelport.core.settings import get_settings
from modelport.monitoring.query import benchmark_filter

log = logging.getLogger(__name__)

WEBHOOK_TASK = "monitoring.webhook"
SEVERITIES = ("info", "warning", "critical")
# kind -> (default threshold, default severity, lowest valid, highest valid)
KINDS: dict[str, tuple[float, str, float, float]] = {
    "p95_latency_ms": (10_000.0, "warning", 0.001, 3_600_000.0),
    "latency_vs_baseline": (2.0, "warning", 1.0, 1000.0),
    "throughput_drop_pct": (50.0, "warning", 1.0, 100.0),
    "memory_pct": (90.0, "warning", 1.0, 100.0),
    "deployment_down": (3.0, "critical", 1.0, 1000.0),
}
DEFAULT_COOLDOWN = 900


@dataclass(frozen=True)
class Rule:
    """A rule to evaluate: a stored AlertRule (id set) or a default (id None)."""

    model_id: str
    kind: str
    threshold: float
    severity: str = "warning"
    cooldown_seconds: int = DEFAULT_COOLDOWN
    id: int | None = None


def model_channel(model_id: str) -> str:
    return f"modelport:model:{model_id}"


# ---------------------------------------------------------------- CRUD support


def list_rules(model_id: str) -> list[AlertRule]:
    with session_scope() as session:
        query = select(AlertRule).where(AlertRule.model_id == model_id).order_by(AlertRule.id)
        return list(session.scalars(query))


def create_rule(
    model_id: str,
    kind: str,
    threshold: float,
    severity: str = "warning",
    cooldown_seconds: int = DEFAULT_COOLDOWN,
) -> AlertRule:
    if kind not in KINDS:
        raise ValidationFailed(f"unknown alert kind {kind!r}; one of {', '.join(KINDS)}")
    low, high = KINDS[kind][2:]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValidationFailed("threshold must be a number", {"field": "threshold"})
    if not math.isfinite(threshold) or not low <= threshold <= high:
        raise ValidationFailed(
            f"threshold for {kind} must be between {low:g} and {high:g}", {"field": "threshold"}
        )
    if severity not in SEVERITIES:
        raise ValidationFailed(f"severity must be one of {', '.join(SEVERITIES)}")
    if isinstance(cooldown_seconds, bool) or not isinstance(cooldown_seconds, int):
        raise ValidationFailed("cooldown_seconds must be an integer", {"field": "cooldown"})
    if not 0 <= cooldown_seconds <= 7 * 86400:
        raise ValidationFailed("cooldown_seconds must be between 0 and 604800")
    rule = AlertRule(
        model_id=model_id,
        kind=kind,
        threshold=float(threshold),
        severity=severity,
        cooldown_seconds=cooldown_seconds,
        enabled=True,
    )
    with session_scope() as session:
        session.add(rule)
    return rule


def delete_rule(rule_id: int) -> bool:
    with session_scope() as session:
        return session.execute(delete(AlertRule).where(AlertRule.id == rule_id)).rowcount > 0


def default_rules(model_id: str) -> list[Rule]:
    return [Rule(model_id, kind, spec[0], spec[1]) for kind, spec in KINDS.items()]


def effective_rules(model_id: str) -> list[Rule]:
    """The model's enabled rules, or the defaults when it has none stored."""
    stored = list_rules(model_id)
    if not stored:
        return default_rules(model_id)
    return [
        Rule(r.model_id, r.kind, r.threshold, r.severity, r.cooldown_seconds, r.id)
        for r in stored
        if r.enabled
    ]


# ---------------------------------------------------------------- evaluation


def baseline(
    model_id: str, batch_size: int, device: str | None = None, level: str | None = None
) -> Metric | None:
    """The latest benchmark row for the model at the batch size nearest `batch_size`, of the
    deployment's device and optimization level when it reports them (none: no baseline)."""
    with session_scope() as session:
        rows = session.scalars(
            select(Metric)
            .where(benchmark_filter(model_id, device, level))
            .order_by(Metric.timestamp.desc(), Metric.id.desc())
            .limit(500)
        ).all()
    latest: dict[int, Metric] = {}
    for row in rows:
        latest.setdefault(row.batch_size, row)
    if not latest:
        return None
    nearest = min(latest, key=lambda b: (abs(b - max(batch_size, 1)), b))
    return latest[nearest]


def check(rule: Rule, sample: dict[str, Any] | None, failures: int, base: Metric | None):
    """The alert message if `rule` is broken by this sample (or failure count), else None."""
    if rule.kind == "deployment_down":
        if failures >= rule.threshold:
            return f"deployment down: {failures} consecutive failed scrapes"
        return None
    if sample is None:
        return None
    busy = sample.get("requests", 0) > 0
    p95 = sample.get("p95_latency") or sample["latency"]
    if rule.kind == "p95_latency_ms" and busy and p95 > rule.threshold:
        return f"p95 latency {p95:.1f} ms is above {rule.threshold:g} ms"
    if (
        rule.kind == "latency_vs_baseline"
        and busy
        and base is not None
        and base.latency > 0
        and p95 > rule.threshold * base.latency
    ):
        return (
            f"p95 latency {p95:.1f} ms is {p95 / base.latency:.1f}x the benchmark's "
            f"{base.latency:.1f} ms at batch size {base.batch_size} "
            f"(threshold {rule.threshold:g}x)"
        )
    if rule.kind == "throughput_drop_pct" and base is not None and base.throughput > 0:
        capacity = sample.get("capacity")
        floor = base.throughput * (1 - rule.threshold / 100)
        if capacity is not None and capacity < floor:
            drop = 100 * (1 - capacity / base.throughput)
            return (
                f"throughput {capacity:.1f}/s while busy is {drop:.0f}% below the benchmark's "
                f"{base.throughput:.1f}/s at batch size {base.batch_size}"
            )
    if rule.kind == "memory_pct":
        limit_mb = get_settings().max_memory_bytes / 2**20
        used = 100 * sample["memory_mb"] / limit_mb
        if used > rule.threshold:
            return (
                f"memory {sample['memory_mb']:.0f} MB is {used:.0f}% of MAX_MEMORY "
                f"({limit_mb:.0f} MB; threshold {rule.threshold:g}%)"
            )
    return None


def evaluate(
    model_id: str,
    sample: dict[str, Any] | None,
    *,
    failures: int = 0,
    deployment: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, str]]:
    """Check every effective rule; fire those broken and out of cooldown. The alerts fired."""
    now = now or utcnow()
    rules = effective_rules(model_id)
    needs_base = sample is not None and any(
        r.kind in ("latency_vs_baseline", "throughput_drop_pct") for r in rules
    )
    base = None
    if needs_base and sample:
        base = baseline(
            model_id,
            sample.get("batch_size", 1),
            sample.get("device"),
            sample.get("optimization_level"),
        )
    fired = []
    for rule in rules:
        message = check(rule, sample, failures, base)
        if message is None:
            continue
        if deployment:
            message = f"{deployment}: {message}"
        if claim(rule, now):
            fired.append(fire(rule, message, now))
    return fired


def claim(rule: Rule, now: datetime) -> bool:
    """Take the right to fire `rule` now: at most one process wins per cooldown."""
    if rule.id is None:
        from modelport.core.redis_client import get_redis

        key = f"modelport:alert-cooldown:{rule.model_id}:{rule.kind}"
        try:
            return bool(
                get_redis().set(key, now.isoformat(), nx=True, ex=max(rule.cooldown_seconds, 1))
            )
        except Exception as exc:  # alerts are not dropped because the cooldown store is down
            log.warning("alert cooldown store unavailable (%s); firing %s", exc, rule.kind)
            return True
    cutoff = now - timedelta(seconds=rule.cooldown_seconds)
    with session_scope() as session:
        result = session.execute(
            update(AlertRule)
            .where(
                AlertRule.id == rule.id,
                or_(AlertRule.last_fired_at.is_(None), AlertRule.last_fired_at <= cutoff),
            )
            .values(last_fired_at=now)
        )
        return result.rowcount == 1


def fire(rule: Rule, message: str, now: datetime) -> dict[str, str]:
    """An events row, the SPEC `alert` event, and the webhook task when one is configured."""
    alert = {
        "modelId": rule.model_id,
        "type": rule.kind,
        "message": message,
        "severity": rule.severity,
    }
    add_event(rule.model_id, rule.kind, message, rule.severity)
    publish(model_channel(rule.model_id), "alert", alert)
    if get_settings().ALERT_WEBHOOK_URL:
        from modelport.core.celery_app import get_celery

        payload = {**alert, "timestamp": now.isoformat()}
        try:
            get_celery().send_task(
                WEBHOOK_TASK, args=[payload], queue=get_settings().ALERT_WEBHOOK_QUEUE
            )
        except Exception as exc:  # the events row and the realtime alert already went
            log.error("could not enqueue the alert webhook: %s", exc)
    log.info("alert %s for %s: %s", rule.kind, rule.model_id, message)
    return alert
