"""What does a bundle's HTTP server cost? all-MiniLM-L6-v2 on CPU: the generated bundle's
`run_inference.py --serve` against its bare engine (`load_engine` + `engine.predict`,
in-process) on the same model folder, with the same torch threads, in the same run.

    .venv/bin/python bench/bundle_server.py [--threads 2] [--bare-seconds 3]
        [--requests 1000] [--seconds 20] [--max-batch 0] [--no-litserve]

1. Bare engine: samples/s of `engine.predict` at batch sizes 1, 8, 16, 32 and 64 of fixed
   12-word sentences; the latency of a single-input predict (p50, p95, p99).
2. Server (max batch size = the bare engine's best batch size unless --max-batch says, batch
   delay the bundle's default 5 ms), every request one input, over keep-alive connections
   from one asyncio client (a single thread, so the load generator takes as little of the
   CPUs the server needs as it can; it still shares them):
   a) one client, sequential requests: p50/p95/p99 and req/s; the p50 the server adds over a
      bare single-input predict (target <= 2 ms);
   b) 8 and 64 concurrent clients for --seconds each: req/s, p50/p95/p99; 64 clients' req/s
      against the bare engine's best samples/s (target >= 0.9x);
   c) the server's batch sizes per phase, from the `modelport_batch_size` histogram.
3. LitServe (bench/_litserve_app.py: the same engine, loaded the same way, with LitServe's
   own batching at the bundle server's max batch size and delay, one inference worker, one
   API server, the same torch threads), started after the bundle server stopped: the same
   1-, 8- and 64-client loads; req/s and p50 against the bundle server's in this run
   (ratio = LitServe / bundle; no target). --no-litserve skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, percentile, record

sys.path.insert(0, str(ROOT))  # tests.packaging.bundle_servers renders and runs the bundle
BATCH_SIZES = [1, 8, 16, 32, 64]
CONCURRENCY = [8, 64]
HOST = "127.0.0.1"
ADDED_P50_TARGET_MS = 2.0
THROUGHPUT_TARGET = 0.9
LITSERVE_APP = Path(__file__).resolve().parent / "_litserve_app.py"
LITSERVE_STOP_S = 10.0  # SIGTERM to the process group, then SIGKILL


# ---------------------------------------------------------------- inputs


def sentences(count: int = 64) -> list[str]:
    """`count` different 12-word sentences, the same on every run."""
    rng = random.Random(0)
    adjectives = ["quiet", "bright", "old", "small", "heavy", "green", "busy", "cold"]
    nouns = ["fox", "train", "teacher", "river", "garden", "engine", "market", "violin"]
    verbs = ["passes", "follows", "watches", "crosses", "reaches", "leaves", "joins", "finds"]
    places = ["station", "bridge", "harbour", "library", "village", "meadow", "castle", "school"]
    out: list[str] = []
    for _ in range(count):
        a, b = rng.sample(adjectives, 2)
        n1, n2 = rng.sample(nouns, 2)
        out.append(
            f"The {a} {n1} {rng.choice(verbs)} the {b} {n2} near "
            f"the {rng.choice(places)} every morning."
        )
    return out


# ---------------------------------------------------------------- bare engine


@dataclass
class Bare:
    samples_per_s: dict[int, float]
    single_ms: list[float]  # each batch-1 predict, milliseconds

    @property
    def best_batch(self) -> int:
        return max(self.samples_per_s, key=lambda size: self.samples_per_s[size])

    @property
    def best(self) -> float:
        return self.samples_per_s[self.best_batch]


def measure_bare(manifest: Path, model_folder: Path, threads: int, seconds: float) -> Bare:
    """engine.predict in this process: each batch size for about `seconds` after a warm-up."""
    from modelport.runtime.backend import set_threads
    from modelport.runtime.config import load_manifest
    from modelport.runtime.engine import load_engine

    set_threads(threads)
    config = load_manifest(manifest).with_env({})
    engine = load_engine(config, str(model_folder))
    params = engine.Parameters()
    texts = [engine.check(text, params) for text in sentences()]
    samples_per_s: dict[int, float] = {}
    single_ms: list[float] = []
    with engine.backend.running():
        for size in BATCH_SIZES:
            items = texts[:size]
            for _ in range(3):
                engine.predict(items, params)
            calls: list[float] = []
            began = time.perf_counter()
            least = 30 if size == 1 else 5  # batch 1 also gives the single-input percentiles
            while time.perf_counter() - began < seconds or len(calls) < least:
                start = time.perf_counter()
                outputs = engine.predict(items, params)
                calls.append(time.perf_counter() - start)
                assert len(outputs) == size
            samples_per_s[size] = size * len(calls) / sum(calls)
            if size == 1:
                single_ms = [c * 1e3 for c in calls]
    del engine
    gc.collect()
    return Bare(samples_per_s, single_ms)


# ---------------------------------------------------------------- HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs
    far less CPU per request than requests or http.client in threads."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST / HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"no Content-Length in the response: {lines}")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Load:
    clients: int
    latencies_ms: list[float]
    errors: list[str]
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def bodies() -> list[bytes]:
    return [json.dumps({"inputs": text}).encode() for text in sentences()]


async def _client(
    conn: Connection,
    payloads: list[bytes],
    offset: int,
    stop: Callable[[int], bool],
    measure_from: float,
    out: Load,
) -> None:
    sent = 0
    while not stop(sent):
        body = payloads[(offset + sent) % len(payloads)]
        began = time.perf_counter()
        status, data = await conn.post(body)
        sent += 1
        if status != 200:
            out.errors.append(f"{status}: {data[:200]!r}")
        elif began >= measure_from:
            out.latencies_ms.append((time.perf_counter() - began) * 1e3)


async def sequential(port: int, count: int, warmup: int) -> Load:
    """One client, `count` single-input requests one after another (after `warmup`)."""
    payloads = bodies()
    conn = Connection(port)
    await conn.open()
    try:
        out = Load(1, [], [], 0.0)
        await _client(conn, payloads, 0, lambda sent: sent >= warmup, float("inf"), out)
        began = time.perf_counter()
        await _client(conn, payloads, warmup, lambda sent: sent >= count, began, out)
        out.seconds = time.perf_counter() - began
        return out
    finally:
        conn.close()


async def concurrent(port: int, clients: int, seconds: float, warmup_s: float) -> Load:
    """`clients` connections each sending single-input requests back to back for
    `warmup_s` + `seconds`; requests started in the last `seconds` count."""
    payloads = bodies()
    conns = [Connection(port) for _ in range(clients)]
    await asyncio.gather(*(conn.open() for conn in conns))
    try:
        out = Load(clients, [], [], seconds)
        measure_from = time.perf_counter() + warmup_s
        end = measure_from + seconds

        def stop(sent: int) -> bool:
            return time.perf_counter() >= end

        await asyncio.gather(
            *(
                _client(conn, payloads, i * 7, stop, measure_from, out)
                for i, conn in enumerate(conns)
            )
        )
        return out
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------------------- /metrics


def batch_histogram(url: str) -> dict[str, float]:
    """modelport_batch_size: cumulative count per bucket ("1.0" ... "+Inf"), plus sum and count."""
    text = requests.get(url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'modelport_batch_size_bucket\{le="([^"]+)"\} (\S+)', line)
        if match:
            out[match.group(1)] = float(match.group(2))
        match = re.match(r"modelport_batch_size_(sum|count) (\S+)", line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


def histogram_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


def describe_histogram(delta: dict[str, float]) -> str:
    """Batches per size range, e.g. "1: 12, 2-4: 3, 5-8: 40"."""
    edges = sorted((float(k), k) for k in delta if k not in ("sum", "count", "+Inf"))
    parts, previous_edge, previous_count = [], 0.0, 0.0
    for edge, key in edges:
        batches = delta[key] - previous_count
        low = int(previous_edge) + 1
        label = f"{int(edge)}" if low == int(edge) else f"{low}-{int(edge)}"
        if batches:
            parts.append(f"{label}: {batches:.0f}")
        previous_edge, previous_count = edge, delta[key]
    overflow = delta.get("+Inf", 0.0) - previous_count
    if overflow:
        parts.append(f">{int(previous_edge)}: {overflow:.0f}")
    return ", ".join(parts) or "no batches"


def mean_batch(delta: dict[str, float]) -> float:
    return delta["sum"] / delta["count"] if delta.get("count") else float("nan")


# ---------------------------------------------------------------- LitServe


def group_members(pgid: int) -> list[str]:
    """Live (not zombie) processes in process group `pgid`, as "pid name"."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        state, _ppid, group = text[text.rfind(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            out.append(f"{stat.parent.name} {name}")
    return out


