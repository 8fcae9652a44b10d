"""POST /api/benchmark end to end on a real CPU worker with real weights."""

import time

import pytest
from sqlalchemy import func, select

from modelport.core.db import session_scope
from modelport.core.models import Event, Job, Metric
from modelport.core.redis_client import get_redis
from tests.api.test_api_basics import assert_spec_error


def run(client, body, timeout=240):
    resp = client.post("/api/benchmark", json=body)
    assert resp.status_code == 202, resp.get_json()
    location = resp.headers["Location"]
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).get_json()
        if job["status"] == "running":
            seen.append((job["progress"], job["stage"]))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"benchmark did not finish: {job}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batchSizes": []}, "batchSizes"),
        ({"batchSizes": list(range(1, 18))}, "batchSizes"),
        ({"batchSizes": [0]}, "batchSizes"),
        ({"batchSizes": [2048]}, "batchSizes"),
        ({"batchSizes": [8, 8]}, "batchSizes"),
        ({"batchSizes": ["8"]}, "batchSizes.0"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 10**9}, "iterations"),
        ({"warmup": -1}, "warmup"),
        ({"sequenceLength": 0}, "sequenceLength"),
        ({"device": "tpu"}, "device"),
        ({"latencySloMs": -5}, "latencySloMs"),
        ({"maxNewTokens": 100000}, "maxNewTokens"),
        ({"optimizationLevel": "ludicrous"}, "optimizationLevel"),
        ({"shell": "$(reboot)"}, "shell"),
    ],
)
def test_bad_benchmark_requests(client, body, field):
    resp = client.post("/api/benchmark", json={"modelId": "org/model", **body})
    err = assert_spec_error(resp, 400, 1003)
    assert err["details"]["fields"][0]["field"] == field


@pytest.mark.parametrize("model_id", ["https://evil.example/a/b", "a/b; rm -rf /", "x" * 400])
def test_hostile_model_ids(client, model_id):
    assert_spec_error(client.post("/api/benchmark", json={"modelId": model_id}), 400, 1001)


def test_gpu_refused_when_disabled(client, app):
    app.config["MODELPORT"] = app.config["MODELPORT"].model_copy(update={"ENABLE_GPU": False})
    err = assert_spec_error(
        client.post("/api/benchmark", json={"modelId": "org/m", "device": "gpu"}), 400, 1003
    )
    assert "ENABLE_GPU" in err["message"]


def test_gpu_refused_while_no_gpu_worker_is_online(client, worker):
    """Queued, the job would wait forever for a worker that never comes: answer 503 now."""

    def jobs() -> int:
        with session_scope() as session:
            return session.scalar(select(func.count()).select_from(Job))

    before = jobs()
    resp = client.post("/api/benchmark", json={"modelId": "org/m", "device": "gpu"})
    err = assert_spec_error(resp, 503, 1010)
    assert "ENABLE_GPU" in err["message"] and "gpu queue" in err["message"]
    assert err["details"] == {"field": "device", "queue": "gpu", "workersOnline": 0}
    assert resp.headers["Retry-After"]
    assert jobs() == before  # nothing was queued


def test_auto_picks_cpu_without_gpu_workers(client, worker, minilm):
    resp = client.post(
        "/api/benchmark",
        json={"modelId": minilm.repo_id, "batchSizes": [1], "iterations": 2, "warmup": 0,
              "sequenceLength": 8},
    )  # fmt: skip
    job = client.get(resp.headers["Location"]).get_json()
    assert job["queue"] == "cpu"


def test_unknown_model_fails_with_1001(client, worker):
    resp = client.post("/api/benchmark?wait=60", json={"modelId": "nobody/nothing-here"})
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == 1001


def count(model, model_id, **where):
    with session_scope() as session:
        query = select(func.count()).select_from(model).where(model.model_id == model_id)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return session.scalar(query)


