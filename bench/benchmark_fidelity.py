"""Are the platform's benchmark figures trustworthy? all-MiniLM-L6-v2 at batch sizes 1, 8
and 32 (sequence length 128) through POST /api/benchmark on a real CPU worker, against a
plain torch loop over inputs of the same shape, in the same run, with the same threads.

    .venv/bin/python bench/benchmark_fidelity.py [--iterations 40] [--warmup 5]

Target: each ratio (platform / plain loop) within 10% of 1.0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Platform, record

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SIZES = [1, 8, 32]


def plain_loop(batch_size: int, seq: int, iterations: int, warmup: int, threads: int) -> float:
    """samples/s of SentenceTransformer's forward in a bare loop, perf_counter, no harness."""
    import torch
    from huggingface_hub import snapshot_download
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    path = snapshot_download(MODEL, local_files_only=True)
    model = SentenceTransformer(path, device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    model.eval()
    text = "the quick brown fox jumps over the lazy dog " * 60
    features = model.tokenizer(
        [text] * batch_size,
        padding="max_length",
        truncation=True,
        max_length=seq,
        return_tensors="pt",
    )
    with torch.inference_mode():
        for _ in range(warmup):
            model(dict(features))
        start = time.perf_counter()
        for _ in range(iterations):
            model(dict(features))
        elapsed = time.perf_counter() - start
    return batch_size * iterations / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sequence-length", type=int, default=128)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    os.environ["MAX_CPU_CORES"] = str(cores)
    platform = Platform(worker_queues="cpu")
    try:
        resp = requests.post(
            f"{platform.base}/api/benchmark?wait=600",
            json={
                "modelId": MODEL,
                "batchSizes": SIZES,
                "iterations": args.iterations,
                "warmup": args.warmup,
                "sequenceLength": args.sequence_length,
                "device": "cpu",
            },
            timeout=700,
        )
        body = resp.json()
        if resp.status_code == 202:  # ?wait is capped (MAX_WAIT_SECONDS): keep polling
            job = body
            while job["status"] in ("queued", "running"):
                url = f"{platform.base}/api/jobs/{job['jobId']}?wait=60"
                job = requests.get(url, timeout=90).json()
            if job["status"] != "succeeded":
                print(f"benchmark {job['status']}: {job.get('error')}")
                return 1
            resp, body = None, job["result"]
        if resp is not None and resp.status_code != 200:
            print(f"benchmark answered {resp.status_code}: {body}")
            return 1
        threads = body["device"].get("threads") or cores
        print(f"device: {body['device']}")
        print(f"{'batch':>5} {'platform samples/s':>19} {'plain loop samples/s':>21} "
              f"{'ratio':>6} {'within 10%':>10}")  # fmt: skip
        worst = 0.0
        for detail in body["details"]:
            size = detail["batchSize"]
            plain = plain_loop(
                size, args.sequence_length, args.iterations, args.warmup, int(threads)
            )
            ratio = detail["throughput"] / plain
            worst = max(worst, abs(1 - ratio))
            print(f"{size:5} {detail['throughput']:19.1f} {plain:21.1f} {ratio:6.3f} "
                  f"{'yes' if abs(1 - ratio) <= 0.10 else 'NO':>10}")  # fmt: skip
            record(
                f"platform throughput, all-MiniLM-L6-v2, seq {args.sequence_length}, batch {size}",
                detail["throughput"],
                "samples/s",
                baseline=plain,
                baseline_what=f"plain torch loop, same shape, {threads} threads",
                ratio=ratio,
                target="ratio within 10 % of 1.0",
                passed=abs(1 - ratio) <= 0.10,
                note=f"{args.iterations} iterations",
            )
        print(f"largest deviation: {worst * 100:.1f}% (target: within 10%)")
        return 0
    finally:
        platform.close()


if __name__ == "__main__":
    sys.exit(main())
