"""Real sweeps: all-MiniLM-L6-v2, a tiny GPT-2 and a tiny BART, with small iterations."""

from __future__ import annotations

import math

import pytest

from modelport.benchmarking import BenchmarkConfig, run_benchmark
from modelport.benchmarking.inputs import build_inputs, sequence_length
from modelport.benchmarking.memwatch import estimate_batch_bytes, rss_bytes
from modelport.benchmarking.modelcache import ModelCache
from modelport.benchmarking.runner import threads_for
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import resolve

GiB = 2**30


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(4 * GiB)


@pytest.fixture(scope="module")
def minilm_facts(minilm):
    return resolve(ModelRef(minilm.repo_id))


def small(sizes, **kw) -> BenchmarkConfig:
    kw.setdefault("iterations", 5)
    kw.setdefault("warmup", 1)
    kw.setdefault("sequence_length", 32)
    kw.setdefault("max_memory_bytes", 16 * GiB)
    kw.setdefault("cpu_cores", 2.0)
    return BenchmarkConfig(batch_sizes=sizes, **kw)


def test_minilm_sweep(minilm_facts, cache, monkeypatch):
    monkeypatch.setenv("PRICE_CPU_CORE_HOUR", "0.05")
    calls: list[tuple[float, str]] = []
    report = run_benchmark(
        minilm_facts, small([4, 1]), progress=lambda f, s: calls.append((f, s)), cache=cache
    )
    assert cache.loads == 1
    one, four = report.row(1), report.row(4)
    for row in (one, four):
        assert row.status == "ok", row.message
        assert row.iterations == 5 and row.warmup == 1 and row.sequence_length == 32
        lat = row.latency
        assert 0 < lat.p50 <= lat.p95 <= lat.p99
        # throughput = samples / total timed time, latency = ms per batch
        assert row.throughput == pytest.approx(row.batch_size * 1000 / lat.mean)
        assert row.peak_rss_mb > 100
        assert row.cost_per_inference == pytest.approx(2 * 0.05 / 3600 / row.throughput)
        assert row.cost_per_million == pytest.approx(row.cost_per_inference * 1e6)
        # a fraction of what the machine can do (it once read 1.15-1.51: a probe that missed
        # the peak); the peak is the best probe in the dtype the model runs
        assert 0 < row.flops_fraction <= 1.0, (row.flops_fraction, report.device)
        assert row.achieved_flops_per_s == pytest.approx(row.flops / (lat.mean / 1000))
    # FLOPs of a forward grow linearly with the batch (plus nothing else)
    assert four.flops == pytest.approx(4 * one.flops, rel=1e-6)
    # 6 layers x (Q, K, V, O + 2 FFN matmuls) x 2 FLOPs x tokens, plus attention
    tokens, hidden = 32, 384
    linear = 6 * 2 * tokens * (4 * hidden * hidden + 2 * hidden * 1536)
    assert linear < one.flops < linear * 1.1
    spec = report.to_spec()
    assert spec["results"]["throughput"] == [four.throughput, one.throughput]
    assert spec["analysis"]["optimal_batch_size"] in (1, 4)
    assert spec["device"]["threads"] == threads_for(2.0) >= 1
    assert spec["device"]["applied"]["attention"] == "sdpa"
    # progress: from 0 to 1, never backwards, each batch size announced, iterations reported
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    stages = [s for _, s in calls]
    assert "batch 4: starting" in stages and "batch 1: starting" in stages
    assert stages.index("batch 4: starting") < stages.index("batch 1: starting")
    assert stages[-1] == "done"
    assert len(calls) <= 2 * 2 + 2 + math.ceil(report.duration_s * 10) + 1

    # a second sweep reuses the loaded model
    run_benchmark(minilm_facts, small([2], iterations=2, warmup=0), cache=cache)
    assert cache.loads == 1


def test_inputs_have_exactly_the_requested_length(minilm_facts, cache):
    loaded = cache.get(minilm_facts, "cpu", "standard")
    assert sequence_length(loaded, 128) == 128
    assert sequence_length(loaded, 5000) == 256  # the model's max_seq_length
    inputs = build_inputs(loaded, 3, 40)
    ids, mask = inputs.tensors["input_ids"], inputs.tensors["attention_mask"]
    assert tuple(ids.shape) == (3, 40) and bool(mask.all())
    assert inputs.tensors["input_ids"].device.type == "cpu"
    assert cache.loads == 1


def test_batch_estimated_over_the_limit_is_not_run(minilm_facts, cache):
    loaded = cache.get(minilm_facts, "cpu", "standard")
    big = estimate_batch_bytes(loaded, 1024, 32, 0)
    assert big > 600 * 2**20
    limit = rss_bytes() + 300 * 2**20
    config = small([1, 1024, 2], max_memory_bytes=limit)
    report = run_benchmark(minilm_facts, config, cache=cache)
    statuses = [report.row(s).status for s in (1, 1024, 2)]
    assert statuses == ["ok", "over_memory_limit", "ok"]
    skipped = report.row(1024)
    assert skipped.message.startswith("not run:") and skipped.iterations == 0
    spec = report.to_spec()
    assert spec["results"]["throughput"][1] is None
    assert spec["results"]["throughput"][0] > 0 and spec["results"]["throughput"][2] > 0
    assert any("Batch size 1024 was not run" in s for s in report.recommendations)
    assert [m["batch_size"] for m in report.metric_rows()] == [1, 2]


