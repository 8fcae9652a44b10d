"""A throwaway platform for benchmarks: own Redis, SQLite, HF cache, worker and API server."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def record(
    figure: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_what: str | None = None,
    ratio: float | None = None,
    target: str | None = None,
    passed: bool | None = None,
    note: str | None = None,
) -> dict:
    """One result row for `bench/run_all.py`'s table; appended as a JSON line to the file in
    BENCH_RESULTS when that is set (a script run alone just prints, as before).

    `baseline` is measured in the same run and in the same unit as `value`; `ratio` defaults
    to value / baseline. `target` is the figure's stated target as text ("p95 < 200 ms"), and
    `passed` whether this run met it; both stay None where the figure has no target.
    """
    if ratio is None and baseline:
        ratio = value / baseline
    row = {
        "script": Path(sys.argv[0]).name,
        "status": "ok",
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_what": baseline_what,
        "ratio": ratio,
        "target": target,
        "passed": passed,
        "note": note,
    }
    _append(row)
    return row


def record_skip(figure: str, reason: str) -> dict:
    """A figure this run could not measure (e.g. no NVIDIA GPU): shown as `not run: reason`."""
    row = {"script": Path(sys.argv[0]).name, "status": "not run", "figure": figure,
           "reason": reason}  # fmt: skip
    _append(row)
    return row


def _append(row: dict) -> None:
    path = os.environ.get("BENCH_RESULTS")
    if not path:
        return
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()}  # fmt: skip
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(clean) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": percentile(values, 95), "n": len(values)}


class Platform:
    def __init__(self, worker_queues: str = "default,cpu"):
        from modelport import localredis

        self.tmp = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
        self.redis_port = localredis.free_port()
        self.redis = localredis.start_server(self.redis_port, self.tmp / "redis", persist=False)
        self.api_port = localredis.free_port()
        self.env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "DB_PATH": f"sqlite:///{self.tmp / 'bench.db'}",
            "HF_HOME": str(self.tmp / "hf"),
            "HF_HUB_OFFLINE": "1",
            "FLASK_ENV": "development",
            "OMP_NUM_THREADS": "1",
        }
        os.environ.update(self.env)
        from modelport.cli import db_upgrade
        from modelport.packaging.demo import install_demo_model

        db_upgrade(self.env["DB_PATH"])
        install_demo_model(Path(self.env["HF_HOME"]) / "hub")
        self.procs: list[subprocess.Popen] = []
        log = open(self.tmp / "procs.log", "ab")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "modelport.workers.app", "worker",
                 "--queues", worker_queues, "--concurrency", "1", "--loglevel", "WARNING",
                 "--pool", os.environ.get("BENCH_POOL", "prefork"),
                 "--without-gossip", "--without-mingle"],
                env=self.env, cwd=ROOT, stdout=log, stderr=log,
            )
        )  # fmt: skip
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1",
                 "--threads", "16", "--bind", f"127.0.0.1:{self.api_port}",
                 "--log-level", "warning", "modelport.api.wsgi:app"],
                env=self.env, cwd=ROOT, stdout=log, stderr=log,
            )
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.api_port}"
        self._wait_ready(worker_queues.split(",")[0])

    def _wait_ready(self, queue: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{self.base}/api/health", timeout=3).json()
                if health["queues"][queue] >= 1:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"platform did not start; see {self.tmp / 'procs.log'}")

    def close(self) -> None:
        from modelport import localredis

        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        localredis.stop(self.redis)
