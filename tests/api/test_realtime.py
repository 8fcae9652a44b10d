"""The WebSocket relay against a real HTTP server, real Redis and simple_websocket clients."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid

import pytest
import requests
import simple_websocket
from werkzeug.serving import make_server

from modelport.api import relay
from modelport.core import events
from modelport.monitoring.alerts import model_channel

ORIGIN = "http://localhost:3000"


@pytest.fixture()
def serve(platform_env):
    """Start create_app(settings) in a threaded werkzeug server; yields a factory of base URLs."""
    from modelport.api import create_app
    from modelport.core.settings import get_settings

    servers = []

    def start(**overrides) -> str:
        app = create_app(get_settings().model_copy(update=overrides))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


_OPEN: list[WS] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    """Close every client a test opened, passed or failed: simple_websocket's client thread
    is not a daemon, so one left open would keep pytest from exiting."""
    yield
    while _OPEN:
        with contextlib.suppress(simple_websocket.ConnectionClosed):
            _OPEN.pop().close()


class WS:
    def __init__(self, host: str, query: str = "", headers: dict | None = None):
        self.client = simple_websocket.Client.connect(
            f"ws://{host}/ws{query}", headers={"Origin": ORIGIN, **(headers or {})}
        )
        _OPEN.append(self)

    def send(self, event: str, data: dict | None = None) -> None:
        self.client.send(json.dumps({"event": event, "data": data or {}}))

    def recv(self, timeout: float = 5.0) -> dict:
        raw = self.client.receive(timeout=timeout)
        assert raw is not None, "no message in time"
        return json.loads(raw)

    def expect(self, event: str, timeout: float = 5.0) -> dict:
        message = self.recv(timeout)
        assert message["event"] == event, message
        return message

    def close(self) -> None:
        self.client.close()


def metric(model_id: str, throughput: float = 10.0) -> dict:
    return {
        "modelId": model_id,
        "timestamp": "2024-01-01T00:00:00+00:00",
        "metrics": {"throughput": throughput, "latency": 12.5, "memory_usage": 512.0},
    }


def test_metric_update_carries_only_requested_metrics(serve):
    ws = WS(serve())
    model = f"m-{uuid.uuid4().hex[:6]}"
    ws.send("subscribe_metrics", {"modelId": model, "metrics": ["throughput", "latency"]})
    assert ws.expect("subscribed")["data"]["modelId"] == model
    events.publish(model_channel("other"), "metric_update", metric("other"))
    events.publish(model_channel(model), "metric_update", metric(model))
    message = ws.expect("metric_update")
    assert message["data"] == {
        "modelId": model,
        "timestamp": "2024-01-01T00:00:00+00:00",
        "metrics": {"throughput": 10.0, "latency": 12.5},
    }
    assert relay.STREAM_ID.match(message["id"])
    ws.send("unsubscribe_metrics", {"modelId": model})
    ws.expect("unsubscribed")
    events.publish(model_channel(model), "metric_update", metric(model))
    ws.send("ping", {"n": 1})
    assert ws.expect("pong")["data"] == {"n": 1}
    ws.close()


def test_alert_has_exactly_spec_fields(serve):
    ws = WS(serve())
    ws.send("subscribe_metrics", {"modelId": "m1"})
    ws.expect("subscribed")
    alert = {"modelId": "m1", "type": "latency", "message": "p99 high", "severity": "warning"}
    events.publish(model_channel("m1"), "alert", {**alert, "internal": "x"})
    assert ws.expect("alert")["data"] == alert
    ws.close()


def test_job_progress_through_completion(serve):
    ws = WS(serve())
    job_id = uuid.uuid4().hex
    ws.send("subscribe_job", {"jobId": job_id})
    ws.expect("subscribed")
    for progress in (0.25, 0.5):
        events.publish_job(job_id, "job_progress", {"progress": progress, "stage": "build"})
    events.publish_job(
        job_id, "job_completed", {"status": "succeeded", "result": {"files": 3}, "error": None}
    )
    assert ws.expect("job_progress")["data"] == {
        "jobId": job_id,
        "progress": 0.25,
        "stage": "build",
    }
    assert ws.expect("job_progress")["data"]["progress"] == 0.5
    done = ws.expect("job_completed")["data"]
    assert done["status"] == "succeeded" and done["result"] == {"files": 3}
    ws.close()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"event": "explode"}), "unknown event"),
        (json.dumps({"event": "subscribe_job", "data": {}}), "jobId"),
        (json.dumps({"event": "subscribe_metrics", "data": {"modelId": "m", "metrics": ["x"]}}),
         "unknown metrics"),
        (json.dumps({"event": "ping", "data": {"pad": "x" * 70_000}}), "larger than"),
        ("[" * 30_000 + "]" * 30_000, "nested deeper"),  # was a RecursionError
        ('{"event": "ping", "data": ' + '{"a": ' * 30 + "1" + "}" * 31, "nested deeper"),
        ('{"event": "ping", "data": {"x": NaN}}', "NaN is not JSON"),  # was echoed in a pong
        ('{"event": "ping", "data": {"x": -Infinity}}', "-Infinity is not JSON"),
    ],
)  # fmt: skip
def test_bad_messages_get_error_and_socket_stays_up(serve, raw, why):
    ws = WS(serve())
    ws.client.send(raw)
    error = ws.expect("error")["data"]
    assert error["code"] == 1006 and why in error["message"]
    ws.send("ping")
    ws.expect("pong")
    ws.close()


def test_handshake_refuses_bad_origin_and_missing_key(serve):
    host = serve()
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    refused = requests.get(
        f"http://{host}/ws", headers={**upgrade, "Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"origin": "https://evil.example"}
    # a look-alike of the server's own origin is foreign too
    near = requests.get(
        f"http://{host}/ws", headers={**upgrade, "Origin": f"http://{host}.evil.example"}
    )
    assert near.status_code == 403
    # the page this server serves (same origin) may connect without being listed
    own = requests.get(f"http://{host}/ws", headers={**upgrade, "Origin": f"http://{host}"})
    assert own.status_code == 101

    secured = serve(REQUIRE_API_KEY=True)
    refused = requests.get(f"http://{secured}/ws", headers={**upgrade, "Origin": ORIGIN})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == 1007
    with pytest.raises(simple_websocket.ConnectionError):
        WS(secured)

    from modelport.core import apikeys

    key = apikeys.create_key("ws-test").key
    by_query = WS(secured, f"?token={key}")
    by_query.send("ping")
    by_query.expect("pong")
    by_query.close()
    by_header = WS(secured, headers={"Authorization": f"Bearer {key}"})
    by_header.send("ping")
    by_header.expect("pong")
    by_header.close()


def test_reconnect_with_last_event_id_replays_missed_events(serve):
    host = serve()
    job_id = uuid.uuid4().hex
    ws = WS(host)
    ws.send("subscribe_job", {"jobId": job_id})
    ws.expect("subscribed")
    events.publish_job(job_id, "job_progress", {"progress": 0.1, "stage": "a"})
    last_id = ws.expect("job_progress")["id"]
    ws.close()
    # missed while away
    events.publish_job(job_id, "job_progress", {"progress": 0.6, "stage": "b"})
    events.publish(model_channel("elsewhere"), "alert", {"modelId": "elsewhere"})
    events.publish_job(job_id, "job_completed", {"status": "failed", "result": None,
                                                 "error": {"code": 1002}})  # fmt: skip

    again = WS(host, f"?lastEventId={last_id}")
    again.send("subscribe_job", {"jobId": job_id})
    again.expect("subscribed")
    assert again.expect("job_progress")["data"]["progress"] == 0.6
    assert again.expect("job_completed")["data"]["error"] == {"code": 1002}
    events.publish_job(job_id, "job_progress", {"progress": 0.9, "stage": "live"})
    assert again.expect("job_progress")["data"]["stage"] == "live"  # no duplicates before it
    again.send("resume", {"lastEventId": last_id})
    assert again.expect("resumed")["data"] == {"lastEventId": last_id}
    assert [again.recv()["event"] for _ in range(3)] == [
        "job_progress", "job_completed", "job_progress",
    ]  # fmt: skip
    again.close()


def test_replay_older_than_window_is_flagged(serve):
    client = relay.get_redis()
    pipe = client.pipeline(transaction=False)
    for i in range(events.STREAM_MAXLEN + 150):
        pipe.xadd(events.STREAM, {"channel": "x", "message": "{}"}, id=f"{i + 1}-0",
                  maxlen=events.STREAM_MAXLEN)  # fmt: skip
    pipe.execute()
    ws = WS(serve(), "?lastEventId=1-0")
    ws.send("subscribe_job", {"jobId": "j"})
    ws.expect("subscribed")
    assert ws.expect("replay_truncated")["data"] == {"lastEventId": "1-0"}
    ws.close()


def test_slow_consumer_loses_progress_never_finals():
    box = relay.Outbox(maxsize=4)
    box.put(relay.Item("job_progress", {"p": 1}))
    box.put(relay.Item("job_completed", {"n": 1}))
    box.put(relay.Item("metric_update", {"p": 2}))
    box.put(relay.Item("alert", {"n": 2}))
    box.put(relay.Item("alert", {"n": 3}))  # evicts progress p1
    box.put(relay.Item("job_progress", {"p": 3}))  # evicts metric p2
    box.put(relay.Item("job_progress", {"p": 4}))  # evicts p3
    assert [i.data for i in box.take()] == [{"n": 1}, {"n": 2}, {"n": 3}, {"p": 4}]
    assert box.dropped == 3
    for n in range(4):
        box.put(relay.Item("alert", {"n": n}))
    box.put(relay.Item("job_progress", {}))  # nothing lossy to evict: this one goes
    assert len(box) == 4 and not box.overflowed
    box.put(relay.Item("job_completed", {}))  # a final that does not fit: disconnect
    with pytest.raises(relay.Overflow):
        box.take()


def test_overflow_closes_socket_with_1013(serve):
    ws = WS(serve())
    ws.send("subscribe_job", {"jobId": "slow"})
    ws.expect("subscribed")
    hub = relay.get_hub()
    with hub._lock:
        (sub,) = hub._subs[events.job_channel("slow")]
    # The sender cannot drain while we hold the lock: fill the outbox with finals, then one
    # more final overflows it, all before the sender (parked, or just about to take) can look.
    # (Publishing that last final through Redis instead would race the sender for the lock.)
    with sub.outbox._cond:
        sub.outbox._items.extend(
            relay.Item("job_completed", {}, channel="x") for _ in range(sub.outbox.maxsize)
        )
        sub.outbox.put(relay.Item("job_completed", {"status": "succeeded"}, channel="x"))
        assert sub.outbox.overflowed
    deadline = time.monotonic() + 5
    while ws.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ws.client.close_reason == 1013


def test_metric_update_from_a_real_sampling_run(serve, worker, tiny_models, tmp_path):
    """A deployment sampled by the real worker's monitoring.sample reaches a subscriber."""
    from modelport.core.celery_app import get_celery
    from modelport.packaging.options import GenerateOptions
    from tests.packaging.bundle_servers import BundleServer, facts_for, write_bundle

    model = tiny_models["fill-mask"]
    script = write_bundle(tmp_path / "bundle", facts_for(model), GenerateOptions(batchSize=2))
    server = BundleServer(script)
    server.wait_ready()
    host = serve()
    ws = WS(host)
    try:
        ws.send("subscribe_metrics", {"modelId": model.repo_id, "metrics": ["throughput"]})
        ws.expect("subscribed")
        made = requests.post(
            f"http://{host}/api/deployments",
            json={"modelId": model.repo_id, "url": f"http://127.0.0.1:{server.port}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        celery = get_celery()
        celery.send_task("monitoring.sample").get(timeout=60)  # the baseline scrape
        for _ in range(5):
            assert server.post("/predict", {"inputs": "Paris is the [MASK]."}).status_code == 200
        deadline = time.monotonic() + 30
        update = None
        while update is None and time.monotonic() < deadline:
            time.sleep(1.1)  # SAMPLE_INTERVAL_SECONDS=1 in the test environment
            celery.send_task("monitoring.sample").get(timeout=60)
            raw = ws.client.receive(timeout=2)
            while raw is not None:
                message = json.loads(raw)
                if message["event"] == "metric_update":
                    update = message
                    break
                raw = ws.client.receive(timeout=0.2)
        assert update is not None, "no metric_update from the sampling run"
        assert update["data"]["modelId"] == model.repo_id
        assert set(update["data"]["metrics"]) == {"throughput"}
        assert update["data"]["metrics"]["throughput"] >= 0 and update["id"]
    finally:
        ws.close()
        server.stop()


def test_subscriptions_per_connection_are_capped(serve):
    from modelport.api.realtime import MAX_SUBSCRIPTIONS

    ws = WS(serve())
    for i in range(MAX_SUBSCRIPTIONS):
        ws.send("subscribe_job", {"jobId": f"job-{i}"})
    assert all(ws.expect("subscribed") for _ in range(MAX_SUBSCRIPTIONS))
    ws.send("subscribe_metrics", {"modelId": "one/too-many"})
    error = ws.expect("error")["data"]
    assert (
        error["code"] == 1006 and f"at most {MAX_SUBSCRIPTIONS} subscriptions" in error["message"]
    )
    ws.send("subscribe_job", {"jobId": "job-0"})  # already subscribed: not a new channel
    ws.expect("subscribed")
    ws.send("unsubscribe_job", {"jobId": "job-1"})
    ws.expect("unsubscribed")
    ws.send("subscribe_metrics", {"modelId": "one/too-many"})  # room again
    ws.expect("subscribed")
    ws.close()


def test_replays_are_bounded_in_rate_and_in_what_they_read(serve, monkeypatch):
    """A replay reads at most MAX_REPLAY_SCAN stream entries (the newest; older ones are
    reported lost) and a connection gets REPLAY_BURST replays, then one per interval."""
    from modelport.api import realtime

    monkeypatch.setattr(relay, "MAX_REPLAY_SCAN", 50)
    job_id = uuid.uuid4().hex
    events.publish_job(job_id, "job_progress", {"progress": 0.0, "stage": "start"})
    ((first, _),) = relay.get_redis().xrevrange(events.STREAM, count=1)
    for i in range(120):
        events.publish(model_channel("noise"), "alert", {"modelId": "noise", "n": i})
    events.publish_job(job_id, "job_progress", {"progress": 0.5, "stage": "recent"})
    ws = WS(serve())
    ws.send("subscribe_job", {"jobId": job_id})
    ws.expect("subscribed")

    def until(event: str) -> list[dict]:
        """Messages up to `event` (the relay may also deliver 'recent' live, once)."""
        got = [ws.recv()]
        while got[-1]["event"] != event:
            got.append(ws.recv())
        return got

    ws.send("resume", {"lastEventId": first})
    replay = until("replay_truncated")
    assert [m["event"] for m in replay if m["event"] != "job_progress"] == [
        "resumed", "replay_truncated",
    ]  # fmt: skip
    assert "recent" in {m["data"]["stage"] for m in replay if m["event"] == "job_progress"}
    assert replay[-1]["data"] == {"lastEventId": first}  # "start" is older than the newest 50
    for _ in range(realtime.REPLAY_BURST - 1):
        ws.send("resume", {"lastEventId": first})
        until("replay_truncated")
    ws.send("resume", {"lastEventId": first})
    error = until("error")[-1]["data"]
    assert error["code"] == 1006 and "too many replays" in error["message"]
    time.sleep(realtime.REPLAY_INTERVAL_S * 1.1)
    ws.send("resume", {"lastEventId": first})
    until("resumed")  # one more token after the interval
    ws.close()
