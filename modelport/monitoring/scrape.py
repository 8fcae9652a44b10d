"""Scraping one deployment: fetch its Prometheus /metrics, keep the raw counters, and turn
two scrapes into one SPEC `metrics` row.

Counters are cumulative, so a sample is the difference between two scrapes. A restarted
server (a counter went down, or process_start_time_seconds changed) starts from zero: the
current values are the delta. An interval without requests is a row with throughput 0,
latency 0, batch size 0 and cost 0.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import Iterable
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from modelport.core.errors import ValidationFailed
from modelport.monitoring.urls import Target, check_target

MAX_BODY_BYTES = 4 * 1024 * 1024
LATENCY = "modelport_request_duration_seconds"
BATCH = "modelport_batch_size"
BATCH_TIME = "modelport_batch_duration_seconds"
GPU_GAUGES = ("modelport_gpu_memory_reserved_bytes", "modelport_gpu_memory_allocated_bytes")
# counters whose decrease means the server restarted
COUNTERS = ("latency_count", "latency_sum", "batch_count", "batch_sum", "inputs", "batch_time")


class ScrapeError(Exception):
    """A failed scrape; `kind` is the events row type it becomes."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def fetch(url: str, allowed_hosts: Iterable[str], timeout: float) -> str:
    """The /metrics text of the deployment at `url`, re-checked against the URL policy.

    `timeout` bounds the whole scrape (connect, headers and body), not each socket read: a
    server that drips its answer a byte at a time is cut off when the time is up."""
    try:
        target = check_target(url, allowed_hosts)
    except ValidationFailed as exc:
        raise ScrapeError("deployment_unreachable", f"refused: {exc.message}") from None
    base = target.base
    deadline = _Deadline(timeout, target)
    try:
        with requests.Session() as session, deadline:
            session.trust_env = False  # no proxy or .netrc from the environment: direct only
            session.mount("http://", _DeadlineAdapter())
            session.mount("https://", _DeadlineAdapter())
            with session.get(
                f"{base}/metrics",
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "text/plain"},
            ) as response:
                if response.is_redirect or 300 <= response.status_code < 400:
                    where = response.headers.get("Location", "?")
                    raise ScrapeError(
                        "deployment_unreachable", f"/metrics redirected to {where}; not followed"
                    )
                if response.status_code != 200:
                    raise ScrapeError(
                        "deployment_unreachable", f"/metrics answered HTTP {response.status_code}"
                    )
                body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if deadline.expired:
            raise ScrapeError(
                "deployment_unreachable", f"{base}/metrics took longer than {timeout:g}s"
            ) from None
        raise ScrapeError("deployment_unreachable", f"cannot reach {base}: {exc}") from None
    if deadline.expired:  # cut off; what was read is a truncated answer
        raise ScrapeError("deployment_unreachable", f"{base}/metrics took longer than {timeout:g}s")
    if len(body) > MAX_BODY_BYTES:
        raise ScrapeError("deployment_malformed", "/metrics is larger than 4 MiB")
    return body.decode("utf-8", errors="replace")


_watching = threading.local()


