"""A deployment that hangs, answers garbage or drips its answer while 100 others are sampled:
the others' samples are on time.

One stack of its own (Redis, SQLite, gunicorn API, beat, one real Celery worker on the queue
beat sends `monitoring.sample` to), SAMPLE_INTERVAL_SECONDS=3 and SAMPLE_TIMEOUT_SECONDS=7.5
(the default's 2.5 intervals), so a sampler run that waits for the hanging deployment makes
everybody else's next sample at least 1.5 intervals late. Backoff is capped at one interval so
the faulty deployments are retried all through the observation window. The deployments are
local HTTP servers in this process, registered through POST /api/deployments:

- 100 healthy ones, one ThreadingHTTPServer on distinct paths (``/d/<n>`` + ``/metrics``),
  answering run_inference.py's Prometheus text with counters that grow at every scrape;
- ``hang``: a socket that listens and never accepts (the kernel completes the handshake, the
  request is sent, no byte ever comes back);
- ``garbage``: HTTP 200 with binary noise;
- ``drip``: HTTP 200, a Content-Length of 64 KiB and one byte every 0.2 s, so no single read
  ever waits long enough for a per-read timeout.

Each deployment has a model of its own, so its `metrics` rows (source "deployment") are its
samples. "On time", over an observation window of N intervals after every healthy deployment
has its baseline: each healthy deployment has at least N-1 samples in the window, and no gap
between consecutive samples (window edges included) reaches 2 intervals, i.e. no sample is
a whole interval late.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import statistics
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import select

# SAMPLE_INTERVAL_SECONDS. Not 1: on this 2-core machine a run over the 100 healthy ones takes
# ~0.7 s of the worker's one (GIL-bound) process when nothing else runs, ~1.4 s when the fleet
# shares its process, and at 1 s a few healthy ones missed a tick with or without faults.
# 100 healthy scrapes, their rows and commits take most of 2 s on this 2-core VM on a slow day
# (at 2 s, 1 to 13 of them were a run late, also before the runtime changes of issue 11), so
# the interval leaves room for that work; the timeout keeps its ratio to the interval.
INTERVAL = 3.0
TIMEOUT = 7.5  # SAMPLE_TIMEOUT_SECONDS: each hang costs 2.5 intervals if awaited
HEALTHY = 100
WINDOW = 8  # intervals observed
DRIP_EVERY = 0.2  # seconds between the drip's bytes
RUN = re.compile(r"monitoring\.sample\[[^\]]+\] succeeded in ([0-9.]+)s")

METRICS = """\
# HELP modelport_requests_total Requests by status
# TYPE modelport_requests_total counter
modelport_requests_total{{status="200"}} {ok}
modelport_requests_total{{status="500"}} {err}
# HELP modelport_inputs_total Inputs predicted
# TYPE modelport_inputs_total counter
modelport_inputs_total {inputs}
# HELP modelport_request_duration_seconds Request latency
# TYPE modelport_request_duration_seconds histogram
modelport_request_duration_seconds_bucket{{le="0.01"}} {b1}
modelport_request_duration_seconds_bucket{{le="0.05"}} {b2}
modelport_request_duration_seconds_bucket{{le="0.1"}} {n}
modelport_request_duration_seconds_bucket{{le="+Inf"}} {n}
modelport_request_duration_seconds_count {n}
modelport_request_duration_seconds_sum {lsum}
# HELP modelport_batch_size Inputs per batch
# TYPE modelport_batch_size histogram
modelport_batch_size_bucket{{le="4.0"}} {batches}
modelport_batch_size_bucket{{le="+Inf"}} {batches}
modelport_batch_size_count {batches}
modelport_batch_size_sum {inputs}
# HELP modelport_batch_duration_seconds Model time per batch
# TYPE modelport_batch_duration_seconds histogram
modelport_batch_duration_seconds_bucket{{le="+Inf"}} {batches}
modelport_batch_duration_seconds_count {batches}
modelport_batch_duration_seconds_sum {btime}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.34217728e+08
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds {start}
"""


class Fleet:
    """The deployments: 100 healthy paths, garbage and drip on one threaded server, and a
    listening socket that never accepts."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hits: dict[str, list[float]] = {}  # path -> monotonic times of GET
        self._lock = threading.Lock()
        self.start = time.time()
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with fleet._lock:
                    fleet.hits.setdefault(self.path, []).append(time.monotonic())
                    count = len(fleet.hits[self.path])
                m = re.fullmatch(r"/d/(\d+)/metrics", self.path)
                if m:
                    self._send(fleet.metrics(int(m.group(1)), count))
                elif self.path == "/garbage/metrics":
                    self._send(os.urandom(700) + b"\x00{{{ not prometheus")
                elif self.path == "/drip/metrics":
                    self._drip()
                else:
                    self._send(b"not found", 404)

            def _send(self, body: bytes, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(64 * 1024))
                self.end_headers()
                body = (b"# HELP modelport_requests_total slowly\n" * 2000)[: 64 * 1024]
                with contextlib.suppress(OSError):
                    for byte in body:
                        if fleet.stop.wait(DRIP_EVERY):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(64)  # never accepted: connections complete, nothing answers

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hang_url(self) -> str:
        return f"http://127.0.0.1:{self.silent.getsockname()[1]}"

    def metrics(self, n: int, count: int) -> bytes:
        ok = count * (3 + n % 5)
        inputs = ok * 2
        return METRICS.format(
            ok=ok, err=count // 4, inputs=inputs, n=ok + count // 4, b1=ok // 3, b2=ok,
            lsum=0.02 * ok, batches=ok, btime=0.01 * ok, start=self.start + n,
        ).encode()  # fmt: skip

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.silent.close()


