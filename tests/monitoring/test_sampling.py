"""Sampling deployments: a real generated run_inference.py server on loopback, a garbage
server, an unreachable one, and the URL policy; once through a real worker with an alert
reaching a local webhook receiver."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelport.core.errors import ValidationFailed
from modelport.core.settings import get_settings
from tests.monitoring.test_alerts import Receiver, events, new_model
from tests.packaging.bundle_servers import BundleServer, facts_for, write_bundle

pytestmark = pytest.mark.usefixtures("platform_env")


@pytest.fixture(scope="module")
def served(platform_env, tiny_models, tmp_path_factory):
    from modelport.packaging.options import GenerateOptions

    model = tiny_models["text-classification"]
    script = write_bundle(tmp_path_factory.mktemp("bundle"), facts_for(model), GenerateOptions())
    server = BundleServer(script)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture()
def loopback_allowed(monkeypatch):
    from modelport.core.settings import reset_settings

    monkeypatch.setenv("DEPLOYMENT_ALLOWED_HOSTS", "127.0.0.1")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


class Fake:
    """A local HTTP server answering GET /metrics with `status`, `body`, `headers`."""

    def __init__(self, status=200, body=b"", headers=None):
        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def register(model_id: str, url: str, name: str | None = None) -> str:
    from modelport.core.db import session_scope
    from modelport.core.models import Deployment

    deployment_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(Deployment(id=deployment_id, model_id=model_id, url=url, name=name))
    return deployment_id


def deployment(deployment_id: str):
    from modelport.core.db import session_scope
    from modelport.core.models import Deployment

    with session_scope() as session:
        return session.get(Deployment, deployment_id)


def rows(model_id: str) -> list:
    from sqlalchemy import select

    from modelport.core.db import session_scope
    from modelport.core.models import Metric

    with session_scope() as session:
        query = select(Metric).where(Metric.model_id == model_id).order_by(Metric.id)
        return list(session.scalars(query))


def traffic(server: BundleServer, n: int) -> None:
    for i in range(n):
        assert server.post("/predict", {"inputs": f"sentence {i}"}).status_code == 200


def deactivate_all() -> None:
    """Other tests' deployments must not slow these down."""
    from sqlalchemy import update

    from modelport.core.db import session_scope
    from modelport.core.models import Deployment

    with session_scope() as session:
        session.execute(update(Deployment).values(active=False))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- URL policy


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://10.1.2.3",
        "http://192.168.0.1",
        "http://169.254.169.254/latest",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
        "http://2130706433",  # 127.0.0.1 as one number
        "http://example.com@127.0.0.1",
        "http://user:pw@example.com",
        "http://example.com\\@127.0.0.1",
        "ftp://example.com",
        "file:///etc/passwd",
        "http://",
        "http://example.com/?q=1",
        "http://no-such-host.invalid",
        # IPv6 forms that carry a refused IPv4 address
        "http://[::7f00:1]",  # IPv4-compatible 127.0.0.1
        "http://[64:ff9b::7f00:1]",  # NAT64 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]",  # NAT64 169.254.169.254
        "http://[2002:7f00:1::]",  # 6to4 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
        "http://[64:ff9b:1::808:808]",  # a network's own NAT64 (RFC 8215)
        # malformed: these were 500s
        "http://[8.8.8.8]",
        "http://[::1",
        "http://[::1]x/",
    ],
)
def test_refused_urls(url):
    from modelport.monitoring.urls import check_deployment_url

    with pytest.raises(ValidationFailed) as refused:
        check_deployment_url(url, [])
    assert "Traceback" not in refused.value.message


def test_an_embedded_public_ipv4_is_public():
    """NAT64 of a public address is as public as the address: not refused."""
    from modelport.monitoring.urls import check_deployment_url, embedded_ipv4

    assert (
        check_deployment_url("http://[64:ff9b::808:808]:81", []) == "http://[64:ff9b::808:808]:81"
    )
    import ipaddress

    assert str(embedded_ipv4(ipaddress.IPv6Address("::7f00:1"))) == "127.0.0.1"
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None


