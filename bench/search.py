"""Does the configuration search find what to ship? all-MiniLM-L6-v2 on this machine's CPU.

    .venv/bin/python bench/search.py [--iterations 20] [--warmup 3] [--batch-sizes 1,4,8,16,32]
        [--slo-ms 100] [--sequence-length 128] [--no-served] [--no-exhaustive]

1. The search through the API of a throwaway platform (own Redis, SQLite, CPU worker): every
   CPU level x batch size, each behind the quality gate, under a p95 objective. Prints the
   Pareto table. Figures: the recommendation's throughput against the default configuration
   (level none, batch size 1) measured in the same search (target >= 2.5x with the gate
   passed); the search's wall time (target < 600 s).
2. The same options swept again, exhaustively and independently (plain benchmarks of every
   level and batch size, twice the iterations; --no-exhaustive skips it): the best
   configuration that passes the gate and meets the objective there, against the search's
   recommendation re-measured in that sweep (target >= 0.9).
3. The recommended bundle served (servedConcurrency: its own run_inference.py server on
   loopback, started by the worker; clients = batch size and 2 x batch size): the served
   throughput against the search's in-process figure (target >= 0.9; the load generator
   shares the CPUs), at each batching delay of DELAYS_MS, the best one reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests
from _harness import Platform
from _harness import record as _record

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DELAYS_MS = [0, 5, 20]  # the served step's batching delays (5: the runtime's default)


def record(figure: str, value: float, unit: str, **kwargs) -> dict:
    """_harness.record, also printed (this script alone prints its figures)."""
    row = _record(figure, value, unit, **kwargs)
    verdict = "" if row["passed"] is None else (" met" if row["passed"] else " MISSED")
    ratio = f" = {row['ratio']:.3g}x {row['baseline_what']}" if row["ratio"] else ""
    print(f"{figure}: {value:,.1f} {unit}{ratio} (target {row['target']}:{verdict})", flush=True)
    return row


def run_search(platform, body: dict) -> dict:
    """POST /api/benchmark (a search) and follow the job to its answer."""
    resp = requests.post(f"{platform.base}/api/benchmark", json=body, timeout=60)
    job = resp.json()
    if resp.status_code != 202:
        raise SystemExit(f"search answered {resp.status_code}: {job}")
    while job["status"] in ("queued", "running"):
        url = f"{platform.base}/api/jobs/{job['jobId']}?wait=60"
        job = requests.get(url, timeout=90).json()
    if job["status"] != "succeeded":
        raise SystemExit(f"search {job['status']}: {job.get('error')}")
    return job


def table(search) -> None:
    print("\n| level | batch | samples/s | p95 ms | peak MiB | USD/1M | quality | Pareto | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in search["configurations"]:
        q = c["quality"]
        quality = q["metric"] if q["metric"] == "reference" else f"{q['metric']} {q['value']:.4f}"
        mark = "**recommended**" if c["recommended"] else "; ".join(c["rejectedBecause"])
        print(
            f"| {c['optimizationLevel']} | {c['batchSize']} | {c['throughput']:.1f} | "
            f"{c['latencyP95Ms']:.1f} | {c['memoryMb']:.0f} | {c['costPerMillion']:.3f} | "
            f"{quality} | {'yes' if c['pareto'] else ''} | {mark} |"
        )
    print(f"\n{search['sentence']}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--slo-ms", type=float, default=100.0)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--no-served", action="store_true")
    parser.add_argument(
        "--no-exhaustive",
        action="store_true",
        help="skip step 2 (it takes about twice the search's time)",
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    os.environ["MAX_CPU_CORES"] = str(os.cpu_count() or 1)
    platform = Platform(worker_queues="cpu")
    try:
        body = {"modelId": MODEL, "batchSizes": sizes, "iterations": args.iterations,
                "warmup": args.warmup, "sequenceLength": args.sequence_length, "device": "cpu",
                "latencySloMs": args.slo_ms, "search": True}  # fmt: skip
        print(f"search: batch sizes {sizes}, sequence length {args.sequence_length}, p95 "
              f"objective {args.slo_ms:g} ms", flush=True)  # fmt: skip
        began = time.perf_counter()
        job = run_search(platform, body)
        seconds = time.perf_counter() - began
        search = job["result"]["search"]
        table(search)
        rec, default = search["recommended"], search["default"]
        options = rec["options"]
        record(
            "search: recommended / default (none, batch 1) throughput",
            rec["throughput"], "samples/s", baseline=default["throughput"],
            baseline_what="level none, batch 1, same search", target=">= 2.5x, gate passed",
            passed=rec["throughput"] >= 2.5 * default["throughput"],
            note=f"{options}; meets every requirement: {rec['meetsRequirements']}",
        )  # fmt: skip
        record("search: worker time", seconds, "s", target="< 600 s", passed=seconds < 600,
               note=f"{len(search['levels'])} levels x {len(sizes)} batch sizes")  # fmt: skip

        skipped = [f"{s['optimizationLevel']} {s['batchSize']}" for s in search["notRun"]]
        print("not run (over 1.5x the objective): " + (", ".join(skipped) or "none"))

        if not args.no_exhaustive:
            exhaustive(platform, body, search["levels"], args, options)
        if not args.no_served:
            serve_pick(platform, body, args, rec, options)
    finally:
        platform.close()
    return 0


def exhaustive(platform, body: dict, levels: list[str], args, options: dict) -> None:
    """Every level measured again at every batch size by plain benchmarks (no early stop),
    twice the iterations: the best configuration that passes, against the search's pick."""
    print("exhaustive sweep of the same options, twice the iterations:", flush=True)
    rows = []
    for level in levels:
        job = run_search(platform, {**body, "search": False, "optimizationLevel": level,
                                    "iterations": 2 * args.iterations})  # fmt: skip
        passed = (job["result"].get("quality") or {}).get("passed") is not False
        for row in job["result"].get("details") or []:
            if row.get("throughput") and row.get("latencyMs"):
                rows.append((level, row["batchSize"], row["throughput"],
                             row["latencyMs"]["p95"], passed))  # fmt: skip
    by_key = {(level, size): fps for level, size, fps, _, _ in rows}
    remeasured = by_key[(options["optimizationLevel"], options["batchSize"])]
    fine = [r for r in rows if r[4] and r[3] <= args.slo_ms]
    level, size, best, _, _ = max(fine, key=lambda r: r[2])
    record(
        "search's pick / best passing in an exhaustive sweep", remeasured, "samples/s",
        baseline=best, baseline_what=f"{level} batch {size}, re-measured",
        target=">= 0.9", passed=remeasured >= 0.9 * best,
    )  # fmt: skip


