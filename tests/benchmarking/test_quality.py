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
    """Today's CPU 'aggressive' level (per-tensor dynamic int8) moves MiniLM's embeddings
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