def test_minilm_sweep_records_caches_and_reuses(client, worker, minilm):
    body = {
        "modelId": minilm.repo_id,
        "batchSizes": [4, 1],
        "iterations": 6,
        "warmup": 1,
        "sequenceLength": 32,
        "latencySloMs": 10_000,
    }
    before = count(Metric, minilm.repo_id, source="benchmark")
    job, seen = run(client, body)
    assert job["status"] == "succeeded", job
    result = job["result"]
    # SPEC's shape, aligned with batchSizes as requested
    assert set(result) >= {"results", "analysis"}
    for name in ("throughput", "latency", "memory_usage", "cost_per_inference"):
        values = result["results"][name]
        assert len(values) == 2 and all(isinstance(v, float) and v > 0 for v in values), name
    details = result["details"]
    assert [d["batchSize"] for d in details] == [4, 1]
    assert result["results"]["throughput"][0] == details[0]["throughput"]
    for d in details:
        lat = d["latencyMs"]
        assert lat["p50"] <= lat["p95"] <= lat["p99"] and d["iterations"] == 6
    assert result["analysis"]["optimal_batch_size"] in (1, 4)
    recs = result["analysis"]["resource_recommendations"]
    assert recs and all(isinstance(r, str) for r in recs)
    assert any(ch.isdigit() for ch in " ".join(recs))
    assert result["device"]["type"] == "cpu"
    # progress was visible while it ran, and only moved forward
    fractions = [p for p, _ in seen]
    assert fractions == sorted(fractions)
    assert any("batch" in (stage or "") for _, stage in seen), seen

    # one metrics row per batch size, an events row, cache entries for 30 minutes
    assert count(Metric, minilm.repo_id, source="benchmark") == before + 2
    assert count(Event, minilm.repo_id, event_type="benchmark_completed") >= 1
    ttl = get_redis().ttl(f"benchmark:{minilm.repo_id}:4")
    assert 0 < ttl <= 1800

    # an identical configuration is answered from the cache at once, measuring nothing
    again = client.post("/api/benchmark", json=body)
    assert again.status_code == 200
    assert again.get_json()["reusedBatchSizes"] == [1, 4]
    assert again.get_json()["results"]["throughput"] == result["results"]["throughput"]
    # a partly cached sweep measures only what is missing
    partial, _ = run(client, {**body, "batchSizes": [1, 2]})
    assert partial["result"]["reusedBatchSizes"] == [1]
    assert partial["result"]["results"]["throughput"][0] == result["results"]["throughput"][1]
    assert count(Metric, minilm.repo_id, source="benchmark") == before + 3
    # a different configuration is measured again
    other, _ = run(client, {**body, "batchSizes": [1], "iterations": 3})
    assert other["result"]["reusedBatchSizes"] == []
    assert count(Metric, minilm.repo_id, source="benchmark") == before + 4


def test_generative_model_reports_ttft_and_decode_rate(client, worker, tiny_models):
    model = tiny_models["text-generation"]
    job, _ = run(
        client,
        {
            "modelId": model.repo_id,
            "batchSizes": [1, 2],
            "iterations": 2,
            "warmup": 1,
            "sequenceLength": 16,
            "maxNewTokens": 4,
        },
    )
    assert job["status"] == "succeeded", job
    for detail in job["result"]["details"]:
        assert detail["ttftMs"] > 0 and detail["decodeTokensPerS"] > 0


def test_generate_from_a_benchmark(client, worker, tiny_models):
    """The benchmark's configuration becomes the bundle: its level, device and optimal batch
    size, with module.yaml and the README saying which benchmark and what it measured."""
    import yaml

    model = tiny_models["text-classification"].repo_id
    body = {"modelId": model, "batchSizes": [1, 2], "iterations": 3, "warmup": 1,
            "sequenceLength": 8, "optimizationLevel": "none", "device": "cpu"}  # fmt: skip
    job, _ = run(client, body)
    assert job["status"] == "succeeded", job
    best = job["result"]["analysis"]["optimal_batch_size"]
    resp = client.post(
        "/api/generate?wait=120", json={"modelUrl": model, "fromBenchmark": job["jobId"]}
    )
    assert resp.status_code == 200, resp.get_json()
    files = resp.get_json()["files"]
    module = yaml.safe_load(files["module.yaml"])
    assert module["optimization"]["level"] == "none"
    assert module["batching"]["maxBatchSize"] == best
    provenance = module["benchmark"]
    assert provenance["jobId"] == job["jobId"] and provenance["batchSize"] == best
    # the bundle is of the revision the benchmark measured
    assert provenance["revision"] == job["result"]["model"]["revision"]
    assert module["model"]["revision"] == provenance["revision"]
    measured = next(r for r in job["result"]["details"] if r["batchSize"] == best)
    assert provenance["throughput"] == measured["throughput"]
    assert provenance["quality"] is None  # level none is the float32 reference
    assert f"These options come from benchmark `{job['jobId']}`" in files["README.md"]
    validation = resp.get_json()["validation"]
    assert validation["status"] != "failed", validation  # the schema knows `benchmark`

    # refused: options as well, another model, not a benchmark, unknown, malformed
    both = client.post("/api/generate", json={"modelUrl": model, "fromBenchmark": job["jobId"],
                                              "options": {"batchSize": 4}})  # fmt: skip
    assert "either options or fromBenchmark" in assert_spec_error(both, 400, 1003)["message"]
    other = client.post("/api/generate", json={"modelUrl": "org/other-model",
                                               "fromBenchmark": job["jobId"]})  # fmt: skip
    assert f"measured {model}" in assert_spec_error(other, 400, 1003)["message"]
    unknown = client.post("/api/generate", json={
        "modelUrl": model, "fromBenchmark": "00000000-0000-4000-8000-000000000000"})  # fmt: skip
    assert_spec_error(unknown, 404, 1008)
    malformed = client.post("/api/generate", json={"modelUrl": model, "fromBenchmark": "../x"})
    assert_spec_error(malformed, 400, 1003)


