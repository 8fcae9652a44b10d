"""The benchmark's quality gate: a level is compared with float32 before its figures may back a
recommendation (the gate itself: tests/runtime/test_quality.py)."""

from __future__ import annotations

from modelport.benchmarking import BenchmarkConfig, run_benchmark
from modelport.benchmarking.modelcache import ModelCache
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import resolve
from modelport.runtime import quality

GiB = 2**30


def test_dynamic_int8_minilm_is_reported_and_recommends_nothing(minilm):
    """The CPU 'aggressive' level (dynamic int8, per-channel) moves MiniLM's embeddings
    below 0.999 cosine: the sweep is reported, the gate's numbers with it, and nothing is
    recommended."""
    facts = resolve(ModelRef(minilm.repo_id))
    config = BenchmarkConfig(
        batch_sizes=[1, 4], iterations=3, warmup=1, sequence_length=32,
        optimization_level="aggressive", max_memory_bytes=16 * GiB, cpu_cores=2.0,
    )  # fmt: skip
    report = run_benchmark(facts, config, cache=ModelCache(4 * GiB))
    spec = report.to_spec()
    gate = spec["quality"]
    assert gate["metric"] == "min_cosine" and gate["passed"] is False
    assert gate["value"] < quality.MIN_COSINE and gate["threshold"] == quality.MIN_COSINE
    assert all(row["status"] == "ok" for row in spec["details"])  # still measured
    analysis = spec["analysis"]
    assert analysis["optimalMeetsRequirements"] is False
    first = analysis["resource_recommendations"][0]
    assert first.startswith("Do not ship optimization level 'aggressive'")
    assert f"min_cosine {gate['value']:.4g}" in first
    assert not any(s.startswith("Batch size") for s in analysis["resource_recommendations"])


def test_the_reference_level_has_no_gate(minilm):
    facts = resolve(ModelRef(minilm.repo_id))
    config = BenchmarkConfig(
        batch_sizes=[1], iterations=3, warmup=0, sequence_length=16, optimization_level="none",
        max_memory_bytes=16 * GiB, cpu_cores=2.0,
    )  # fmt: skip
    cache = ModelCache(4 * GiB)
    report = run_benchmark(facts, config, cache=cache)
    assert report.quality is None and report.to_spec()["quality"] is None
    assert cache.loads == 1


def test_the_gate_is_remembered_and_skipped_when_the_reference_does_not_fit(minilm):
    from modelport.benchmarking import quality as gate
    from modelport.benchmarking.analysis import recommendations
    from modelport.benchmarking.memwatch import rss_bytes
    from modelport.benchmarking.modelcache import load_model

    facts = resolve(ModelRef(minilm.repo_id))
    candidate = load_model(facts, "cpu", "standard")
    loads = []

    def reference():
        loads.append(1)
        return load_model(facts, "cpu", "none")

    gate._RESULTS.clear()
    first = gate.gate(facts, candidate, "standard", 24, reference, 16 * GiB)
    again = gate.gate(facts, candidate, "standard", 24, reference, 16 * GiB)
    assert first == again and first["passed"] is True and len(loads) == 1
    # no room beside the candidate for MiniLM's ~90 MB of float32 weights: skipped, not loaded
    gate._RESULTS.clear()
    tight = rss_bytes() + 10 * 2**20
    skipped = gate.gate(facts, candidate, "standard", 24, reference, tight)
    assert skipped["passed"] is None and skipped["metric"] == "skipped" and len(loads) == 1
    assert "the float32 reference needs about" in skipped["reason"]
    config = BenchmarkConfig(batch_sizes=[1], iterations=3)
    latency = {"mean": 100.0, "p50": 100.0, "p95": 100.0, "p99": 100.0, "cv": 0.01}
    rows = [{"batchSize": 1, "status": "ok", "throughput": 10.0, "stable": True,
             "latencyMs": latency}]  # fmt: skip
    said = recommendations(rows, config, quality=skipped)
    assert said[0].startswith("Batch size 1 gives the highest throughput")
    assert any(s.startswith("The quality gate against float32 was skipped") for s in said)
    broken = recommendations(rows, config, quality={"passed": False, "metric": "error",
                                                     "error": "RuntimeError: boom"})  # fmt: skip
    assert broken[0].startswith("Do not ship optimization level 'standard' on these figures")
