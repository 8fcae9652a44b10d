"""WebSocket fan-out: N subscribers to one model over /ws vs a bare Redis pub/sub subscriber.

Starts its own Redis and a gunicorn gthread API server, connects SUBSCRIBERS simple_websocket
clients (one thread each), publishes EVENTS metric_update events through core.events.publish
and prints publish -> receipt latency p50/p99 for both paths.

    python bench/ws_fanout.py [--subscribers 500] [--events 40] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
import simple_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, percentile, record

MODEL = "fanout-model"


def stamp() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat()


def latency_ms(iso: str, now: float) -> float:
    return (now - datetime.fromisoformat(iso).timestamp()) * 1000


def start_server(env: dict, port: int, threads: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1",
         "--threads", str(threads), "--worker-connections", str(threads * 2),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "modelport.api.wsgi:app"],
        env=env, cwd=ROOT, stdout=log, stderr=log,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return proc
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("API server did not start")


class Subscriber(threading.Thread):
    def __init__(self, url: str, expected: int):
        super().__init__(daemon=True)
        self.client = simple_websocket.Client.connect(
            url, headers={"Origin": "http://localhost:3000"}
        )
        self.client.send(json.dumps({"event": "subscribe_metrics", "data": {"modelId": MODEL}}))
        self.expected = expected
        self.latencies: list[float] = []
        self.ready = threading.Event()

    def run(self) -> None:
        while len(self.latencies) < self.expected:
            raw = self.client.receive(timeout=15)
            if raw is None:
                return
            message = json.loads(raw)
            if message["event"] == "subscribed":
                self.ready.set()
            elif message["event"] == "metric_update":
                self.latencies.append(latency_ms(message["data"]["timestamp"], time.time()))


def bare_subscriber(client, expected: int, out: list[float], ready: threading.Event) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"modelport:model:{MODEL}")
    ready.set()
    deadline = time.monotonic() + 60
    while len(out) < expected and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message:
            data = json.loads(message["data"])["data"]
            out.append(latency_ms(data["timestamp"], time.time()))
    pubsub.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()

    from modelport import localredis

    tmp = Path(tempfile.mkdtemp(prefix="modelport-wsbench-"))
    redis_port, api_port = localredis.free_port(), localredis.free_port()
    redis_proc = localredis.start_server(redis_port, tmp / "redis", persist=False)
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
           "DB_PATH": f"sqlite:///{tmp / 'bench.db'}", "FLASK_ENV": "development"}  # fmt: skip
    os.environ.update(env)
    from modelport.cli import db_upgrade
    from modelport.core import events
    from modelport.core.redis_client import get_redis

    db_upgrade(env["DB_PATH"])
    log = open(tmp / "server.log", "ab")  # noqa: SIM115
    server = start_server(env, api_port, args.subscribers + 50, log)
    try:
        url = f"ws://127.0.0.1:{api_port}/ws"
        subs = []
        for _ in range(args.subscribers):
            sub = Subscriber(url, args.events)
            sub.start()
            subs.append(sub)
        for sub in subs:
            if not sub.ready.wait(30):
                raise RuntimeError("a subscriber was never acknowledged")
        bare: list[float] = []
        bare_ready = threading.Event()
        bare_thread = threading.Thread(
            target=bare_subscriber, args=(get_redis(), args.events, bare, bare_ready), daemon=True
        )
        bare_thread.start()
        bare_ready.wait(5)
        time.sleep(0.5)
        for i in range(args.events):
            metrics = {"throughput": float(i), "latency": 1.0, "memory_usage": 2.0}
            data = {"modelId": MODEL, "timestamp": stamp(), "metrics": metrics}
            events.publish(f"modelport:model:{MODEL}", "metric_update", data)
            time.sleep(args.interval)
        for sub in subs:
            sub.join(timeout=20)
        bare_thread.join(timeout=20)
        ws = [x for sub in subs for x in sub.latencies]
        expected = args.subscribers * args.events
        print(f"subscribers={args.subscribers} events={args.events} interval={args.interval}s")
        print(f"websocket /ws : received {len(ws)}/{expected}  "
              f"p50={percentile(ws, 50):.1f} ms  p99={percentile(ws, 99):.1f} ms  "
              f"max={max(ws):.1f} ms")  # fmt: skip
        print(f"redis pub/sub : received {len(bare)}/{args.events}  "
              f"p50={percentile(bare, 50):.1f} ms  p99={percentile(bare, 99):.1f} ms")  # fmt: skip
        delivered = f"{len(ws):,}/{expected:,} delivered"
        for q in (50, 99):
            value = percentile(ws, q)
            record(
                f"publish → receipt at {args.subscribers} WebSocket subscribers of one model "
                f"(gunicorn gthread, {args.subscribers + 50} threads): p{q}",
                value,
                "ms",
                baseline=percentile(bare, q),
                baseline_what="bare Redis pub/sub subscriber",
                target="p99 < 250 ms" if q == 99 else None,
                passed=value < 250 if q == 99 else None,
                note=f"{delivered}, {args.events} events",
            )
        for sub in subs:
            sub.client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        localredis.stop(redis_proc)


if __name__ == "__main__":
    main()