class LitServeServer:
    """bench/_litserve_app.py in a new process group (LitServe forks and spawns a Manager, an
    inference worker and an API server), on 127.0.0.1 and a free port; its output in
    `log_path`."""

    def __init__(
        self, bundle: Path, model: Path, threads: int, max_batch: int, delay_s: float
    ) -> None:
        from tests.packaging.bundle_servers import free_port

        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = bundle / f"litserve-{self.port}.log"
        self._log = self.log_path.open("w")
        environ = {
            **os.environ,  # HF_HOME, HF_HUB_OFFLINE... as isolate_hf_cache set them
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(LITSERVE_APP), "--bundle", str(bundle), "--model", str(model),
             "--port", str(self.port), "--threads", str(threads), "--max-batch", str(max_batch),
             "--batch-timeout", str(delay_s)],
            stdout=self._log, stderr=subprocess.STDOUT, env=environ, cwd=bundle,
            start_new_session=True,
        )  # fmt: skip
        self.pgid = self.proc.pid

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Until GET /health answers 200 (the inference worker has loaded the engine)."""
        from tests.packaging.bundle_servers import wait_until_ok

        wait_until_ok(self.url + "/health", self.proc, self.log, timeout)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-6000:]

    def stop(self) -> list[str]:
        """SIGTERM to the whole group, SIGKILL to the group for what is left after
        LITSERVE_STOP_S; the processes that needed SIGKILL ("pid name")."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + LITSERVE_STOP_S
        while group_members(self.pgid) and time.monotonic() < deadline:
            self.proc.poll()  # reaps the leader once it exits
            time.sleep(0.1)
        killed = group_members(self.pgid)
        if killed:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"LitServe (pid {self.proc.pid}) survived SIGKILL") from None
        finally:
            self._log.close()
        deadline = time.monotonic() + 10
        while group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = group_members(self.pgid)
        if left:
            raise RuntimeError(f"LitServe processes survived SIGKILL: {left}")
        return killed


