"""Alerts: rules and defaults, cooldown, the `alert` event on Redis, the signed webhook."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelport.core.errors import ValidationFailed

pytestmark = pytest.mark.usefixtures("platform_env")


class Receiver:
    """A webhook receiver on loopback that records what it got and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"got {len(self.received)} posts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def new_model() -> str:
    from modelport.core.db import session_scope
    from modelport.core.models import Model

    model_id = f"monitor/alerts-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        session.add(Model(id=model_id, pipeline_type="text-classification"))
    return model_id


def events(model_id: str) -> list:
    from sqlalchemy import select

    from modelport.core.db import session_scope
    from modelport.core.models import Event

    with session_scope() as session:
        query = select(Event).where(Event.model_id == model_id).order_by(Event.id)
        return list(session.scalars(query))


def sample(**overrides) -> dict:
    row = {
        "batch_size": 4, "throughput": 20.0, "latency": 50.0, "memory_mb": 300.0,
        "gpu_memory_mb": None, "cost_per_inference": 1e-6, "p95_latency": 80.0,
        "requests": 100, "errors": 0, "capacity": 100.0,
    }  # fmt: skip
    return {**row, **overrides}


def test_rule_crud_and_validation():
    from modelport.monitoring import alerts

    model_id = new_model()
    kinds = {r.kind: r.threshold for r in alerts.effective_rules(model_id)}
    assert kinds == {
        "p95_latency_ms": 10000.0,
        "latency_vs_baseline": 2.0,
        "throughput_drop_pct": 50.0,
        "memory_pct": 90.0,
        "deployment_down": 3.0,
    }
    with pytest.raises(ValidationFailed, match="unknown alert kind"):
        alerts.create_rule(model_id, "nope", 1)
    with pytest.raises(ValidationFailed, match="between"):
        alerts.create_rule(model_id, "memory_pct", 150)
    with pytest.raises(ValidationFailed, match="number"):
        alerts.create_rule(model_id, "memory_pct", "90")
    with pytest.raises(ValidationFailed, match="severity"):
        alerts.create_rule(model_id, "memory_pct", 90, severity="loud")
    rule = alerts.create_rule(model_id, "p95_latency_ms", 500, severity="critical")
    assert [r.id for r in alerts.list_rules(model_id)] == [rule.id]
    assert [(r.kind, r.id) for r in alerts.effective_rules(model_id)] == [
        ("p95_latency_ms", rule.id)
    ]
    assert alerts.delete_rule(rule.id) is True
    assert alerts.delete_rule(rule.id) is False
    assert len(alerts.effective_rules(model_id)) == len(alerts.KINDS)


def test_alert_fires_once_within_cooldown_and_is_published():
    from modelport.core.models import utcnow
    from modelport.core.redis_client import get_redis
    from modelport.monitoring import alerts

    model_id = new_model()
    rule = alerts.create_rule(model_id, "p95_latency_ms", 100, cooldown_seconds=600)
    pubsub = get_redis().pubsub()
    pubsub.subscribe(alerts.model_channel(model_id))
    pubsub.get_message(timeout=1)  # the subscribe confirmation

    now = utcnow()
    assert alerts.evaluate(model_id, sample(p95_latency=80.0), now=now) == []
    fired = alerts.evaluate(model_id, sample(p95_latency=250.0), deployment="prod", now=now)
    assert len(fired) == 1
    # within the cooldown: broken again, but silent
    later = now + timedelta(seconds=60)
    assert alerts.evaluate(model_id, sample(p95_latency=400.0), now=later) == []
    rows = [e for e in events(model_id) if e.event_type == "p95_latency_ms"]
    assert len(rows) == 1 and rows[0].severity == "warning"
    assert "250.0 ms" in rows[0].description and "prod" in rows[0].description

    message = pubsub.get_message(timeout=5)
    assert message and message["type"] == "message"
    event = json.loads(message["data"])
    assert event["event"] == "alert"
    assert set(event["data"]) == {"modelId", "type", "message", "severity"}
    assert event["data"]["modelId"] == model_id and event["data"]["type"] == "p95_latency_ms"
    pubsub.close()

    # after the cooldown it fires again
    assert len(alerts.evaluate(model_id, sample(p95_latency=400.0), now=now + timedelta(hours=1)))
    assert alerts.list_rules(model_id)[0].id == rule.id


