"""Flower against the test broker: it sees the suite's worker and a finished task, behind auth."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from modelport import localredis
from modelport.core.celery_app import get_celery
from modelport.core.settings import get_settings, reset_settings
from tests.fixtures.services import ROOT

USER, PASSWORD = "ops", "s3cret-pass"


@pytest.fixture()
def flower(platform_env, worker, monkeypatch, tmp_path):
    port = localredis.free_port()
    monkeypatch.setenv("FLOWER_BASIC_AUTH", f"{USER}:{PASSWORD}")
    monkeypatch.setenv("FLOWER_URL_PREFIX", "flower")
    monkeypatch.setenv("FLOWER_PORT", str(port))
    monkeypatch.setenv("HOST", "127.0.0.1")
    reset_settings()
    settings = get_settings()
    # the Procfile's own command: `modelport flower` builds Flower's options from settings
    args = [sys.executable, "-m", "modelport.cli", "flower"]
    log_path = tmp_path / "flower.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}/{settings.FLOWER_URL_PREFIX}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                requests.get(f"{base}/healthcheck", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reset_settings()


def test_flower_sees_worker_and_finished_task(flower, worker):
    auth = (USER, PASSWORD)
    assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
    assert requests.get(f"{flower}/api/workers", auth=(USER, "wrong"), timeout=5).status_code == 401

    # Flower only knows tasks whose events arrive after it connected: ping until one shows up.
    deadline = time.monotonic() + 20
    sent: list[str] = []
    seen: dict = {}
    while time.monotonic() < deadline:
        result = get_celery().send_task("jobs.ping")
        result.get(timeout=10)
        sent.append(result.id)
        tasks = requests.get(
            f"{flower}/api/tasks", params={"taskname": "jobs.ping", "state": "SUCCESS"},
            auth=auth, timeout=5,
        ).json()  # fmt: skip
        seen = {k: v for k, v in tasks.items() if k in sent}
        if seen:
            break
        time.sleep(0.5)
    assert seen, "Flower never saw a finished jobs.ping task"
    task = next(iter(seen.values()))
    assert task["name"] == "jobs.ping" and task["state"] == "SUCCESS"
    assert task["worker"].startswith("main@")

    workers = requests.get(f"{flower}/api/workers", params={"refresh": 1}, auth=auth, timeout=10)
    assert workers.status_code == 200
    assert any(name.startswith("main@") for name in workers.json()), workers.json()


def test_flower_refuses_to_run_unauthenticated_in_production():
    import os
    import subprocess
    import sys

    env = {**os.environ, "FLASK_ENV": "production", "SECRET_KEY": "k" * 40}
    env.pop("FLOWER_BASIC_AUTH", None)
    run = subprocess.run(
        [sys.executable, "-m", "modelport.cli", "flower"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "FLOWER_BASIC_AUTH" in run.stderr and "Traceback" not in run.stderr

    from modelport.cli import flower_argv
    from modelport.core.settings import Settings

    argv = flower_argv(
        Settings(FLASK_ENV="production", SECRET_KEY="k" * 40, FLOWER_BASIC_AUTH="ops:pw",
                 FLOWER_URL_PREFIX="flower")
    )  # fmt: skip
    assert "--basic-auth=ops:pw" in argv and "--url_prefix=flower" in argv