def report_litserve(load: Load, bundle: Load) -> None:
    ratio = load.rps / bundle.rps if bundle.rps else float("nan")
    print(
        f"\nLitServe, {load.clients} client{'s' if load.clients > 1 else ''}, "
        f"{len(load.latencies_ms)} requests: {load.rps:.1f} req/s ({ratio:.2f}x the bundle "
        f"server's {bundle.rps:.1f}), p50 {load.p(50):.2f} ms (bundle {bundle.p(50):.2f} ms), "
        f"p95 {load.p(95):.2f} ms, p99 {load.p(99):.2f} ms"
    )
    suffix = "1 client" if load.clients == 1 else f"{load.clients} clients"
    record(
        f"LitServe throughput, {suffix}",
        load.rps,
        "req/s",
        baseline=bundle.rps,
        baseline_what="bundle server, same run",
    )
    record(
        f"LitServe latency p50, {suffix}",
        load.p(50),
        "ms",
        baseline=bundle.p(50),
        baseline_what="bundle server, same run",
    )


def report_comparison(litserve: dict[int, Load], bundle: dict[int, Load]) -> None:
    print("\nLitServe against the bundle server (same engine, threads, max batch and delay):")
    print(f"  {'clients':>7}  {'bundle req/s':>12}  {'LitServe req/s':>14}  {'ratio':>5}  "
          f"{'bundle p50':>10}  {'LitServe p50':>12}")  # fmt: skip
    for clients, load in litserve.items():
        base = bundle[clients]
        print(
            f"  {clients:>7}  {base.rps:>12.1f}  {load.rps:>14.1f}  "
            f"{load.rps / base.rps if base.rps else float('nan'):>5.2f}  "
            f"{base.p(50):>7.2f} ms  {load.p(50):>9.2f} ms"
        )


