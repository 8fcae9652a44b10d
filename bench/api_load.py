"""API throughput under concurrent clients, against a bare Flask endpoint on the same server
setup (gunicorn gthread, same workers and threads) in the same run.

    .venv/bin/python bench/api_load.py [--clients 16] [--seconds 8]

Figures: requests/s, p50 and p99 of GET /api/jobs/<id> and of a cached POST /api/generate
(answered from `files:`), each against GET /bare. The load generator shares the 2 cores
with the servers, so absolute figures understate a real deployment; the ratio is the point.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, Platform, percentile, record

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def hammer(url: str, method: str, body, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        mine = []
        while time.monotonic() < stop:
            began = time.perf_counter()
            resp = session.request(method, url, json=body, timeout=30)
            mine.append(time.perf_counter() - began)
            if resp.status_code >= 400:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50) * 1e3,
        "p99": percentile(latencies, 99) * 1e3,
        "n": len(latencies),
        "errors": errors[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    os.environ["RATE_LIMIT_SUBMISSIONS"] = "off"  # measure the API, not the limiter
    platform = Platform()
    from modelport import localredis

    bare_port = localredis.free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1",
         "--threads", "16", "--bind", f"127.0.0.1:{bare_port}", "--log-level", "warning",
         "--chdir", str(ROOT / "bench"), "_bare_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        body = {"modelUrl": MODEL, "options": {"batchSize": 8}}
        first = requests.post(f"{platform.base}/api/generate?wait=60", json=body, timeout=90)
        assert first.status_code == 200, first.text[:300]  # now cached in files:
        job = requests.post(
            f"{platform.base}/api/generate", json={"modelUrl": MODEL, "options": {"batchSize": 9}},
            timeout=30,
        ).json()  # fmt: skip
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(bare_url, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rows = [
            ("GET /api/jobs/<id>", hammer(
                f"{platform.base}/api/jobs/{job['jobId']}", "GET", None, args.clients, args.seconds
            )),
            ("POST /api/generate (cached)", hammer(
                f"{platform.base}/api/generate", "POST", body, args.clients, args.seconds
            )),
        ]  # fmt: skip
        baseline = hammer(bare_url, "GET", None, args.clients, args.seconds)
        print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, gunicorn gthread "
              "1 worker x 16 threads for both servers")  # fmt: skip
        print(f"{'figure':30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'req/s vs bare':>14}")  # fmt: skip
        for name, r in [*rows, ("GET /bare (baseline)", baseline)]:
            print(f"{name:30} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:7d} "
                  f"{r['rps'] / baseline['rps']:14.2f}")  # fmt: skip
        labels = {
            "GET /api/jobs/<id>": "`GET /api/jobs/<id>`",
            "POST /api/generate (cached)": "cached `POST /api/generate`",
        }
        for name, r in rows:
            for stat, unit in (("rps", "req/s"), ("p50", "ms"), ("p99", "ms")):
                what = unit if stat == "rps" else stat
                errors = f", {r['errors']} errors" if r["errors"] else ""
                record(
                    f"{labels[name]}, {args.clients} concurrent clients "
                    f"(gunicorn gthread 1x16): {what}",
                    r[stat],
                    unit,
                    baseline=baseline[stat],
                    baseline_what="bare Flask endpoint, same server setup",
                    note=f"{args.seconds:g} s, n={r['n']}{errors}",
                )
    finally:
        bare.send_signal(signal.SIGTERM)
        bare.wait(timeout=15)
        platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