class ApiWatch:
    """GET /api/deployments twice a second from a thread: every status and latency."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.results: list[tuple[int, float]] = []  # (status or 0 for no answer, seconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            began = time.monotonic()
            try:
                status = self.stack.get("/api/deployments", timeout=10).status_code
            except requests.RequestException:
                status = 0
            self.results.append((status, time.monotonic() - began))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def _samples(db_url: str, model_ids: list[str]) -> dict[str, list[datetime]]:
    from modelport.core.db import session_scope
    from modelport.core.models import Metric

    out: dict[str, list[datetime]] = {m: [] for m in model_ids}
    with session_scope(db_url) as session:
        rows = session.execute(
            select(Metric.model_id, Metric.timestamp, Metric.source).order_by(Metric.timestamp)
        ).all()
    for model_id, when, source in rows:
        if model_id in out:
            assert source == "deployment"
            out[model_id].append(when)
    return out


def _deployments(db_url: str) -> dict[str, object]:
    from modelport.core.db import session_scope
    from modelport.core.models import Deployment

    with session_scope(db_url) as session:
        return {d.id: d for d in session.scalars(select(Deployment))}


def _events(db_url: str, model_ids: list[str]) -> dict[str, list[str]]:
    from modelport.core.db import session_scope
    from modelport.core.models import Event

    out: dict[str, list[str]] = {m: [] for m in model_ids}
    with session_scope(db_url) as session:
        for e in session.scalars(select(Event).order_by(Event.id)):
            if e.model_id in out:
                out[e.model_id].append(e.event_type)
    return out


def _now() -> datetime:
    from modelport.core.models import utcnow

    return utcnow()


@pytest.mark.slow
def test_hanging_garbage_and_dripping_deployments_do_not_delay_the_others(stack_factory):
    fleet = Fleet()
    stack = stack_factory(
        SAMPLE_INTERVAL_SECONDS=str(INTERVAL),
        SAMPLE_TIMEOUT_SECONDS=str(TIMEOUT),
        # backoff capped at one interval: the faulty ones are retried all through the window
        SAMPLE_MAX_BACKOFF_SECONDS=str(INTERVAL),
        DEPLOYMENT_ALLOWED_HOSTS="127.0.0.1",
    )
    watch = None
    try:
        stack.worker("sampler", queues="default")
        stack.wait_workers("default")
        org = f"faults-{uuid.uuid4().hex[:8]}"
        targets = {f"{org}/healthy-{n:03d}": fleet.url(f"/d/{n}") for n in range(HEALTHY)}
        faulty = {
            f"{org}/hang": fleet.hang_url,
            f"{org}/garbage": fleet.url("/garbage"),
            f"{org}/drip": fleet.url("/drip"),
        }
        # the faulty ones first: they are due in the very first run with the healthy ones
        ids: dict[str, str] = {}
        for model_id, url in [*faulty.items(), *targets.items()]:
            r = stack.post(
                "/api/deployments",
                json={"modelId": model_id, "url": url, "name": model_id.split("/")[1]},
            )
            assert r.status_code == 201, r.text
            ids[model_id] = r.json()["id"]
        watch = ApiWatch(stack)

        healthy = list(targets)
        # warm-up: every healthy deployment has its baseline and its first row
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = _samples(stack.db_url, healthy)
            if all(got.values()):
                break
            time.sleep(0.25)
        else:
            missing = [m for m, s in got.items() if not s]
            pytest.fail(
                f"{len(missing)} healthy deployments never sampled, e.g. {missing[:3]}\n"
                f"{stack.workers[0].output()[-3000:]}"
            )
        start, started = _now(), time.monotonic()
        time.sleep(WINDOW * INTERVAL)
        end, ended = _now(), time.monotonic()
        watch.close()

        samples = _samples(stack.db_url, [*healthy, *faulty])
        events = _events(stack.db_url, list(faulty))
        states = _deployments(stack.db_url)
        worker_log = stack.workers[0].output()

        # --- the numbers (shown with pytest -s), then the checks
        counts, gaps = {}, {}
        for model_id in healthy:
            times = [t for t in samples[model_id] if start <= t <= end]
            counts[model_id] = len(times)
            edges = [start, *times, end]
            gaps[model_id] = max((b - a).total_seconds() for a, b in itertools.pairwise(edges))
        runs = [float(x) for x in RUN.findall(worker_log)]
        retried = {
            path: sum(started <= t <= ended for t in fleet.hits.get(path, []))
            for path in ("/garbage/metrics", "/drip/metrics")
        }
        worst = sorted(gaps.items(), key=lambda kv: -kv[1])[:3]
        print(
            f"\nwindow {WINDOW} x {INTERVAL}s; samples per healthy deployment: min "
            f"{min(counts.values())} median {statistics.median(counts.values())} max "
            f"{max(counts.values())}; max gap {max(gaps.values()):.2f}s (lateness "
            f"{max(gaps.values()) - INTERVAL:.2f}s), median of per-deployment max gaps "
            f"{statistics.median(gaps.values()):.2f}s; worst "
            f"{[(m.split('/')[1], round(g, 2)) for m, g in worst]}\n"
            f"sample runs {len(runs)}: max {max(runs, default=0):.2f}s median "
            f"{statistics.median(runs) if runs else 0:.2f}s\n"
            f"faulty scrapes in the window {retried}, hang failures in a row "
            f"{states[ids[f'{org}/hang']].consecutive_failures}; events {events}\n"
            f"api: {len(watch.results)} GETs, statuses {sorted({s for s, _ in watch.results})}"
            f", slowest {max((d for _, d in watch.results), default=0):.2f}s"
        )

        late = {m: round(g, 2) for m, g in gaps.items() if g >= 2 * INTERVAL}
        assert not late, f"{len(late)} healthy deployments had a sample an interval late: {late}"
        few = {m: c for m, c in counts.items() if c < WINDOW - 1}
        assert not few, f"{len(few)} healthy deployments had under {WINDOW - 1} samples: {few}"
        assert all(states[ids[m]].status == "up" for m in healthy)

        # the faulty ones were retried during the window, and each scrape of them failed: an
        # events row per incident, never a metrics row, marked down or malformed
        assert retried["/garbage/metrics"] >= 3 and retried["/drip/metrics"] >= 2, retried
        expected = {
            f"{org}/hang": ("deployment_unreachable", "down"),
            f"{org}/garbage": ("deployment_malformed", "malformed"),
            f"{org}/drip": ("deployment_unreachable", "down"),
        }
        for model_id, (kind, status) in expected.items():
            assert samples[model_id] == [], f"{model_id} got metrics rows"
            assert events[model_id].count(kind) == 1, (model_id, events[model_id])
            state = states[ids[model_id]]
            assert state.status == status and state.consecutive_failures >= 2, (
                model_id, state.status, state.consecutive_failures,
            )  # fmt: skip

        # nothing crashed or overran: the API answered throughout, the worker is alive, every
        # sampling run ended before the next interval began and none raised
        assert watch.results and all(s == 200 for s, _ in watch.results), watch.results
        assert stack.workers[0].proc.poll() is None
        assert runs and max(runs) < INTERVAL, runs
        assert "failed unexpectedly" not in worker_log
        assert "TimeLimitExceeded" not in worker_log
        assert not re.search(r"monitoring\.sample\[[^\]]+\] raised", worker_log)
    finally:
        if watch is not None:
            watch.close()
        fleet.close()