def test_concurrent_evaluations_fire_one_alert():
    from concurrent.futures import ThreadPoolExecutor

    from modelport.core.models import utcnow
    from modelport.monitoring import alerts

    model_id = new_model()
    alerts.create_rule(model_id, "memory_pct", 1)
    now = utcnow()
    with ThreadPoolExecutor(8) as pool:
        fired = list(pool.map(lambda _: alerts.evaluate(model_id, sample(), now=now), range(8)))
    assert sum(len(f) for f in fired) == 1


def test_defaults_use_the_benchmark_baseline():
    from modelport.core.records import add_metrics
    from modelport.monitoring import alerts

    model_id = new_model()
    bench = [
        {"batch_size": b, "throughput": t, "latency": lat, "memory_mb": 200.0,
         "cost_per_inference": 1e-6}
        for b, t, lat in ((1, 50.0, 20.0), (8, 200.0, 40.0))
    ]  # fmt: skip
    add_metrics(model_id, bench, source="benchmark", job_id=str(uuid.uuid4()))
    base = alerts.baseline(model_id, 6)
    assert base is not None and base.batch_size == 8
    # p95 100 ms vs 40 ms at batch 8 (2.5x > 2x); capacity 60/s is 70% below 200/s
    fired = alerts.evaluate(model_id, sample(batch_size=6, p95_latency=100.0, capacity=60.0))
    assert sorted(a["type"] for a in fired) == ["latency_vs_baseline", "throughput_drop_pct"]
    assert "2.5x" in fired[0]["message"] or "2.5x" in fired[1]["message"]
    # a model without a benchmark: only the absolute rules apply
    other = new_model()
    assert alerts.evaluate(other, sample(p95_latency=100.0, capacity=1.0)) == []


def test_deployment_down_after_n_failures():
    from modelport.monitoring import alerts

    model_id = new_model()
    assert alerts.evaluate(model_id, None, failures=2) == []
    fired = alerts.evaluate(model_id, None, failures=3, deployment="edge-1")
    assert [(a["type"], a["severity"]) for a in fired] == [("deployment_down", "critical")]
    assert alerts.evaluate(model_id, None, failures=4) == []  # cooldown


def test_webhook_signature_and_retry_classes(platform_env):
    from modelport.core.settings import get_settings
    from modelport.monitoring import webhook

    receiver = Receiver()
    try:
        payload = {"modelId": "m", "type": "memory_pct", "message": "x", "severity": "warning"}
        assert webhook.deliver(payload, url=receiver.url) == 200
        headers, body = receiver.received[0]
        assert json.loads(body) == payload
        assert webhook.verify(body, headers["X-Modelport-Signature"], get_settings().SECRET_KEY)
        assert not webhook.verify(body + b" ", headers["X-Modelport-Signature"], "other")
        assert int(headers["X-Modelport-Timestamp"]) > 0
        receiver.status = 503
        with pytest.raises(webhook.WebhookRetryable):
            webhook.deliver(payload, url=receiver.url)
        receiver.status = 400
        with pytest.raises(webhook.WebhookRejected):
            webhook.deliver(payload, url=receiver.url)
    finally:
        receiver.close()
    with pytest.raises(webhook.WebhookRetryable):
        webhook.deliver(payload, url=receiver.url)  # nothing listens any more


def test_alerts_compare_with_a_benchmark_of_the_deployed_configuration():
    from modelport.core.records import add_metrics
    from modelport.monitoring import alerts

    model_id = new_model()
    row = {"batch_size": 8, "throughput": 5000.0, "latency": 2.0, "memory_mb": 200.0,
           "cost_per_inference": 1e-7}  # fmt: skip
    add_metrics(model_id, [row], source="benchmark", device="cuda", optimization_level="standard")
    cpu = sample(batch_size=8, p95_latency=60.0, capacity=150.0, device="cpu",
                 optimization_level="standard")  # fmt: skip
    # a GPU figure would make a healthy CPU deployment look 30x slow: no baseline, no alert
    assert alerts.baseline(model_id, 8, "cpu", "standard") is None
    assert alerts.evaluate(model_id, cpu) == []
    slow = {**row, "throughput": 200.0, "latency": 20.0}
    add_metrics(model_id, [slow], source="benchmark", device="cpu", optimization_level="standard")
    assert alerts.baseline(model_id, 8, "cpu", "standard").throughput == 200.0
    fired = alerts.evaluate(model_id, cpu)  # p95 60 ms is 3x the matching 20 ms
    assert [a["type"] for a in fired] == ["latency_vs_baseline"]
