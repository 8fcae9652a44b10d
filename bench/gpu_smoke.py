"""The GPU path end to end: a `-Q gpu` worker pinned to one GPU runs POST /api/benchmark
with `device: gpu`, beside a plain torch loop on the same GPU in the same run.

    python bench/gpu_smoke.py [--model-dir DIR] [--batch-sizes 1,8,32,128]

Exits 2 with a clear message where no NVIDIA GPU exists. The model is the offline demo
model (all-MiniLM-L6-v2) when its package is installed; `--model-dir` takes any folder of
Hugging Face files, and when it has no weights file the architecture in its config.json is
built with random weights (throughput does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def gpu_names() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [line for line in probe.stdout.splitlines() if line.startswith("GPU")]


def prepare_model(model_dir: Path | None, hub_cache: Path) -> str:
    from modelport.packaging.hfcache import install_local_model

    if model_dir is None:
        from modelport.packaging.demo import install_demo_model

        install_demo_model(hub_cache)
        return "sentence-transformers/all-MiniLM-L6-v2"
    repo_id = "modelport-bench/" + model_dir.name.replace("_", "-")
    if not any(model_dir.glob("*.safetensors")):
        import torch
        from transformers import AutoConfig, AutoModel

        torch.manual_seed(0)
        built = Path(tempfile.mkdtemp()) / "model"
        shutil.copytree(model_dir, built)
        AutoModel.from_config(AutoConfig.from_pretrained(built)).save_pretrained(built)
        model_dir = built
    install_local_model(repo_id, model_dir, cache_dir=hub_cache)
    return repo_id


def plain_loop(repo_id: str, batch_size: int, seq: int, iterations: int, warmup: int, dtype):
    """A bare torch loop: the same model and input shape, CUDA events, one sync."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repo_id)
    model = AutoModel.from_pretrained(repo_id, dtype=dtype).to("cuda").eval()
    text = "the quick brown fox jumps over the lazy dog " * 40
    batch = tok(
        [text] * batch_size,
        padding="max_length",
        truncation=True,
        max_length=seq,
        return_tensors="pt",
    )
    batch = {k: v.to("cuda") for k, v in batch.items()}
    with torch.inference_mode():
        for _ in range(warmup):
            model(**batch)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            model(**batch)
        end.record()
        torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    return batch_size * iterations / seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sequence-length", type=int, default=128)
    args = parser.parse_args()
    from bench._harness import record, record_skip

    gpus = gpu_names()
    if not gpus:
        record_skip("GPU queue path (`-Q gpu` worker) vs plain torch loop", "no NVIDIA GPU")
        print("gpu_smoke: no NVIDIA GPU here (nvidia-smi -L found none); run it on a CUDA machine.")
        return 2
    print("GPUs:", *gpus, sep="\n  ")
    from modelport import localredis

    tmp = Path(tempfile.mkdtemp(prefix="modelport-gpu-"))
    port = localredis.free_port()
    redis_proc = localredis.start_server(port, tmp / "redis", persist=False)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}",
        "DB_PATH": f"sqlite:///{tmp / 'gpu.db'}",
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_OFFLINE": "1",
        "ENABLE_GPU": "true",
        "MAX_MEMORY": "64Gi",
        "MODELPORT_GPU_DEVICE": "0",
    }
    os.environ.update(env)
    worker = None
    try:
        from modelport.cli import db_upgrade

        db_upgrade(env["DB_PATH"])
        repo_id = prepare_model(args.model_dir, tmp / "hf" / "hub")
        log = open(tmp / "worker.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "modelport.workers.app", "worker",
             "--queues", "gpu", "--concurrency", "1", "--pool", "prefork",
             "--hostname", "gpu0@%h", "--events", "--loglevel", "INFO"],
            env={**os.environ}, cwd=ROOT, stdout=log, stderr=log,
        )  # fmt: skip
        from modelport.api import create_app

        client = create_app().test_client()
        deadline = time.monotonic() + 120
        while b"ready." not in (tmp / "worker.log").read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                print((tmp / "worker.log").read_text()[-3000:])
                return 1
            time.sleep(0.2)
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        rows = []
        for level in ("standard", "none"):
            started = time.perf_counter()
            resp = client.post(
                "/api/benchmark?wait=240",
                json={"modelId": repo_id, "device": "gpu", "batchSizes": sizes,
                      "iterations": args.iterations, "warmup": args.warmup,
                      "sequenceLength": args.sequence_length, "optimizationLevel": level},
            )  # fmt: skip
            body = resp.get_json()
            if resp.status_code != 200:
                print(f"benchmark ({level}) answered {resp.status_code}:", json.dumps(body)[:2000])
                print((tmp / "worker.log").read_text()[-3000:])
                return 1
            print(f"\n== optimizationLevel={level}: job took {time.perf_counter() - started:.1f}s")
            print("device:", json.dumps(body["device"]))
            print("analysis:", json.dumps(body["analysis"], indent=1))
            for detail in body["details"]:
                rows.append((level, detail))
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        verdict = "HOLDS CUDA" if str(worker.pid) in apps else "holds NO CUDA context (good)"
        print(f"\nGPU processes: {apps}; worker parent pid {worker.pid} {verdict}")

        import torch

        print(f"\n{'level':9} {'batch':>5} {'platform/s':>11} {'plain/s':>9} {'ratio':>6} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'cuda MB':>8} {'TFLOP/s':>8} {'%peak':>6} "
              f"{'$/M inf':>8}")  # fmt: skip
        for level, d in rows:
            figure = (f"GPU platform throughput, {repo_id}, seq {args.sequence_length}, "
                      f"optimizationLevel {level}, batch {d['batchSize']}")  # fmt: skip
            if d["status"] != "ok":
                print(f"{level:9} {d['batchSize']:5} {d['status']}: {d['message']}")
                record_skip(figure, f"{d['status']}: {d['message']}")
                continue
            dtype = torch.float16 if level == "standard" else torch.float32
            plain = plain_loop(repo_id, d["batchSize"], args.sequence_length,
                               args.iterations, args.warmup, dtype)  # fmt: skip
            lat = d["latencyMs"]
            tflops = (d.get("achievedFlopsPerS") or 0) / 1e12
            frac = (d.get("flopsFraction") or 0) * 100
            print(f"{level:9} {d['batchSize']:5} {d['throughput']:11.1f} {plain:9.1f} "
                  f"{d['throughput'] / plain:6.2f} {lat['p50']:7.2f} {lat['p99']:7.2f} "
                  f"{d.get('cudaMaxAllocatedMb') or 0:8.1f} {tflops:8.2f} {frac:6.2f} "
                  f"{d.get('costPerMillion') or 0:8.3f}")  # fmt: skip
            record(
                figure,
                d["throughput"],
                "samples/s",
                baseline=plain,
                baseline_what=f"plain torch loop, same GPU, {dtype}".replace("torch.", ""),
                note=f"p99 {lat['p99']:.2f} ms, {args.iterations} iterations",
            )
        return 0
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        localredis.stop(redis_proc)


if __name__ == "__main__":
    sys.exit(main())
