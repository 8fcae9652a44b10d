"""The served path (benchmarking/served.py): the bundle's own server, started on loopback by
the benchmark and driven at several concurrency levels, for every kind of request body."""

from __future__ import annotations

import pytest

from modelport.benchmarking import BenchmarkConfig, run_benchmark
from modelport.benchmarking.modelcache import ModelCache
from modelport.benchmarking.served import measure_served, request_body, text_of_length
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import resolve

GiB = 2**30
TASKS = ["question-answering", "zero-shot-classification", "fill-mask", "text-generation",
         "image-classification", "token-classification", "summarization"]  # fmt: skip


@pytest.fixture(scope="module")
def cache():
    return ModelCache(4 * GiB)


def _served(model, cache, concurrency, **config):
    facts = resolve(ModelRef(model.repo_id))
    config = BenchmarkConfig(
        batch_sizes=[1, 2], iterations=config.get("iterations", 4), warmup=1,
        sequence_length=config.get("length", 16), max_new_tokens=4,
        max_memory_bytes=16 * GiB, cpu_cores=1.0,
    )  # fmt: skip
    report = run_benchmark(facts, config, cache=cache)
    loaded = cache.get(facts, "cpu", config.optimization_level)
    return report, measure_served(
        facts, config, loaded, loaded.folder, batch_size=2, concurrency=concurrency,
        threads=1, rows=report.rows,
    )  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_every_task_is_served_and_answered(tiny_models, cache, task):
    _, served = _served(tiny_models[task], cache, [2])
    (level,) = served["levels"]
    assert level["errors"] == 0, level.get("firstError")
    assert level["concurrency"] == 2 and level["requests"] == 8  # 2 clients x 4
    assert level["throughput"] > 0 and level["latencyMs"]["p50"] > 0
    assert served["maxBatchSize"] == 2 and served["readyS"] > 0


def test_minilm_served_against_in_process(minilm, cache):
    """One and four clients on the real MiniLM: what the server adds to a single predict is
    the served p50 less the in-process one (its size is bench/'s business: on this VM's noise
    it can come out below zero), and the served rate is set against the in-process best."""
    report, served = _served(minilm, cache, [1, 4], iterations=20, length=32)
    one, four = served["levels"]
    assert (one["concurrency"], four["concurrency"]) == (1, 4)
    assert one["requests"] == 20 and four["requests"] == 80
    assert one["errors"] == four["errors"] == 0
    in_process = report.row(1).latency.p50
    assert served["addedP50Ms"] == pytest.approx(one["latencyMs"]["p50"] - in_process)
    assert -1000 < served["addedP50Ms"] < 1000
    best = max(r.throughput for r in report.rows)
    assert served["throughputVsInProcess"] == pytest.approx(
        max(one["throughput"], four["throughput"]) / best
    )


def test_request_bodies_are_the_task_and_length_asked(tiny_models, cache, minilm):
    import json

    facts = resolve(ModelRef(minilm.repo_id))
    loaded = cache.get(facts, "cpu", "standard")
    text = text_of_length(loaded.processor, 64)
    assert 58 <= len(loaded.processor(text)["input_ids"]) <= 66
    qa = cache.get(resolve(ModelRef(tiny_models["question-answering"].repo_id)), "cpu", "standard")
    body, kind = request_body(qa, 32, 4)
    assert kind == "application/json" and set(json.loads(body)["inputs"]) == {"question", "context"}
    image = cache.get(resolve(ModelRef(tiny_models["image-classification"].repo_id)), "cpu",
                      "standard")  # fmt: skip
    body, kind = request_body(image, 32, 4)
    assert kind == "image/png" and body.startswith(b"\x89PNG")


def test_a_server_that_cannot_start_fails_with_its_reason(minilm, cache, tmp_path):
    from modelport.benchmarking.report import BatchResult
    from modelport.core.errors import BenchmarkFailed

    facts = resolve(ModelRef(minilm.repo_id))
    config = BenchmarkConfig(batch_sizes=[1], iterations=2, warmup=0, cpu_cores=1.0)
    loaded = cache.get(facts, "cpu", "standard")
    with pytest.raises(BenchmarkFailed, match="exited with 1 before it was ready"):
        measure_served(facts, config, loaded, str(tmp_path / "missing"), batch_size=1,
                       concurrency=[1], threads=1, rows=[BatchResult(1)])  # fmt: skip


def _level(concurrency: int, throughput: float | None, p95: float, errors: int = 0) -> dict:
    latency = {"p50": p95 / 2, "p95": p95, "p99": p95} if throughput else None
    return {"concurrency": concurrency, "requests": 10, "errors": errors,
            "throughput": throughput, "latencyMs": latency}  # fmt: skip


def test_the_delay_chosen_serves_the_most_within_the_objective():
    from modelport.benchmarking.served import choose_delay, summarize_delay

    runs = [
        {"maxDelayMs": 0, "levels": [_level(1, 50.0, 20.0), _level(8, 100.0, 80.0)]},
        {"maxDelayMs": 5, "levels": [_level(1, 45.0, 25.0), _level(8, 140.0, 90.0)]},
        {"maxDelayMs": 20, "levels": [_level(1, 30.0, 40.0), _level(8, 160.0, 150.0)]},
    ]
    chosen, sentence = choose_delay(runs, slo_ms=100.0)
    assert chosen["maxDelayMs"] == 5  # 20 ms serves more, but over the objective
    assert sentence.startswith("batching delay 5 ms serves the most: 140.0 req/s (p95 <= 100 ms)")
    assert "0 ms: 100.0 req/s" in sentence and "20 ms: 30.0 req/s" in sentence
    assert choose_delay(runs, slo_ms=None)[0]["maxDelayMs"] == 20
    # errors disqualify a level; a tie goes to the shorter delay
    runs[1]["levels"][1]["errors"] = 3
    assert choose_delay(runs, slo_ms=100.0)[0]["maxDelayMs"] == 0
    tie = [{"maxDelayMs": 10, "levels": [_level(4, 90.0, 10.0)]},
           {"maxDelayMs": 2, "levels": [_level(4, 90.0, 12.0)]}]  # fmt: skip
    assert choose_delay(tie, slo_ms=None)[0]["maxDelayMs"] == 2
    # nothing meets it: the lowest worst p95, said so
    chosen, sentence = choose_delay(runs, slo_ms=5.0)
    assert chosen["maxDelayMs"] == 0
    assert sentence == "no batching delay met p95 <= 5 ms: 0 ms came closest (worst p95 80.0 ms)"
    summary = summarize_delay(runs[2], 100.0)
    assert (summary["bestThroughput"], summary["worstP95Ms"], summary["meetsObjective"]) == (
        30.0,
        150.0,
        True,
    )
    failed = summarize_delay({"maxDelayMs": 1, "levels": [_level(1, None, 0.0, errors=4)]}, None)
    assert failed["bestThroughput"] is None and failed["worstP95Ms"] is None  # never Infinity
    assert failed["meetsObjective"] is False


def test_each_delay_is_served_by_a_server_running_it(tiny_models, cache, monkeypatch):
    """batchDelaysMs: one server per delay, each checked (its /health) to run the rendered
    delay even when the worker's own environment sets MAX_BATCH_DELAY_MS; the section reports
    the chosen delay's levels."""
    monkeypatch.setenv("MAX_BATCH_DELAY_MS", "777")  # a worker's setting must not leak in
    model = tiny_models["text-classification"]
    facts = resolve(ModelRef(model.repo_id))
    config = BenchmarkConfig(batch_sizes=[1, 2], iterations=4, warmup=1, sequence_length=8,
                             max_memory_bytes=16 * GiB, cpu_cores=1.0)  # fmt: skip
    report = run_benchmark(facts, config, cache=cache)
    loaded = cache.get(facts, "cpu", config.optimization_level)
    served = measure_served(
        facts, config, loaded, loaded.folder, batch_size=2, concurrency=[1, 3], threads=1,
        rows=report.rows, delays=[0, 25], slo_ms=None,
    )  # fmt: skip
    assert [d["maxDelayMs"] for d in served["delays"]] == [0, 25]
    for delay in served["delays"]:
        assert [lv["concurrency"] for lv in delay["levels"]] == [1, 3]
        assert all(lv["errors"] == 0 for lv in delay["levels"])
        assert delay["bestThroughput"] == max(lv["throughput"] for lv in delay["levels"])
    chosen = next(d for d in served["delays"] if d["maxDelayMs"] == served["maxDelayMs"])
    assert served["levels"] == chosen["levels"]
    assert chosen["bestThroughput"] == max(d["bestThroughput"] for d in served["delays"])
    assert served["delaySentence"].startswith(f"batching delay {served['maxDelayMs']} ms")
    for delay in served["delays"]:  # from each server's own /metrics after its load
        assert 50 < delay["serverMemoryMb"] < 4096
        assert 1.0 <= delay["meanBatchSize"] <= 2.0  # the server's max batch size is 2