def test_a_scrape_connects_to_the_address_it_checked(monkeypatch):
    """DNS rebinding: the name resolves to an allowed address for the check and to another
    for the connection. The scrape resolves once and connects to what it checked, with the
    name in the Host header; a second lookup never happens."""
    import http.server
    import socket
    import threading

    from modelport.monitoring import scrape

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers["Host"])
            body = b"modelport_up 1\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        lookups.append(host)  # first answer allowed, every later one elsewhere
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        text = scrape.fetch(f"http://rebind.test:{port}", ["127.0.0.1"], timeout=10)
    finally:
        server.shutdown()
    assert text == "modelport_up 1\n"
    assert lookups == ["rebind.test"]
    assert seen == [f"rebind.test:{port}"]


def test_allowed_urls():
    from modelport.monitoring.urls import check_deployment_url

    assert check_deployment_url("HTTP://93.184.215.14:8080/serve/", []) == (
        "http://93.184.215.14:8080/serve"
    )
    assert check_deployment_url("http://127.0.0.1:9000", ["127.0.0.1"]) == "http://127.0.0.1:9000"
    assert check_deployment_url("http://10.0.3.4", ["10.0.0.0/8"]) == "http://10.0.3.4"
    with pytest.raises(ValidationFailed, match="DEPLOYMENT_ALLOWED_HOSTS"):
        check_deployment_url("http://10.0.3.4", ["127.0.0.1"])


# ---------------------------------------------------------------- sampling


def test_sampling_a_running_server(served, loopback_allowed):
    from modelport.core.models import utcnow
    from modelport.core.redis_client import get_redis
    from modelport.monitoring import alerts
    from modelport.monitoring.sampler import sample_due
    from modelport.packaging.options import GenerateOptions

    deactivate_all()
    model_id = new_model()
    dep = register(model_id, f"http://127.0.0.1:{served.port}", "local")
    pubsub = get_redis().pubsub()
    pubsub.subscribe(alerts.model_channel(model_id))
    pubsub.get_message(timeout=1)

    first = sample_due()
    assert first["due"] == 1 and first["baseline"] == 1 and rows(model_id) == []
    assert sample_due()["due"] == 0  # not due again before the interval
    traffic(served, 12)
    second = sample_due(now=utcnow() + timedelta(minutes=2))
    assert second["sampled"] == 1, second
    [row] = rows(model_id)
    assert row.source == "deployment" and row.batch_size >= 1
    assert row.throughput > 0 and row.latency > 0 and row.memory_mb > 10
    assert row.gpu_memory_mb is None and row.cost_per_inference > 0
    # the configuration it serves, from modelport_model_info: what its baseline must match
    assert (row.device, row.optimization_level) == ("cpu", GenerateOptions().optimization_level)
    state = deployment(dep)
    assert state.status == "up" and state.consecutive_failures == 0 and state.last_scrape

    message = json.loads(pubsub.get_message(timeout=5)["data"])
    assert message["event"] == "metric_update"
    assert set(message["data"]) == {"modelId", "timestamp", "metrics"}
    assert set(message["data"]["metrics"]) == {"throughput", "latency", "memory_usage"}
    pubsub.close()

    # no traffic: a well-formed idle row
    sample_due(now=utcnow() + timedelta(minutes=4))
    idle = rows(model_id)[-1]
    assert idle.throughput == 0 and idle.cost_per_inference == 0 and idle.memory_mb > 10