def test_generate_refuses_a_benchmark_that_failed_its_quality_gate(client, worker, tiny_models):
    from sqlalchemy import update

    model = tiny_models["text-classification"].repo_id
    body = {"modelId": model, "batchSizes": [1], "iterations": 3, "warmup": 0,
            "sequenceLength": 8, "optimizationLevel": "standard", "device": "cpu"}  # fmt: skip
    job, _ = run(client, body)
    assert job["result"]["quality"]["passed"] is True
    failed = {**job["result"], "quality": {**job["result"]["quality"], "passed": False,
                                           "value": 0.5}}  # fmt: skip
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job["jobId"]).values(result=failed))
    resp = client.post("/api/generate", json={"modelUrl": model, "fromBenchmark": job["jobId"]})
    err = assert_spec_error(resp, 409, 1011)
    assert "failed its quality gate" in err["message"] and "0.5" in err["message"]


def test_a_search_measures_each_level_gates_it_and_generates_the_pick(client, worker, minilm):
    """search: one benchmark per level on the real MiniLM, each behind the quality gate; the
    answer is the recommended level's benchmark plus the table, and fromBenchmark builds the
    recommended configuration."""
    import yaml

    body = {"modelId": minilm.repo_id, "batchSizes": [1, 4], "iterations": 20, "warmup": 2,
            "sequenceLength": 32, "device": "cpu", "search": True,
            "optimizationLevels": ["bfloat16", "aggressive"]}  # fmt: skip
    job, seen = run(client, body, timeout=400)
    assert job["status"] == "succeeded", job
    assert any(stage.startswith("bfloat16: ") for _, stage in seen)
    result = job["result"]
    search = result["search"]
    assert search["levels"] == ["none", "bfloat16", "aggressive"]  # the reference first
    table = search["configurations"]
    assert {(r["optimizationLevel"], r["batchSize"]) for r in table} == {
        (level, size) for level in search["levels"] for size in (1, 4)
    }
    # per-channel int8 still moves MiniLM below 0.999 cosine; bfloat16 keeps it
    for entry in table:
        if entry["optimizationLevel"] == "aggressive":
            assert entry["quality"]["passed"] is False and not entry["qualified"]
            assert entry["rejectedBecause"][0].startswith("quality gate failed: min_cosine")
        if entry["optimizationLevel"] == "bfloat16":
            assert entry["quality"]["passed"] is True
            assert entry["quality"]["value"] >= 0.999
    with session_scope() as session:
        levels = set(session.scalars(
            select(Metric.optimization_level).where(Metric.job_id == job["jobId"])))  # fmt: skip
    assert levels == {"none", "bfloat16", "aggressive"}  # each level's rows, labelled
    rec = search["recommended"]
    generated = client.post(
        "/api/generate?wait=120", json={"modelUrl": minilm.repo_id, "fromBenchmark": job["jobId"]}
    )
    picked = next(r for r in table if r["recommended"])
    assert picked["quality"]["passed"] is True  # never one that failed the gate
    if rec["meetsRequirements"]:
        assert picked["qualified"]
        assert picked["throughput"] == max(r["throughput"] for r in table if r["qualified"])
    else:  # a noisy machine: nothing stable; the least violating, said so
        assert not any(r["qualified"] for r in table)
        assert rec["rejectedBecause"] == picked["rejectedBecause"]
        assert search["sentence"].startswith("No configuration met every requirement")
    assert rec["options"] == {"batchSize": picked["batchSize"], "gpu": False,
                              "optimizationLevel": picked["optimizationLevel"]}  # fmt: skip
    # the top level answer is the picked level's benchmark, SPEC's fields intact
    assert result["config"]["optimizationLevel"] == rec["options"]["optimizationLevel"]
    assert result["analysis"]["optimal_batch_size"] == rec["options"]["batchSize"]
    assert generated.status_code == 200, generated.get_json()
    module = yaml.safe_load(generated.get_json()["files"]["module.yaml"])
    assert module["optimization"]["level"] == rec["options"]["optimizationLevel"]
    assert module["batching"]["maxBatchSize"] == rec["options"]["batchSize"]
    assert module["benchmark"]["throughput"] == picked["throughput"]
    assert module["benchmark"]["meetsRequirements"] is rec["meetsRequirements"]

    # the same search again is answered from the cached per-level measurements
    again, _ = run(client, body, timeout=120)
    assert again["result"]["search"]["recommended"]["options"] == rec["options"]
    assert again["result"]["reusedBatchSizes"] == [1, 4]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"search": "yes"}, "search"),
        ({"search": True, "optimizationLevels": []}, "optimizationLevels"),
        ({"search": True, "optimizationLevels": ["turbo"]}, "optimizationLevels.0"),
        ({"optimizationLevels": ["none", "bfloat16"]}, "optimizationLevels"),
        ({"search": True, "optimizationLevels": ["bfloat16"] * 7}, "optimizationLevels"),
        ({"batchDelaysMs": [0, 5]}, "batchDelaysMs"),  # without servedConcurrency
        ({"servedConcurrency": [1], "batchDelaysMs": [-1]}, "batchDelaysMs"),
        ({"servedConcurrency": [1], "batchDelaysMs": [1001]}, "batchDelaysMs"),
        ({"servedConcurrency": [1], "batchDelaysMs": [5, 5]}, "batchDelaysMs"),
        ({"servedConcurrency": [1], "batchDelaysMs": ["5"]}, "batchDelaysMs.0"),
        ({"servedConcurrency": [1], "batchDelaysMs": [1, 2, 3, 4, 5, 6, 7]}, "batchDelaysMs"),
    ],
)
def test_bad_search_requests(client, body, field):
    resp = client.post("/api/benchmark", json={"modelId": "org/model", **body})
    err = assert_spec_error(resp, 400, 1003)
    assert err["details"]["fields"][0]["field"] == field


def test_generate_takes_a_search_recommendation_and_refuses_an_empty_one(
    client, worker, tiny_models
):
    """fromBenchmark of a search: exactly the recommended options (level and batch size);
    a search that recommended nothing answers 409 with its sentence."""
    import yaml
    from sqlalchemy import update

    model = tiny_models["text-classification"].repo_id
    body = {"modelId": model, "batchSizes": [1], "iterations": 3, "warmup": 0,
            "sequenceLength": 8, "optimizationLevel": "none", "device": "cpu"}  # fmt: skip
    job, _ = run(client, body)
    assert job["status"] == "succeeded", job
    options = {"batchSize": 6, "gpu": False, "optimizationLevel": "bfloat16"}
    search = {"levels": ["none", "bfloat16"], "configurations": [], "sentence": "Ship it.",
              "recommended": {"options": options, "throughput": 1.0, "latencyP95Ms": 1.0,
                              "speedupVsDefault": 2.0, "meetsRequirements": False,
                              "rejectedBecause": ["not stable (cv 0.30)"]}}  # fmt: skip
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job["jobId"])
                        .values(result={**job["result"], "search": search}))  # fmt: skip
    resp = client.post(
        "/api/generate?wait=120", json={"modelUrl": model, "fromBenchmark": job["jobId"]}
    )
    assert resp.status_code == 200, resp.get_json()
    module = yaml.safe_load(resp.get_json()["files"]["module.yaml"])
    assert module["optimization"]["level"] == "bfloat16"
    assert module["optimization"]["settings"]["dtype"] == "bfloat16"
    assert module["batching"]["maxBatchSize"] == 6
    assert module["benchmark"]["meetsRequirements"] is False

    empty = {**search, "recommended": None, "sentence": "No configuration qualified: noisy."}
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job["jobId"])
                        .values(result={**job["result"], "search": empty}))  # fmt: skip
    resp = client.post("/api/generate", json={"modelUrl": model, "fromBenchmark": job["jobId"]})
    err = assert_spec_error(resp, 409, 1011)
    assert (
        "found no configuration to recommend: No configuration qualified: noisy."
        in (err["message"])
    )


