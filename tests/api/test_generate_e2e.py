"""POST /api/generate end to end: API -> Redis -> real Celery worker -> DB -> polling."""

import json
import time

import pytest
import yaml

from modelport.core import cache
from modelport.core.db import session_scope
from modelport.core.models import Model
from modelport.core.redis_client import get_redis

FILES_ORDER = ["Dockerfile", "requirements.txt", "run_inference.py", "module.yaml", "README.md"]
FILES = set(FILES_ORDER)


def poll(client, location, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(location).get_json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job did not finish: {body}")


def test_generate_minilm_through_a_worker(client, worker, minilm):
    resp = client.post(
        "/api/generate",
        json={"modelUrl": f"https://huggingface.co/{minilm.repo_id}", "options": {"batchSize": 4}},
    )
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert resp.headers["Location"] == f"/api/jobs/{body['jobId']}" == body["links"]["self"]
    assert body["status"] in ("queued", "running")

    done = poll(client, resp.headers["Location"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and done["progress"] == 1.0
    result = done["result"]
    # SPEC's five, then (additive) the build context's allow-list and the runtime package
    assert list(result["files"])[:6] == [*FILES_ORDER, ".dockerignore"]
    extra = set(result["files"]) - FILES - {".dockerignore"}
    assert extra and all(n.startswith("modelport_runtime/") for n in extra)
    assert result["validation"]["status"] in ("passed", "warnings"), result["validation"]
    assert result["validation"]["errors"] == []
    manifest = yaml.safe_load(result["files"]["module.yaml"])
    assert minilm.commit in json.dumps(manifest)
    assert result["model"] == {
        "id": minilm.repo_id,
        "revision": minilm.commit,
        "task": "sentence-similarity",
        "source": "cache",
    }

    # model facts cached for an hour and the models row upserted
    info = cache.get_model_info(minilm.repo_id)
    assert info["pipeline_type"] == "sentence-similarity" and "tags" in info
    assert 3500 < get_redis().ttl(f"model_info:{minilm.repo_id}") <= 3600
    with session_scope() as session:
        row = session.get(Model, minilm.repo_id)
        assert row.revision == minilm.commit and row.library_name == "sentence-transformers"

    # the same request is answered from files:{model_id} at once, with SPEC's body
    again = client.post(
        "/api/generate", json={"modelUrl": minilm.repo_id, "options": {"batchSize": 4}}
    )
    assert again.status_code == 200
    assert again.get_json()["files"] == result["files"]
    assert 0 < get_redis().ttl(f"files:{minilm.repo_id}") <= 3600

    # other options never share that entry
    other = client.post(
        "/api/generate", json={"modelUrl": minilm.repo_id, "options": {"batchSize": 16}}
    )
    assert other.status_code == 202


def test_wait_returns_spec_response(client, worker, tiny_models):
    model = tiny_models["text-classification"]
    resp = client.post(
        "/api/generate?wait=60",
        json={"modelUrl": f"hf://{model.repo_id}@main", "options": {"optimizationLevel": "none"}},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) >= {"files", "validation"}
    assert set(body["validation"]) >= {"status", "errors"}
    assert 'dtype: "float32"' in body["files"]["module.yaml"]
    assert body["files"]["modelport_runtime/server.py"]  # the runtime ships beside it


@pytest.mark.parametrize(
    "task",
    [
        "text-classification",
        "token-classification",
        "question-answering",
        "fill-mask",
        "feature-extraction",
        "text-generation",
        "text2text-generation",
        "zero-shot-classification",
        "image-classification",
    ],
)
def test_every_task_generates(client, worker, tiny_models, task):
    model = tiny_models[task]
    resp = client.post("/api/generate?wait=60", json={"modelUrl": model.repo_id})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["model"]["task"] == task
    assert body["validation"]["status"] != "failed", body["validation"]


def test_unknown_model_fails_with_invalid_model(client, worker):
    resp = client.post("/api/generate?wait=30", json={"modelUrl": "nobody-here/no-such-model"})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["error"]["code"] == 1001
    assert "nobody-here/no-such-model" in body["error"]["message"]
    job = client.get(f"/api/jobs/{body['jobId']}").get_json()
    assert job["status"] == "failed" and job["error"]["code"] == 1001
    assert "result" not in job


def test_memory_too_small_is_a_failed_validation(client, worker, minilm):
    resp = client.post(
        "/api/generate?wait=60",
        json={"modelUrl": minilm.repo_id, "options": {"memory": "64Mi"}},
    )
    assert resp.status_code == 200
    validation = resp.get_json()["validation"]
    assert validation["status"] == "failed"
    assert any("memory" in e.lower() for e in validation["errors"])


def test_redis_down_at_submission_loses_nothing(client, worker, tiny_models, monkeypatch):
    """The job row is committed before the send: with Redis unreachable the client still gets
    202 and the job's id, and once Redis is back the reconciler sends it and it completes."""
    from modelport import localredis
    from modelport.core import jobs as core_jobs
    from modelport.core.models import Job
    from tests.fixtures.services import reset_process_state

    model = tiny_models["token-classification"]
    good_url = __import__("os").environ["REDIS_URL"]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{localredis.free_port()}")
    reset_process_state()
    from modelport.api import create_app

    down = create_app().test_client()
    resp = down.post("/api/generate?wait=2", json={"modelUrl": model.repo_id})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["jobId"]
    with session_scope() as session:
        row = session.get(Job, job_id)
        assert row.status == "queued" and row.enqueued_at is None
    monkeypatch.setenv("REDIS_URL", good_url)
    reset_process_state()
    from datetime import timedelta

    from modelport.core.models import utcnow

    # the reconciler sends jobs never sent after a 2 s grace period
    assert core_jobs.reconcile(now=utcnow() + timedelta(seconds=3))["requeued"] >= 1
    done = poll(client, f"/api/jobs/{job_id}")
    assert done["status"] == "succeeded" and done["attempts"] == 1