def run_litserve(
    bundle: Path, model: Path, args: argparse.Namespace, served: ServerRun
) -> list[str]:
    """Phase 3: the same loads against LitServe, always stopped (the whole process group);
    what went wrong (empty: nothing)."""
    max_batch = int(served.info["maxBatchSize"])
    delay_s = float(served.info["maxDelayMs"]) / 1e3
    server = LitServeServer(bundle, model, args.threads, max_batch, delay_s)
    problems: list[str] = []
    loads: dict[int, Load] = {}
    serving_log = ""
    try:
        server.wait_ready()
        print(
            f"\nLitServe: max batch {max_batch}, batch timeout {delay_s * 1e3:g} ms, "
            "1 inference worker, 1 API server"
        )
        seq = asyncio.run(sequential(server.port, args.requests, max(10, args.requests // 10)))
        loads[1] = seq
        report_litserve(seq, served.loads[1])
        for clients in CONCURRENCY:
            warmup_s = min(2.0, args.seconds / 4)
            load = asyncio.run(concurrent(server.port, clients, args.seconds, warmup_s))
            loads[clients] = load
            report_litserve(load, served.loads[clients])
        report_comparison(loads, served.loads)
        errors = [error for load in loads.values() for error in load.errors]
        if errors:
            problems.append(f"LitServe: {len(errors)} failed requests, e.g. {errors[:3]}")
    except RuntimeError as exc:
        problems.append(f"LitServe did not serve: {str(exc)[:3000]}")
    finally:
        serving_log = server.log_path.read_text()
        try:
            killed = server.stop()
            if killed:
                print(f"\nLitServe: SIGKILL for what SIGTERM left: {killed}")
        except RuntimeError as exc:
            problems.append(str(exc))
        log = server.log_path.read_text()
        pattern = r"\b(WARNING|ERROR|CRITICAL|Traceback)\b"
        noted = [line for line in serving_log.splitlines() if re.search(pattern, line)]
        stopping = [
            line for line in log[len(serving_log) :].splitlines() if re.search(pattern, line)
        ]
        if noted:
            print(f"\nLitServe log while serving: {len(noted)} warning/error lines")
            print("\n".join(f"  {line}" for line in noted[:20]))
        if stopping:
            print(f"LitServe log while stopping: {len(stopping)} warning/error lines")
            print("\n".join(f"  {line}" for line in stopping[:10]))
        problems += [f"LitServe: {line}" for line in noted if "WARNING" not in line]
    return problems


# ---------------------------------------------------------------- main


def isolate_hf_cache() -> Path:
    """A private, offline HF_HOME (hub/ inside) for this process and the server it starts;
    set before huggingface_hub, transformers or onnxruntime are imported."""
    home = Path(tempfile.mkdtemp(prefix="modelport-bench-bundle-"))
    (home / "hub").mkdir()
    os.environ.update(
        HF_HOME=str(home),
        HF_HUB_CACHE=str(home / "hub"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        ORT_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return home


def report_bare(bare: Bare, threads: int) -> None:
    single = bare.single_ms
    print(f"bare engine, {threads} threads:")
    for size, rate in bare.samples_per_s.items():
        print(f"  batch {size:3}: {rate:8.1f} samples/s")
        record(
            f"bare engine throughput, batch {size}",
            rate,
            "samples/s",
            note=f"engine.predict, {threads} threads",
        )
    print(f"  best: batch {bare.best_batch}, {bare.best:.1f} samples/s")
    print(
        f"  single input ({len(single)} calls): p50 {percentile(single, 50):.2f} ms, "
        f"p95 {percentile(single, 95):.2f} ms, p99 {percentile(single, 99):.2f} ms"
    )
    record("bare engine single-input latency p50", percentile(single, 50), "ms")


def report_sequential(seq: Load, bare: Bare) -> None:
    single_p50 = percentile(bare.single_ms, 50)
    added = seq.p(50) - single_p50
    print(
        f"\n1 client, {len(seq.latencies_ms)} requests: {seq.rps:.1f} req/s, "
        f"p50 {seq.p(50):.2f} ms, p95 {seq.p(95):.2f} ms, p99 {seq.p(99):.2f} ms"
    )
    print(f"  added by the server at p50: {added:+.2f} ms (target <= {ADDED_P50_TARGET_MS:g} ms)")
    for q in (50, 95, 99):
        record(
            f"server latency p{q}, 1 client",
            seq.p(q),
            "ms",
            baseline=percentile(bare.single_ms, q),
            baseline_what="bare single-input predict",
        )
    record(
        "server throughput, 1 client",
        seq.rps,
        "req/s",
        baseline=1e3 * len(bare.single_ms) / sum(bare.single_ms),
        baseline_what="bare single-input predicts/s",
    )
    record(
        "server p50 added over the bare engine, 1 client",
        added,
        "ms",
        target=f"<= {ADDED_P50_TARGET_MS:g} ms",
        passed=added <= ADDED_P50_TARGET_MS,
        note=f"server {seq.p(50):.2f} ms - bare {single_p50:.2f} ms",
    )


def report_concurrent(load: Load, bare: Bare, max_batch: int) -> None:
    ratio = load.rps / bare.best
    print(
        f"\n{load.clients} clients, {len(load.latencies_ms)} requests in {load.seconds:g} s: "
        f"{load.rps:.1f} req/s ({ratio:.2f}x the bare best), p50 {load.p(50):.1f} ms, "
        f"p95 {load.p(95):.1f} ms, p99 {load.p(99):.1f} ms"
    )
    targeted = load.clients == max(CONCURRENCY)
    record(
        f"server throughput, {load.clients} clients",
        load.rps,
        "req/s",
        baseline=bare.best,
        baseline_what=f"bare engine best, batch {bare.best_batch} (samples/s)",
        target=f">= {THROUGHPUT_TARGET:g}x" if targeted else None,
        passed=ratio >= THROUGHPUT_TARGET if targeted else None,
        note=f"max batch {max_batch}, 1 input per request",
    )
    for q in (50, 95, 99):
        record(f"server latency p{q}, {load.clients} clients", load.p(q), "ms")


def report_batches(histograms: list[tuple[str, dict[str, float]]]) -> None:
    print("\nbatch sizes per phase (batches per size, from /metrics modelport_batch_size):")
    for (_, before), (phase, after) in itertools.pairwise(histograms):
        delta = histogram_delta(before, after)
        mean = mean_batch(delta)
        print(
            f"  {phase:>10}: {delta.get('count', 0):.0f} batches, mean {mean:.1f}; "
            f"{describe_histogram(delta)}"
        )
        record(f"server mean batch size, {phase}", mean, "inputs")


@dataclass
class ServerRun:
    problems: list[str]  # what went wrong (empty: nothing)
    loads: dict[int, Load]  # by clients: 1, then CONCURRENCY
    info: dict  # the server's /health: maxBatchSize, maxDelayMs, runtime


def run_server(script: Path, args: argparse.Namespace, bare: Bare) -> ServerRun:
    """Phases 2a-c against one server, always stopped."""
    from tests.packaging.bundle_servers import BundleServer

    max_batch = args.max_batch or bare.best_batch
    threads = str(args.threads)
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "MAX_BATCH_SIZE": str(max_batch)}
    server = BundleServer(script, env=env)
    problems: list[str] = []
    loads: dict[int, Load] = {}
    info: dict = {}
    try:
        info = server.wait_ready()
        print(
            f"\nserver: max batch {info['maxBatchSize']}, delay {info['maxDelayMs']} ms, "
            f"{info['runtime']}"
        )
        histograms = [("start", batch_histogram(server.url))]
        seq = asyncio.run(sequential(server.port, args.requests, max(10, args.requests // 10)))
        histograms.append(("1 client", batch_histogram(server.url)))
        report_sequential(seq, bare)
        loads[1] = seq
        for clients in CONCURRENCY:
            warmup_s = min(2.0, args.seconds / 4)
            load = asyncio.run(concurrent(server.port, clients, args.seconds, warmup_s))
            histograms.append((f"{clients} clients", batch_histogram(server.url)))
            report_concurrent(load, bare, max_batch)
            loads[clients] = load
        report_batches(histograms)
        errors = [error for load in loads.values() for error in load.errors]
        record("failed requests", len(errors), "requests", target="0", passed=not errors)
        if errors:
            problems.append(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    finally:
        exit_code = server.stop()
        log = server.log_path.read_text()
        noted = [
            line
            for line in log.splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b", line)
        ]
        if noted:
            print(f"\nserver log ({server.log_path.name}): {len(noted)} warning/error lines")
            print("\n".join(f"  {line}" for line in noted[:20]))
        problems += [line for line in noted if "WARNING" not in line]
        if exit_code != 0:
            problems.append(f"the server exited with {exit_code} after SIGTERM")
    return ServerRun(problems, loads, info)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--bare-seconds", type=float, default=3.0, help="per batch size")
    parser.add_argument("--requests", type=int, default=1000, help="1-client requests")
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--max-batch", type=int, default=0, help="0: the bare best batch size")
    parser.add_argument(
        "--no-litserve", dest="litserve", action="store_false", help="skip phase 3 (LitServe)"
    )
    args = parser.parse_args()
    home = isolate_hf_cache()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    try:
        from modelport.packaging.demo import DEMO_REPO_ID, demo_model_path, install_demo_model
        from modelport.packaging.options import GenerateOptions
        from tests.fixtures.tiny_models import TinyModel
        from tests.packaging.bundle_servers import facts_for, write_bundle

        hub = home / "hub"
        commit = install_demo_model(hub)
        model = TinyModel(DEMO_REPO_ID, "sentence-similarity", commit, demo_model_path(), hub)
        script = write_bundle(home / "bundle", facts_for(model), GenerateOptions())
        bare = measure_bare(
            script.parent / "module.yaml", model.snapshot, args.threads, args.bare_seconds
        )
        report_bare(bare, args.threads)
        served = run_server(script, args, bare)
        problems = list(served.problems)
        if args.litserve and served.loads:
            problems += run_litserve(script.parent, model.snapshot, args, served)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
