"""The served path: the bundle's own HTTP server, driven at several concurrency levels.

What users call is not `engine.predict` but `run_inference.py --serve`: HTTP, JSON, the
dynamic batcher and its delay. After the in-process sweep, the worker renders the bundle of
the configuration it measured (level, device, the chosen batch size as the server's maximum
batch size), starts its server on a free loopback port with the weights it already has
(MODEL_PATH, HF_HUB_OFFLINE=1, the sweep's torch threads) and, as perf_analyzer drives
Triton, sends one-input requests from `c` concurrent keep-alive clients for each `c` asked:
`warmup` untimed then `iterations` timed requests per client (at most MAX_WARMUP and
MAX_REQUESTS / c). Per level: requests/s (one
sample each), latency mean/p50/p95/p99 per request, errors. Against the in-process figures of
the same run: the p50 the server adds to a single-input predict at concurrency 1, and the best
served throughput over the best in-process throughput at batch sizes up to the server's.

With `batchDelaysMs`, the bundle is served once per batching delay (how long its batcher
lets a batch fill under load) and driven the same way; the delay with the highest served
throughput under the p95 objective is reported, and becomes the recommendation's
`maxBatchDelayMs` (Triton Model Analyzer searches `max_queue_delay_microseconds` likewise).

The load generator shares the machine with the server (threads in the worker process, mostly
waiting on sockets), as perf_analyzer does when run beside the server.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.inputs import QUESTION, SENTENCE
from modelport.benchmarking.modelcache import LoadedModel
from modelport.benchmarking.report import BatchResult, LatencyStats
from modelport.core.errors import BenchmarkFailed
from modelport.packaging.facts import ModelFacts

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
MAX_REQUESTS = 2000  # timed requests per concurrency level, at most
MAX_WARMUP = 5  # untimed requests per client, at most
LABELS = ["animals", "politics", "sports"]
# The runtime's environment overrides of module.yaml: the worker's own must not leak into the
# server it measures (MODEL_PATH is set to the worker's weights).
RUNTIME_OVERRIDES = frozenset({
    "MODEL_ID", "MODEL_REVISION", "MAX_BATCH_SIZE", "MAX_BATCH_DELAY_MS", "PORT", "HOST",
    "MODULE_YAML",
})  # fmt: skip


def measure_served(
    facts: ModelFacts,
    config: BenchmarkConfig,
    loaded: LoadedModel,
    model_folder: str,
    *,
    batch_size: int,
    concurrency: list[int],
    threads: int,
    rows: list[BatchResult],
    delays: list[int] | None = None,
    slo_ms: float | None = None,
) -> dict[str, Any]:
    """Serve the measured configuration and drive it; the additive `served` section. With
    `delays`, one server per batching delay, each driven at every concurrency, and the delay
    chosen (choose_delay) is the one the section reports, with `delays[]` beside it."""
    body, content_type = request_body(loaded, config.sequence_length, config.max_new_tokens)
    runs = [
        serve_at(
            facts, config, model_folder, body, content_type,
            batch_size=batch_size, concurrency=concurrency, threads=threads, delay=delay,
        )
        for delay in (delays or [None])
    ]  # fmt: skip
    chosen, sentence = choose_delay(runs, slo_ms) if delays else (runs[0], None)
    section = {"maxBatchSize": batch_size, **chosen, **overhead(chosen["levels"], rows, batch_size)}
    if delays:
        section["delays"] = [summarize_delay(run, slo_ms) for run in runs]
        section["delaySentence"] = sentence
    return section


def serve_at(
    facts: ModelFacts,
    config: BenchmarkConfig,
    model_folder: str,
    body: bytes,
    content_type: str,
    *,
    batch_size: int,
    concurrency: list[int],
    threads: int,
    delay: int | None,
) -> dict[str, Any]:
    """The bundle rendered for this configuration (and batching delay), served and driven at
    each concurrency: {maxDelayMs, readyS, levels}."""
    from modelport.packaging.bundle import render_bundle
    from modelport.packaging.options import GenerateOptions

    options = GenerateOptions(
        batchSize=batch_size,
        gpu=config.device == "cuda",
        optimizationLevel=config.optimization_level,
        maxBatchDelayMs=delay,
    )
    with tempfile.TemporaryDirectory(prefix="modelport-served-") as folder:
        for name, text in render_bundle(facts, options).items():
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        with BundleProcess(Path(folder) / "run_inference.py", model_folder, threads) as server:
            started = time.perf_counter()
            server.wait_ready(READY_TIMEOUT_S)
            ready_s = time.perf_counter() - started
            server.expect(
                model=facts.repo_id, optimizationLevel=config.optimization_level,
                maxBatchSize=batch_size, maxDelayMs=options.max_delay_ms,
            )  # fmt: skip
            levels = [
                drive(
                    server.url, body, content_type, c, min(config.warmup, MAX_WARMUP),
                    max(1, min(config.iterations, MAX_REQUESTS // c)),
                )
                for c in concurrency
            ]  # fmt: skip
            after = server.metrics()
    return {"maxDelayMs": options.max_delay_ms, "readyS": round(ready_s, 2), "levels": levels,
            **after}  # fmt: skip


def best_throughput(levels: list[dict[str, Any]], slo_ms: float | None) -> float | None:
    """The highest requests/s among the error-free levels whose p95 meets the objective."""
    ok = [
        level["throughput"]
        for level in levels
        if level["throughput"] and not level["errors"]
        and (slo_ms is None or level["latencyMs"]["p95"] <= slo_ms)
    ]  # fmt: skip
    return max(ok, default=None)


def worst_p95(levels: list[dict[str, Any]]) -> float:
    return max((level["latencyMs"]["p95"] for level in levels if level["latencyMs"]),
               default=math.inf)  # fmt: skip


def summarize_delay(run: dict[str, Any], slo_ms: float | None) -> dict[str, Any]:
    best, worst = best_throughput(run["levels"], slo_ms), worst_p95(run["levels"])
    return {**run, "bestThroughput": best, "worstP95Ms": worst if math.isfinite(worst) else None,
            "meetsObjective": best is not None}  # fmt: skip


def choose_delay(runs: list[dict[str, Any]], slo_ms: float | None) -> tuple[dict[str, Any], str]:
    """The batching delay to ship: the highest served throughput at any concurrency whose p95
    meets `slo_ms` (without errors); on a tie the shorter delay. When no delay meets it, the
    one with the lowest worst p95, said so."""
    objective = f"p95 <= {slo_ms:g} ms" if slo_ms is not None else "no latency objective"
    scored = [(best_throughput(run["levels"], slo_ms), run) for run in runs]
    qualified = [(best, run) for best, run in scored if best is not None]
    if qualified:
        best, chosen = max(qualified, key=lambda item: (item[0], -item[1]["maxDelayMs"]))
        others = ", ".join(
            f"{run['maxDelayMs']} ms: " + (f"{b:.1f} req/s" if b is not None else "over it")
            for b, run in scored
            if run is not chosen
        )
        return chosen, (
            f"batching delay {chosen['maxDelayMs']} ms serves the most: {best:.1f} req/s "
            f"({objective}); {others}"
        )
    chosen = min(runs, key=lambda run: (worst_p95(run["levels"]), run["maxDelayMs"]))
    return chosen, (
        f"no batching delay met {objective}: {chosen['maxDelayMs']} ms came closest "
        f"(worst p95 {worst_p95(chosen['levels']):.1f} ms)"
    )


def overhead(levels: list[dict[str, Any]], rows: list[BatchResult], batch_size: int) -> dict:
    """What the server costs against the in-process figures of the same run."""
    measured = {r.batch_size: r for r in rows if r.measured}
    served = [level for level in levels if level["throughput"]]
    out: dict[str, Any] = {"addedP50Ms": None, "throughputVsInProcess": None}
    single = next((level for level in served if level["concurrency"] == 1), None)
    one = measured.get(1)
    if single is not None and one is not None and one.latency is not None:
        out["addedP50Ms"] = single["latencyMs"]["p50"] - one.latency.p50
    best_in = max(
        (r.throughput or 0.0 for size, r in measured.items() if size <= batch_size), default=0.0
    )
    if served and best_in > 0:
        out["throughputVsInProcess"] = max(level["throughput"] for level in served) / best_in
    return out


def request_body(loaded: LoadedModel, length: int, max_new_tokens: int) -> tuple[bytes, str]:
    """One input for the task, about `length` tokens long (images: the processor's size)."""
    import json

    if loaded.kind == "image":
        return _png(loaded), "image/png"
    text = text_of_length(loaded.processor, length)
    task = loaded.task
    payload: dict[str, Any] = {"inputs": text}
    if task == "question-answering":
        payload = {"inputs": {"question": QUESTION, "context": text}}
    elif task == "zero-shot-classification":
        payload["parameters"] = {"candidate_labels": LABELS}
    elif task == "fill-mask":
        mask = getattr(loaded.processor, "mask_token", None) or "[MASK]"
        payload["inputs"] = f"{text} {mask}."
    elif loaded.generative:
        payload["parameters"] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    return json.dumps(payload).encode(), "application/json"


def text_of_length(tokenizer: Any, length: int) -> str:
    """Text that tokenizes to about `length` tokens with the special tokens added."""
    ids = tokenizer(SENTENCE * (length // 8 + 2), add_special_tokens=False)["input_ids"]
    return str(tokenizer.decode(ids[: max(1, length - 2)])).strip()


def _png(loaded: LoadedModel) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def drive(
    url: str, body: bytes, content_type: str, concurrency: int, warmup: int, count: int
) -> dict[str, Any]:
    """`concurrency` keep-alive clients, each `warmup` untimed then `count` timed requests."""
    import requests

    spans: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def client() -> None:
        with requests.Session() as session:
            headers = {"Content-Type": content_type}

            def send() -> float | None:
                began = time.perf_counter_ns()
                try:
                    answer = session.post(url, data=body, headers=headers,
                                          timeout=REQUEST_TIMEOUT_S)  # fmt: skip
                except requests.RequestException as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    return None
                took = (time.perf_counter_ns() - began) / 1e6
                if answer.status_code != 200:
                    with lock:
                        errors.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
                    return None
                return took

            for _ in range(warmup):
                send()
            start.wait()
            mine = [t for t in (send() for _ in range(count)) if t is not None]
            with lock:
                spans.extend(mine)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    level: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(spans),
        "errors": len(errors),
        "throughput": len(spans) / seconds if spans and seconds > 0 else None,
        "latencyMs": LatencyStats.from_samples(spans).to_dict() if spans else None,
    }
    if errors:
        level["firstError"] = errors[0]
    return level


class BundleProcess:
    """`python run_inference.py --serve` on a free loopback port, in its own process group."""

    def __init__(self, script: Path, model_folder: str, threads: int) -> None:
        from modelport.localredis import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = script.parent / "server.log"
        env = {
            **{k: v for k, v in os.environ.items() if k not in RUNTIME_OVERRIDES},
            "MODEL_PATH": model_folder,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, script.name, "--serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                cwd=script.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def __enter__(self) -> BundleProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchmarkFailed(
                    f"the bundle's server exited with {self.proc.returncode} before it was "
                    f"ready: {self.tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        raise BenchmarkFailed(f"the bundle's server was not ready within {timeout:g} s")

    def expect(self, **settings: Any) -> None:
        """The server runs what was rendered (its /health says so), or nothing is measured.
        Also catches another server answering on the port (free_port's race): ours exited."""
        import requests

        if self.proc.poll() is not None:
            raise BenchmarkFailed(f"the bundle's server exited: {self.tail()}")
        health = requests.get(self.url + "/health", timeout=10).json()
        wrong = {k: health.get(k) for k, v in settings.items() if health.get(k) != v}
        if wrong:
            raise BenchmarkFailed(f"the bundle's server runs {wrong}, not {settings}")

    def metrics(self) -> dict[str, float | None]:
        """From the server's own /metrics after the load: its resident memory (what this
        configuration costs in a container, without the worker's other models) and the mean
        inputs per model batch (how well the batcher filled batches)."""
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        values: dict[str, float] = {}
        with contextlib.suppress(requests.RequestException, ValueError):
            text = requests.get(self.url + "/metrics", timeout=10).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    values.setdefault(sample.name, sample.value)
        rss = values.get("process_resident_memory_bytes")
        batches = values.get("modelport_batch_size_count")
        inputs = values.get("modelport_batch_size_sum")
        return {
            "serverMemoryMb": round(rss / 2**20, 1) if rss else None,
            "meanBatchSize": round(inputs / batches, 2) if batches and inputs else None,
        }

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            return lines[-1][:300] if lines else "(no output)"
        return "(no output)"

    def stop(self) -> None:
        """SIGTERM (the server drains), then SIGKILL for the whole group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
