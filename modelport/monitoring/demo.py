"""Realistic synthetic monitoring history, for demos and the query benchmark."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import insert

from modelport.core.db import get_engine
from modelport.core.models import Metric, Model

CHUNK = 10_000
PRICE_PER_HOUR = 1.20  # USD, a mid-range GPU instance
BENCH_BATCHES = (1, 2, 4, 8, 16, 32)


def load_demo_history(
    model_id: str,
    days: int,
    interval_s: int = 60,
    *,
    seed: int = 0,
    now: datetime | None = None,
    degrade: bool = True,
) -> int:
    """Insert `days` of deployment samples every `interval_s` seconds ending at `now`, plus a
    benchmark baseline run just before them. Returns the number of deployment rows written.

    Throughput follows a daily load cycle with noise, latency is batch / throughput (so they
    move inversely), latency degrades gradually over the last days when `degrade`, memory
    drifts up slowly, cost per inference = instance price x time per sample.
    """
    rng = np.random.default_rng(seed)
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    start = end - timedelta(days=days)
    n = int(days * 86400 // interval_s)
    t = np.arange(1, n + 1, dtype=float) * interval_s  # seconds since start
    batch = 8
    base_tp = 100.0 + 60.0 * rng.random()  # samples/s at batch 8
    hour = ((start.hour * 3600 + start.minute * 60 + start.second + t) % 86400) / 3600.0
    load = 1.0 - 0.12 * np.sin(2 * np.pi * (hour - 8.0) / 24.0)  # busier afternoons
    latency = 1000.0 * batch / base_tp * load * rng.lognormal(0.0, 0.05, n)
    if degrade:
        ramp_days = max(1.0, min(3.0, days / 4))
        ramp = np.clip((t - (days - ramp_days) * 86400) / (ramp_days * 86400), 0.0, 1.0)
        latency *= 1.0 + 0.35 * ramp
    throughput = 1000.0 * batch / latency
    mem0 = 1500.0 + 500.0 * rng.random()
    memory = mem0 * (1.0 + 0.004 * t / 86400) + rng.normal(0.0, 8.0, n)
    gpu_memory = 3.0 * mem0 + 0.5 * (memory - mem0) + rng.normal(0.0, 15.0, n)
    cost = PRICE_PER_HOUR / 3600.0 / throughput
    batches = np.where(rng.random(n) < 0.9, batch, rng.choice([4, 16], n))
    stamps = [start + timedelta(seconds=float(s)) for s in t]
    engine = get_engine()
    table = Metric.__table__
    with engine.begin() as conn:
        exists = conn.execute(
            Model.__table__.select().where(Model.__table__.c.id == model_id)
        ).first()
        if exists is None:
            conn.execute(
                insert(Model.__table__).values(
                    id=model_id, description="demo history", gated=False,
                    created_at=start, updated_at=start,
                )
            )  # fmt: skip
        conn.execute(insert(table), _baseline_rows(model_id, base_tp, mem0, start))
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            conn.execute(
                insert(table),
                [
                    {
                        "timestamp": stamps[i],
                        "model_id": model_id,
                        "batch_size": int(batches[i]),
                        "throughput": float(throughput[i]),
                        "latency": float(latency[i]),
                        "memory_mb": float(memory[i]),
                        "gpu_memory_mb": float(gpu_memory[i]),
                        "cost_per_inference": float(cost[i]),
                        "source": "deployment",
                        "device": "cuda",
                    }
                    for i in range(lo, hi)
                ],
            )
    return n


def _baseline_rows(model_id, base_tp, mem0, start) -> list[dict]:
    """One benchmark run: throughput saturating with batch size, best at 16."""
    job = str(uuid.uuid4())
    rows = []
    for b in BENCH_BATCHES:
        tp = base_tp * 1.05 * (b / 8) ** 0.6 if b <= 16 else base_tp * 1.05 * 2**0.6 * 0.97
        rows.append(
            {
                "timestamp": start - timedelta(hours=1),
                "model_id": model_id,
                "batch_size": b,
                "throughput": tp,
                "latency": 1000.0 * b / tp,
                "memory_mb": mem0 * (1 + 0.05 * b),
                "gpu_memory_mb": 3.0 * mem0 * (1 + 0.05 * b),
                "cost_per_inference": PRICE_PER_HOUR / 3600.0 / tp,
                "source": "benchmark",
                "job_id": job,
                "device": "cuda",
            }
        )
    return rows
