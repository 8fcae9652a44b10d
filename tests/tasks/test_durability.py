"""Nothing is lost and nothing runs twice: SIGKILLed workers, lost messages, beat's reconciler."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelport.core import events
from modelport.core import jobs as core_jobs
from modelport.core.db import session_scope
from modelport.core.models import Job
from modelport.core.redis_client import get_redis
from tests.fixtures.services import ROOT


@pytest.fixture(scope="module")
def beat(platform_env, tmp_path_factory):
    """A real `celery beat` running the reconciler every second."""
    log = tmp_path_factory.mktemp("beat") / "beat.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "modelport.workers.app", "beat",
             "--schedule", str(log.parent / "schedule"), "--loglevel", "INFO"],
            cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=out,
        )  # fmt: skip
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture()
def slow_validation(platform_env):
    """Make hadolint (the validation stage) take `seconds` while the fixture is active."""
    flag = Path(platform_env["MODELPORT_TEST_SLOW_FLAG"])

    def slow(seconds: float) -> None:
        flag.write_text(str(seconds))

    yield slow, flag
    flag.unlink(missing_ok=True)


def submit(client, repo_id: str, batch_size: int) -> str:
    resp = client.post(
        "/api/generate", json={"modelUrl": repo_id, "options": {"batchSize": batch_size}}
    )
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["jobId"]


def row(job_id: str) -> Job:
    with session_scope() as session:
        return session.get(Job, job_id)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def completions(job_id: str) -> list[dict]:
    channel = events.job_channel(job_id)
    found = []
    for _id, fields in get_redis().xrange(events.STREAM, "-", "+"):
        message = json.loads(fields["message"])
        if fields["channel"] == channel and message["event"] == "job_completed":
            found.append(message["data"])
    return found


def in_validation(job_id: str) -> bool:
    job = row(job_id)
    return job.status == "running" and job.stage == "validating bundle"


def test_sigkill_of_the_pool_process_mid_job(client, worker, tiny_models, slow_validation):
    slow, flag = slow_validation
    slow(4)
    job_id = submit(client, tiny_models["fill-mask"].repo_id, batch_size=3)
    wait_for(lambda: in_validation(job_id), 60, "the job to reach validation")
    children = worker.children()
    assert children, "the worker has no pool process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    flag.unlink()

    job = wait_for(
        lambda: (j := row(job_id)).status in ("succeeded", "failed") and j, 90, "job end"
    )
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    # published right after the success commits: wait for it, then exactly one
    assert len(wait_for(lambda: completions(job_id), 10, "job_completed")) == 1
    assert "WorkerLostError" in worker.output() or "Process" in worker.output()


def test_sigkill_of_the_whole_worker_mid_job(client, worker, beat, tiny_models, slow_validation):
    slow, flag = slow_validation
    slow(30)
    job_id = submit(client, tiny_models["fill-mask"].repo_id, batch_size=5)
    wait_for(lambda: in_validation(job_id), 60, "the job to reach validation")
    worker.kill()
    flag.unlink()
    assert row(job_id).status == "running"  # the dead attempt's lease is still live
    worker.restart()

    job = wait_for(
        lambda: (j := row(job_id)).status in ("succeeded", "failed") and j, 90, "job end"
    )
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    # published right after the success commits: wait for it, then exactly one
    assert len(wait_for(lambda: completions(job_id), 10, "job_completed")) == 1


def test_lost_message_is_picked_up_by_the_reconciler(client, worker, beat, tiny_models):
    with session_scope() as session:
        job = core_jobs.new_job(
            session,
            kind="generate",
            task_name="generate.run",
            queue="default",
            params={
                "repoId": tiny_models["text-classification"].repo_id,
                "revision": None,
                "options": {
                    "batchSize": 7,
                    "memory": None,
                    "gpu": False,
                    "optimizationLevel": "standard",
                },
            },
            model_id=tiny_models["text-classification"].repo_id,
        )
        job_id = job.id
    # no enqueue: the message was "lost" between commit and send
    job = wait_for(lambda: (j := row(job_id)).status == "succeeded" and j, 60, "reconciler")
    assert job.attempts == 1 and job.enqueues >= 1
    # published right after the success commits: wait for it, then exactly one
    assert len(wait_for(lambda: completions(job_id), 10, "job_completed")) == 1


def test_a_crash_is_told_without_its_internals(platform_env):
    """An unexpected exception in a job: its text (paths, reprs) goes to the worker's log, the
    job's error says it failed and where to look, with the kind's code."""
    from modelport.core.errors import GenerationFailed
    from modelport.tasks.runner import run_job

    with session_scope() as session:
        job_id = core_jobs.new_job(
            session, kind="generate", task_name="generate.run", queue="default",
            params={}, model_id="org/crash", cache_key=None,
        ).id  # fmt: skip

    def crash(params, attempt):
        raise RuntimeError("open('/srv/secret/hf-cache/models--org--crash/x'): <object at 0x7f>")

    assert run_job(None, job_id, crash, GenerationFailed) == "failed"
    with session_scope() as session:
        error = session.get(Job, job_id).error
    assert error["code"] == 1002 and error["details"] == {"stage": "internal"}
    assert error["message"] == (
        "the job failed on an unexpected error in the worker; its log has the details under "
        f"job {job_id}"
    )
    assert "/srv" not in str(error) and "0x7f" not in str(error)