@pytest.mark.parametrize("task", ["text-generation", "text2text-generation"])
def test_generative_sweep_fixes_the_output_length(tiny_models, task):
    facts = resolve(ModelRef(tiny_models[task].repo_id))
    config = small([1, 2], iterations=3, sequence_length=8, max_new_tokens=4)
    report = run_benchmark(facts, config, cache=ModelCache(GiB))
    for row in report.rows:
        assert row.status == "ok", row.message
        assert row.message is None  # exactly max_new_tokens were generated
        assert 0 < row.ttft_ms < row.latency.mean
        decode_ms = row.batch_size * 3 / row.decode_tokens_per_s * 1000  # tokens 2..4
        assert row.ttft_ms + decode_ms <= row.latency.mean
        assert row.throughput == pytest.approx(row.batch_size * 1000 / row.latency.mean)
        assert row.flops > 0
    assert any("first token takes" in s for s in report.recommendations)


def test_causal_prompt_leaves_room_for_new_tokens(tiny_models):
    facts = resolve(ModelRef(tiny_models["text-generation"].repo_id))  # 128 positions
    loaded = ModelCache(GiB).get(facts, "cpu", "standard")
    assert sequence_length(loaded, 500, max_new_tokens=16) == 112


def test_token_clock_marks_every_generated_token(tiny_models):
    from modelport.benchmarking.steps import generate_step, token_clock

    facts = resolve(ModelRef(tiny_models["text-generation"].repo_id))
    loaded = ModelCache(GiB).get(facts, "cpu", "standard")
    inputs = build_inputs(loaded, 2, 8)
    clock = token_clock("cpu")
    step = generate_step(loaded, inputs, 5, clock)
    for _ in range(3):
        assert tuple(step().shape) == (2, 8 + 5)
    assert [len(run) for run in clock.runs] == [6, 6, 6]  # the call, then one mark per token
    ttft, decode = clock.summary(2)
    assert ttft > 0 and decode > 0
    clock.reset()
    assert clock.summary(2) == (None, None)


def test_cost_is_priced_on_the_cores_the_sweep_ran_on(minilm_facts, cache, monkeypatch):
    """MAX_CPU_CORES=8 on a machine that gives the worker fewer CPUs: the sweep runs on the
    CPUs it has and is priced for those, not for 8."""
    import os

    monkeypatch.setenv("PRICE_CPU_CORE_HOUR", "0.05")
    ran_on = threads_for(8.0)
    assert ran_on == min(8, len(os.sched_getaffinity(0)))
    report = run_benchmark(minilm_facts, small([1], cpu_cores=8.0), cache=cache)
    row = report.row(1)
    assert report.device["threads"] == ran_on
    assert report.device["usdPerHour"] == pytest.approx(ran_on * 0.05)
    assert row.cost_per_inference == pytest.approx(ran_on * 0.05 / 3600 / row.throughput)
    assert report.device["priceBasis"].startswith(f"{ran_on} cores x")


def test_an_unstable_window_is_measured_again_and_the_quietest_reported(minilm_facts):
    """perf_analyzer-style: a window whose spread fails the stability rule is timed again (at
    most MAX_WINDOWS); the first stable window, else the least spread one, is reported."""
    import time

    from modelport.benchmarking.report import BatchResult, LatencyStats
    from modelport.benchmarking.runner import MAX_WINDOWS, _Sweep

    config = BenchmarkConfig(batch_sizes=[1], iterations=10, warmup=0, cpu_cores=1.0)
    sweep = _Sweep(minilm_facts, config, None, ())
    calls = []

    def step():  # the first window alternates 1 ms and 8 ms; later ones are steady 3 ms
        calls.append(1)
        time.sleep(0.008 if len(calls) <= 10 and len(calls) % 2 else 0.001)
        if len(calls) > 10:
            time.sleep(0.002)

    row = BatchResult(1)
    spans = sweep._stable_window(step, row, None, None)
    assert 2 <= row.windows <= MAX_WINDOWS and len(calls) == 10 * row.windows
    assert len(spans) == 10
    noisy = LatencyStats.from_samples([8.0, 1.0] * 5)
    assert LatencyStats.from_samples(spans).cv < noisy.cv / 2  # not the first window

    few = BenchmarkConfig(batch_sizes=[1], iterations=2, warmup=0, cpu_cores=1.0)
    calls.clear()
    short = BatchResult(1)
    _Sweep(minilm_facts, few, None, ())._stable_window(step, short, None, None)
    assert short.windows == 1 and len(calls) == 2  # 2 iterations can never be stable


def test_evicting_a_model_drops_every_configuration_of_it(minilm_facts):
    loads = []

    def loader(facts, device, level):
        from modelport.benchmarking.modelcache import LoadedModel

        loads.append(level)
        return LoadedModel(None, None, facts.task, "encoder", device, None, nbytes=1)

    cache = ModelCache(10 * GiB, loader=loader)
    for level in ("none", "standard"):
        cache.get(minilm_facts, "cpu", level)
    assert cache.evict("someone/else") == 0
    assert cache.evict(minilm_facts.repo_id) == 2 and cache.cached_keys() == []
    cache.get(minilm_facts, "cpu", "none")
    assert loads == ["none", "standard", "none"]
