"""End-to-end `POST /api/generate?wait` against a raw Celery round trip, in the same run.

    .venv/bin/python bench/generate.py [--n 30]

Generation: the demo model is in the local HF cache; the `files:` cache is cleared before
each request so every request is a real job (API -> Redis -> worker -> DB -> pub/sub ->
API). Baseline: `send_task("jobs.ping").get()` through the same broker and worker.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Platform, record, summary

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    platform = Platform()
    try:
        from modelport.core.celery_app import get_celery
        from modelport.core.redis_client import get_redis

        celery = get_celery()
        cache = get_redis()
        session = requests.Session()
        body = {"modelUrl": MODEL, "options": {"batchSize": 8}}

        def generate() -> float:
            cache.delete(f"files:{MODEL}")
            start = time.perf_counter()
            resp = session.post(f"{platform.base}/api/generate?wait=30", json=body, timeout=60)
            elapsed = time.perf_counter() - start
            if resp.status_code != 200:
                raise RuntimeError(f"generate answered {resp.status_code}: {resp.text[:300]}")
            return elapsed

        def cached() -> float:
            start = time.perf_counter()
            resp = session.post(f"{platform.base}/api/generate", json=body, timeout=60)
            elapsed = time.perf_counter() - start
            assert resp.status_code == 200
            return elapsed

        def ping() -> float:
            start = time.perf_counter()
            assert celery.send_task("jobs.ping").get(timeout=30) == "pong"
            return time.perf_counter() - start

        for _ in range(3):  # warm the worker's imports and the API's connections
            generate(), ping()
        rows = []
        gen, base = [], []
        for _ in range(args.n):  # interleaved so both see the same machine state
            gen.append(generate())
            base.append(ping())
        hits = [cached() for _ in range(args.n)]
        rows.append(("POST /api/generate?wait (job)", summary(gen), summary(base)))
        rows.append(("POST /api/generate (files: cache hit)", summary(hits), summary(base)))
        print(f"{'figure':40} {'median ms':>10} {'p95 ms':>8} {'baseline median':>16} "
              f"{'baseline p95':>13} {'ratio (median)':>15}")  # fmt: skip
        for name, value, baseline in rows:
            print(
                f"{name:40} {value['median'] * 1e3:10.1f} {value['p95'] * 1e3:8.1f} "
                f"{baseline['median'] * 1e3:16.1f} {baseline['p95'] * 1e3:13.1f} "
                f"{value['median'] / baseline['median']:15.2f}"
            )
        print("baseline: raw Celery round trip of a no-op task (jobs.ping) on the same worker")
        what = "Celery no-op round trip (jobs.ping)"
        for (name, value, baseline), label in zip(
            rows, ("as a job, `files:` cache cleared", "answered from `files:`"), strict=True
        ):
            for stat in ("median", "p95"):
                record(
                    f"`{name.split(' (')[0]}` {label}: {stat}",
                    value[stat] * 1e3,
                    "ms",
                    baseline=baseline[stat] * 1e3,
                    baseline_what=what,
                    note=f"n={value['n']}",
                )
    finally:
        platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