class _Deadline:
    """While entered, the thread's scrape connects only to the addresses `target` was checked
    with (never resolving its host again), and every socket it opens is shut down once
    `seconds` have passed, which ends any read blocked on it (requests' timeouts are per read)."""

    def __init__(self, seconds: float, target: Target) -> None:
        self.seconds = seconds
        self.target = target
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _watching.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _watching.deadline = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """A connection to the checked addresses of the deployment's host (the Host header and
    TLS server name stay the host's), watched by the thread's deadline."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        deadline = getattr(_watching, "deadline", None)
        if deadline is None:
            raise urllib3.exceptions.NewConnectionError(self, "no checked deployment address")
        target = deadline.target
        host = self.host.strip("[]").rstrip(".").lower()
        if host != target.host:  # a redirect or proxy would name another host: never
            raise urllib3.exceptions.NewConnectionError(
                self, f"{host} is not the checked deployment host {target.host}"
            )
        failure: OSError | None = None
        for address in target.addresses:
            try:
                sock = urllib3.util.connection.create_connection(
                    (str(address), self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options,
                )  # fmt: skip
            except OSError as exc:
                failure = exc
                continue
            deadline.watch(sock)
            return sock
        raise urllib3.exceptions.NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        )


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections report their sockets to the thread's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS keeps its own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager


def parse(text: str) -> dict[str, Any]:
    """The raw counters a sample needs, from Prometheus text; ScrapeError if it is not ours."""
    from prometheus_client.parser import text_string_to_metric_families

    raw: dict[str, Any] = {"requests": {}, "latency_buckets": {}}
    found = set()
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found.add(s.name)
                _take(raw, s.name, s.labels, float(s.value))
    except Exception as exc:  # the parser raises ValueError, TypeError, IndexError...
        raise ScrapeError(
            "deployment_malformed", f"/metrics is not Prometheus text: {exc}"
        ) from None
    if f"{LATENCY}_count" not in found or "process_resident_memory_bytes" not in found:
        raise ScrapeError(
            "deployment_malformed",
            f"/metrics lacks {LATENCY} or process_resident_memory_bytes; "
            "is this a modelport run_inference.py server?",
        )
    return raw


def _take(raw: dict[str, Any], name: str, labels: dict[str, str], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} is {value}")
    if name == "modelport_requests_total":
        raw["requests"][labels.get("status", "?")] = value
    elif name == f"{LATENCY}_bucket":
        raw["latency_buckets"][labels["le"]] = value
    elif name == f"{LATENCY}_sum":
        raw["latency_sum"] = value
    elif name == f"{LATENCY}_count":
        raw["latency_count"] = value
    elif name == f"{BATCH}_sum":
        raw["batch_sum"] = value
    elif name == f"{BATCH}_count":
        raw["batch_count"] = value
    elif name == f"{BATCH_TIME}_sum":
        raw["batch_time"] = value
    elif name == "modelport_inputs_total":
        raw["inputs"] = value
    elif name == "process_resident_memory_bytes":
        raw["rss_bytes"] = value
    elif name == "process_start_time_seconds":
        raw["start_time"] = value
    elif name in GPU_GAUGES and "gpu_bytes" not in raw:
        raw["gpu_bytes"] = value
    elif name == "modelport_model_info":  # the configuration the deployment runs
        for label in ("device", "optimization_level"):
            if labels.get(label):
                raw[label] = labels[label][:16]


def is_reset(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the server restarted between two scrapes."""
    if previous.get("start_time") != current.get("start_time"):
        return True
    if any(current.get(k, 0) < previous.get(k, 0) for k in COUNTERS):
        return True
    prev, cur = previous.get("requests", {}), current.get("requests", {})
    return any(cur.get(k, 0) < v for k, v in prev.items())


def sample_from(
    previous: dict[str, Any], current: dict[str, Any], elapsed_s: float, price_per_hour: float
) -> dict[str, Any]:
    """A SPEC metrics row for the interval between two scrapes, plus `p95_latency`,
    `requests`, `errors` and `capacity` (inputs per second of model time) for alerts."""
    if is_reset(previous, current):
        previous = {}
    elapsed = max(float(elapsed_s), 1e-6)
    d = {k: max(current.get(k, 0.0) - previous.get(k, 0.0), 0.0) for k in COUNTERS}
    statuses = {
        code: max(n - previous.get("requests", {}).get(code, 0.0), 0.0)
        for code, n in current.get("requests", {}).items()
    }
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    requests_served = d["latency_count"]
    mean_ms = d["latency_sum"] / requests_served * 1000 if requests_served else 0.0
    buckets = {
        le: max(n - previous.get("latency_buckets", {}).get(le, 0.0), 0.0)
        for le, n in current.get("latency_buckets", {}).items()
    }
    p95 = quantile(buckets, 0.95) * 1000 if requests_served else 0.0
    gpu = current.get("gpu_bytes")
    return {
        "batch_size": round(d["batch_sum"] / d["batch_count"]) if d["batch_count"] else 0,
        "throughput": ok / elapsed,
        "latency": mean_ms,
        "memory_mb": current.get("rss_bytes", 0.0) / 2**20,
        "gpu_memory_mb": gpu / 2**20 if gpu is not None else None,
        "cost_per_inference": price_per_hour / 3600 * elapsed / ok if ok else 0.0,
        "p95_latency": p95,
        "requests": requests_served,
        "errors": requests_served - ok,
        "capacity": d["inputs"] / d["batch_time"] if d["batch_time"] > 0 else None,
        "device": current.get("device"),
        "optimization_level": current.get("optimization_level"),
    }


def quantile(buckets: dict[str, float], q: float) -> float:
    """The q-quantile of a cumulative histogram (Prometheus' histogram_quantile: linear
    interpolation inside the bucket; the highest finite bound when it falls in +Inf)."""
    bounds = sorted((float(le), n) for le, n in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return 0.0
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower
