"""Beat started twice by mistake: periodic work still runs at most once per interval."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from modelport import localredis
from modelport.core import periodic
from modelport.core.celery_app import RECONCILE_TASK
from modelport.core.redis_client import get_redis
from tests.fixtures.services import ROOT


def test_second_caller_in_the_same_slot_is_refused(platform_env):
    now = 1_000_000.2
    assert periodic.once_per_interval("t.unit", 10, now=now)
    assert not periodic.once_per_interval("t.unit", 10, now=now + 5)  # same slot
    assert periodic.once_per_interval("t.unit", 10, now=now + 10)  # next slot
    assert not periodic.once_per_interval("t.unit", 10, now=now + 11)
    assert periodic.once_per_interval("t.other", 10, now=now)  # locks are per task
    assert get_redis().get(periodic.skipped_key("t.unit")) == "2"
    ttl = get_redis().ttl(periodic.lock_key("t.unit", math.floor(now / 10)))
    assert 0 < ttl <= 10


def test_redis_down_fails_open(platform_env, monkeypatch, caplog):
    dead = redis.Redis(port=localredis.free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(periodic, "get_redis", lambda: dead)
    caplog.set_level("WARNING", logger="modelport.core.periodic")
    assert periodic.once_per_interval("t.down", 10)
    assert periodic.once_per_interval("t.down", 10)
    periodic.record_run("t.down")  # counting never raises either
    assert "fail open" in caplog.text


def test_manual_sends_are_not_locked(platform_env):
    from modelport.tasks import maintenance

    assert "skipped" not in maintenance.reconcile()
    assert "skipped" not in maintenance.reconcile()
    assert maintenance.reconcile(periodic=True) != periodic.SKIPPED
    assert maintenance.reconcile(periodic=True) == periodic.SKIPPED
    assert get_redis().get(periodic.runs_key(RECONCILE_TASK)) == "3"


def start_beat(directory) -> tuple[subprocess.Popen, object]:
    log = directory / "beat.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "modelport.workers.app", "beat",
             "--schedule", str(directory / "schedule"), "--loglevel", "INFO"],
            cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=out,
        )  # fmt: skip
    return proc, log


def sends(log) -> int:
    return log.read_text(errors="replace").count("Sending due task reconcile-jobs")


@pytest.mark.timeout(60)
def test_two_beats_run_reconcile_once_per_interval(platform_env, worker, tmp_path_factory):
    interval = float(platform_env["RECONCILE_INTERVAL"])
    r = get_redis()
    started = time.time()
    beats = [start_beat(tmp_path_factory.mktemp(f"beat{i}")) for i in range(2)]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(sends(log) for _, log in beats):
            time.sleep(0.1)
        assert all(sends(log) for _, log in beats), "both beats should be sending"
        time.sleep(4 * interval)
    finally:
        for proc, _ in beats:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in beats:
            proc.wait(timeout=10)
    # Let the sends already queued (they expire within 0.9 intervals) be consumed.
    deadline = time.monotonic() + 10
    total = sum(sends(log) for _, log in beats)
    while time.monotonic() < deadline:
        done = int(r.get(periodic.runs_key(RECONCILE_TASK)) or 0) + int(
            r.get(periodic.skipped_key(RECONCILE_TASK)) or 0
        )
        if done >= total:
            break
        time.sleep(0.1)
    time.sleep(interval)
    ended = time.time()

    runs = int(r.get(periodic.runs_key(RECONCILE_TASK)) or 0)
    skipped = int(r.get(periodic.skipped_key(RECONCILE_TASK)) or 0)
    slots = math.floor(ended / interval) - math.floor(started / interval) + 1
    print(f"two beats: sends={total} runs={runs} skipped={skipped} slots={slots}")
    assert runs >= 1
    assert skipped >= 1, (runs, skipped, total)
    assert runs <= slots + 1, (runs, slots)
    assert total > runs, (total, runs, skipped)


def test_periodic_work_has_a_queue_every_cpu_side_worker_takes(worker):
    """Beat's tasks go to `control`, which every worker not pinned to a GPU consumes besides
    its -Q queues, so they wait for a running job at most, never behind a queue's backlog."""
    from modelport.beat_schedule import build_schedule
    from modelport.core.celery_app import CONTROL_QUEUE, get_celery, workers_by_queue
    from modelport.core.settings import get_settings

    router = get_celery().amqp.router
    for name in (RECONCILE_TASK, "monitoring.sample", "monitoring.retention", "jobs.ping"):
        assert router.route({}, name)["queue"].name == CONTROL_QUEUE, name
    for entry in build_schedule(get_settings()).values():
        assert entry["options"]["queue"] == CONTROL_QUEUE
    assert "default" not in str(build_schedule(get_settings()))
    # the suite's worker runs with --queues default,cpu and takes control too
    by_queue = workers_by_queue(timeout=2)
    main = [name for name in by_queue["default"] if name.startswith("main@")]
    assert main and set(main) <= set(by_queue[CONTROL_QUEUE]), by_queue