def test_failures_back_off_and_others_are_still_sampled(served, loopback_allowed):
    from modelport.core.models import utcnow
    from modelport.monitoring.sampler import sample_due

    deactivate_all()
    good_model, bad_model = new_model(), new_model()
    register(good_model, f"http://127.0.0.1:{served.port}")
    garbage = Fake(body=b"<html>this is not prometheus {{{")
    foreign = Fake(body=b"# TYPE other_total counter\nother_total 3\n")
    redirect = Fake(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    try:
        bad = {
            register(
                bad_model, f"http://127.0.0.1:{free_port()}", "gone"
            ): "deployment_unreachable",
            register(bad_model, garbage.url, "garbage"): "deployment_malformed",
            register(bad_model, foreign.url, "foreign"): "deployment_malformed",
            register(bad_model, redirect.url, "redirect"): "deployment_unreachable",
            register(bad_model, "http://10.9.9.9:1", "private"): "deployment_unreachable",
        }
        start = utcnow()
        sample_due()
        traffic(served, 3)
        summary = sample_due(now=start + timedelta(minutes=5))  # past the first backoff
        assert summary["sampled"] == 1 and summary["failed"] == 5, summary
        assert len(rows(good_model)) == 1 and rows(bad_model) == []
        assert redirect.hits == 2  # the redirect was never followed
        for dep_id in bad:
            state = deployment(dep_id)
            assert state.consecutive_failures == 2
            # backed off: at least two intervals (2^failures x interval, capped)
            interval = get_settings().SAMPLE_INTERVAL_SECONDS
            assert state.next_sample_at > utcnow() + timedelta(seconds=2 * interval)
        got = sorted(e.event_type for e in events(bad_model))
        assert got == sorted(bad.values())  # once per incident, not per interval
        assert all(e.severity == "warning" for e in events(bad_model))
        # a third run past every backoff: the down alert (default: 3 failures) fires once
        far = start + timedelta(hours=3)
        third = sample_due(now=far)
        assert third["failed"] == 5 and third["sampled"] == 1
        assert [e.event_type for e in events(bad_model)].count("deployment_down") == 1
    finally:
        for fake in (garbage, foreign, redirect):
            fake.close()


def test_counter_reset_is_a_fresh_start():
    from modelport.monitoring.scrape import quantile, sample_from

    before = {
        "requests": {"200": 1000.0}, "latency_count": 1000.0, "latency_sum": 50.0,
        "latency_buckets": {"0.05": 900.0, "0.1": 1000.0, "+Inf": 1000.0},
        "batch_count": 250.0, "batch_sum": 1000.0, "rss_bytes": 2**28, "start_time": 1.0,
    }  # fmt: skip
    after = {
        "requests": {"200": 10.0, "500": 2.0}, "latency_count": 12.0, "latency_sum": 1.2,
        "latency_buckets": {"0.05": 0.0, "0.1": 6.0, "0.25": 12.0, "+Inf": 12.0},
        "batch_count": 6.0, "batch_sum": 12.0, "rss_bytes": 2**28, "start_time": 99.0,
    }  # fmt: skip
    row = sample_from(before, after, 10.0, 3.6)
    assert row["throughput"] == pytest.approx(1.0)  # 10 OK requests in 10 s
    assert row["latency"] == pytest.approx(100.0)
    assert row["batch_size"] == 2 and row["errors"] == 2
    assert 100 < row["p95_latency"] <= 250
    assert row["cost_per_inference"] == pytest.approx(3.6 / 3600 * 10 / 10)
    assert row["memory_mb"] == 256
    idle = sample_from(after, after, 60.0, 3.6)
    assert idle["throughput"] == 0 and idle["latency"] == 0 and idle["cost_per_inference"] == 0
    assert quantile({"1": 0.0, "+Inf": 0.0}, 0.95) == 0.0


def test_sampling_through_a_worker_fires_a_signed_webhook(served, worker_factory, platform_env):
    from modelport.core.celery_app import get_celery
    from modelport.core.settings import get_settings
    from modelport.monitoring import alerts, webhook

    deactivate_all()
    receiver = Receiver()
    queue = f"monitoring-test-{uuid.uuid4().hex[:6]}"
    # its own worker (with the webhook settings), stopped after: it also takes `control`
    monitor = worker_factory(
        "monitor", queues=queue, DEPLOYMENT_ALLOWED_HOSTS="127.0.0.1",
        ALERT_WEBHOOK_URL=receiver.url, ALERT_WEBHOOK_QUEUE=queue,
    )  # fmt: skip
    try:
        model_id = new_model()
        alerts.create_rule(model_id, "p95_latency_ms", 0.001, severity="critical")
        register(model_id, f"http://127.0.0.1:{served.port}", "edge")
        app = get_celery()
        assert app.send_task("monitoring.sample", queue=queue).get(timeout=60)["baseline"] == 1
        traffic(served, 3)
        from sqlalchemy import update

        from modelport.core.db import session_scope
        from modelport.core.models import Deployment

        with session_scope() as session:
            session.execute(update(Deployment).values(next_sample_at=None))
        summary = app.send_task("monitoring.sample", queue=queue).get(timeout=60)
        assert summary["sampled"] == 1 and summary["alerts"] == 1, summary
        assert len(rows(model_id)) == 1
        receiver.wait(1)
        headers, body = receiver.received[0]
        assert webhook.verify(body, headers["X-Modelport-Signature"], get_settings().SECRET_KEY)
        alert = json.loads(body)
        assert alert["modelId"] == model_id and alert["type"] == "p95_latency_ms"
        assert alert["severity"] == "critical" and "edge" in alert["message"]
    finally:
        monitor.stop()
        receiver.close()