def test_served_concurrency_drives_the_bundle_server(client, worker, tiny_models):
    """servedConcurrency: after the sweep the worker serves the bundle at the optimal batch
    size and drives it; each run measures it again (never answered from the cache)."""
    model = tiny_models["text-classification"].repo_id
    body = {"modelId": model, "batchSizes": [1, 2], "iterations": 4, "warmup": 1,
            "sequenceLength": 8, "device": "cpu", "servedConcurrency": [1, 3]}  # fmt: skip
    for _attempt in range(2):
        job, seen = run(client, body)
        assert job["status"] == "succeeded", job
        assert any(stage == "serving the bundle" for _, stage in seen)
        served = job["result"]["served"]
        assert served["maxBatchSize"] == job["result"]["analysis"]["optimal_batch_size"]
        assert [level["concurrency"] for level in served["levels"]] == [1, 3]
        assert [level["requests"] for level in served["levels"]] == [4, 12]
        assert all(level["errors"] == 0 for level in served["levels"])
        assert isinstance(served["addedP50Ms"], float)
    assert job["result"]["reusedBatchSizes"] == [1, 2]  # the in-process rows were reused
    bad = client.post("/api/benchmark", json={**body, "servedConcurrency": [0]})
    assert_spec_error(bad, 400, 1003)
    bad = client.post("/api/benchmark", json={**body, "servedConcurrency": [2, 2]})
    assert_spec_error(bad, 400, 1003)


def test_a_cpu_only_level_on_the_gpu_is_refused_before_anything_is_queued(client):
    resp = client.post("/api/benchmark", json={"modelId": "org/m", "device": "gpu",
                                               "optimizationLevel": "onnxruntime"})  # fmt: skip
    err = assert_spec_error(resp, 400, 1003)
    assert "runs on CPU" in err["message"] and err["details"] == {"field": "optimizationLevel"}


def test_a_delay_search_serves_each_delay_and_generates_the_best(client, worker, tiny_models):
    """batchDelaysMs: the bundle served at each batching delay; the best becomes what
    fromBenchmark generates (module.yaml, the Dockerfile's ENV), for a single benchmark and
    as part of a search's recommended options."""
    import yaml

    model = tiny_models["text-classification"].repo_id
    body = {"modelId": model, "batchSizes": [1, 2], "iterations": 4, "warmup": 1,
            "sequenceLength": 8, "device": "cpu", "servedConcurrency": [1, 2],
            "batchDelaysMs": [10, 0]}  # fmt: skip
    job, _ = run(client, body)
    assert job["status"] == "succeeded", job
    served = job["result"]["served"]
    assert [d["maxDelayMs"] for d in served["delays"]] == [0, 10]  # in order
    assert served["maxDelayMs"] in (0, 10) and served["delaySentence"]
    resp = client.post(
        "/api/generate?wait=120", json={"modelUrl": model, "fromBenchmark": job["jobId"]}
    )
    assert resp.status_code == 200, resp.get_json()
    files = resp.get_json()["files"]
    module = yaml.safe_load(files["module.yaml"])
    assert module["batching"]["maxDelayMs"] == served["maxDelayMs"]
    assert module["benchmark"]["maxBatchDelayMs"] == served["maxDelayMs"]
    assert f"MAX_BATCH_DELAY_MS={served['maxDelayMs']} " in files["Dockerfile"]

    search = {**body, "search": True, "optimizationLevels": ["standard"], "batchSizes": [1]}
    job, _ = run(client, search)
    assert job["status"] == "succeeded", job
    result = job["result"]
    options = result["search"]["recommended"]["options"]
    assert options["maxBatchDelayMs"] == result["served"]["maxDelayMs"]
    resp = client.post(
        "/api/generate?wait=120", json={"modelUrl": model, "options": options}
    )  # the recommendation is exactly generate's options
    assert resp.status_code == 200, resp.get_json()
    module = yaml.safe_load(resp.get_json()["files"]["module.yaml"])
    assert module["batching"]["maxDelayMs"] == options["maxBatchDelayMs"]
