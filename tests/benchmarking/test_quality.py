"""The quality gate on real models: optimized levels are compared with float32 before their
figures may back a recommendation."""

from __future__ import annotations

import pytest

from modelport.benchmarking import BenchmarkConfig, quality, run_benchmark
from modelport.benchmarking.modelcache import ModelCache, load_model
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import resolve

GiB = 2**30
TASKS = [
    "text-classification", "token-classification", "question-answering", "fill-mask",
    "zero-shot-classification", "text-generation", "text2text-generation",
    "image-classification", "feature-extraction",
]  # fmt: skip
METRICS = {
    "text-generation": "greedy_tokens_identical",
    "text2text-generation": "greedy_tokens_identical",
    "feature-extraction": "min_cosine",
}


@pytest.mark.parametrize("task", TASKS)
def test_the_standard_level_computes_what_float32_computes(tiny_models, task):
    facts = resolve(ModelRef(tiny_models[task].repo_id))
    candidate = load_model(facts, "cpu", "standard")
    found = quality.check(candidate, load_model(facts, "cpu", "none"), 32)
    assert found.metric == METRICS.get(task, "top1_agreement")
    assert found.passed, found.to_dict()
    assert found.inputs >= len(quality.TEXTS) // 2
    if found.metric == "top1_agreement":
        assert found.value == 1.0 and found.extra["maxProbabilityDiff"] < 1e-3


def test_a_model_that_computes_something_else_fails(minilm):
    """The same weights with noise in one layer: the gate must see it (and say by how much)."""
    import torch

    facts = resolve(ModelRef(minilm.repo_id))
    reference = load_model(facts, "cpu", "none")
    assert quality.check(load_model(facts, "cpu", "standard"), reference, 64).value > 0.9999
    damaged = load_model(facts, "cpu", "standard")
    with torch.no_grad():
        weight = damaged.model.encoder.layer[0].attention.self.query.weight
        weight.add_(torch.randn_like(weight, generator=torch.Generator().manual_seed(0)) * 0.2)
    found = quality.check(damaged, reference, 64)
    assert found.metric == "min_cosine" and not found.passed
    assert found.value < quality.MIN_COSINE and found.inputs == len(quality.TEXTS)


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