def serve_pick(platform, body: dict, args, rec: dict, options: dict) -> None:
    """The recommended bundle served at its batch size and twice it, at each batching delay."""
    size = options["batchSize"]
    served_job = run_search(platform, {
        **body, "search": False, "optimizationLevel": options["optimizationLevel"],
        "batchSizes": [size], "iterations": max(args.iterations, 50),
        "servedConcurrency": sorted({size, 2 * size}), "batchDelaysMs": DELAYS_MS,
    })  # fmt: skip
    served = served_job["result"]["served"]
    for run in served.get("delays") or []:
        print(f"served at batching delay {run['maxDelayMs']} ms: best "
              f"{run['bestThroughput'] or 0:.1f} req/s, worst p95 {run['worstP95Ms'] or 0:.1f} "
              f"ms, mean batch {run.get('meanBatchSize')}, server RSS "
              f"{run.get('serverMemoryMb')} MB")  # fmt: skip
    print(served.get("delaySentence") or served.get("error") or "")
    for lv in served["levels"]:
        print(f"served: {lv['concurrency']} clients: {lv['throughput']:.1f} req/s, "
              f"p95 {lv['latencyMs']['p95']:.1f} ms, {lv['errors']} errors")  # fmt: skip
    best_served = max(lv["throughput"] or 0 for lv in served["levels"])
    record(
        "recommended bundle served / search's in-process figure", best_served, "req/s",
        baseline=rec["throughput"], baseline_what="the search's figure for it",
        target=">= 0.9", passed=best_served >= 0.9 * rec["throughput"],
        note=f"server max batch {size}; the load generator shares the CPUs",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
