"""SIGKILL in the middle of a benchmark sweep, across 20 jobs: every job ends succeeded,
exactly once, within the attempt cap, and its rows are written once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import select

from modelport.core import events
from modelport.core.db import session_scope
from modelport.core.models import Event, Job, Metric

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

JOBS = 20
BATCH_SIZES = [1, 2, 4, 8]


def mid_sweep(job: Job) -> bool:
    """Running and past the model load: measuring batch sizes."""
    return job.status == "running" and 0.1 < (job.progress or 0) < 0.9


def test_sigkill_mid_sweep_across_20_jobs(stack_factory, tiny_models):
    stack = stack_factory(JOB_LEASE_SECONDS="2", JOB_REQUEUE_AFTER="30")
    worker = stack.worker("bench", queues="default,cpu")
    stack.wait_workers("cpu")
    model = tiny_models["text-classification"].repo_id

    ids = [stack.submit_benchmark(model, BATCH_SIZES, iterations=150 + i) for i in range(JOBS)]

    started = time.monotonic()
    killed: dict[str, str] = {}
    deadline = time.monotonic() + 900  # up to 3 timed windows each on a slow, noisy host
    while time.monotonic() < deadline:
        rows = stack.jobs(ids)
        if all(j.status in ("succeeded", "failed", "cancelled") for j in rows.values()):
            break
        target = next(
            (j for j in rows.values() if j.id not in killed and mid_sweep(j)),
            None,
        )
        if target is not None:
            if len(killed) % 4 == 3:
                # the whole worker (parent and pool): its lease runs out, the reconciler
                # re-sends the job and the restarted worker runs it
                worker.kill()
                killed[target.id] = "worker"
                worker.restart()
            else:
                # the pool process: the parent rejects the message and it comes back
                children = worker.children()
                assert children, "the worker has no pool process"
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                killed[target.id] = "pool"
            print(f"{time.monotonic() - started:6.1f}s killed {len(killed)}: {killed[target.id]}")
        time.sleep(0.05)
    else:
        pytest.fail(f"jobs did not finish:\n{stack.log()[-3000:]}\n{worker.output()[-3000:]}")

    rows = stack.jobs(ids)
    assert {j.status for j in rows.values()} == {"succeeded"}, {
        j.id: j.error for j in rows.values() if j.status != "succeeded"
    }
    # the fault was really injected mid-sweep for (nearly) every job, both ways
    assert len(killed) >= JOBS - 2, f"only {len(killed)} jobs were killed mid-sweep"
    assert set(killed.values()) == {"pool", "worker"}
    for job_id, how in killed.items():
        job = rows[job_id]
        assert 2 <= job.attempts <= job.max_attempts, (how, job.attempts)

    with session_scope(stack.db_url) as session:
        metrics = Counter(
            (m.job_id, m.batch_size)
            for m in session.scalars(select(Metric).where(Metric.job_id.in_(ids)))
        )
        completed = session.scalars(
            select(Event).where(Event.event_type == "benchmark_completed")
        ).all()
    # one metrics row per batch size per job: the killed attempts left none behind
    assert metrics == Counter({(job_id, size): 1 for job_id in ids for size in BATCH_SIZES})
    assert len(completed) == JOBS

    # one job_completed event per job on the bus: a worker killed between a job's commit and
    # its publish leaves the announcement to beat's reconciler (every second here)
    def finals() -> Counter:
        found: Counter = Counter()
        for _id, fields in stack.cache().xrange(events.STREAM, "-", "+"):
            message = json.loads(fields["message"])
            if message["event"] == "job_completed":
                found[message["data"]["jobId"]] += 1
        return found

    deadline = time.monotonic() + 15
    while set(finals()) != set(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert finals() == Counter(dict.fromkeys(ids, 1))
    with session_scope(stack.db_url) as session:
        assert all(job.notified_at for job in session.scalars(select(Job).where(Job.id.in_(ids))))
    # each job's stored result is its own sweep over every batch size
    for job in rows.values():
        assert sorted(r["batchSize"] for r in job.result["details"]) == BATCH_SIZES
        assert job.result["reusedBatchSizes"] == []
