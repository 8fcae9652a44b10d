"""Configuration search (benchmarking/search.py): the table, the Pareto front, the quality
gate and the recommendation, on hand-made rows whose arithmetic is checked by hand."""

from __future__ import annotations

import pytest

from modelport.benchmarking.search import pareto, search_levels, summarize

MiB = 2**20
PASSED = {"passed": True, "metric": "min_cosine", "value": 0.9999, "threshold": 0.999}
FAILED = {"passed": False, "metric": "min_cosine", "value": 0.968, "threshold": 0.999}


def row(size, throughput, p95, rss=500.0, *, cv=0.02, status="ok", cost=None):
    return {
        "batchSize": size,
        "status": status,
        "throughput": throughput,
        "latencyMs": {
            "mean": p95 * 0.9,
            "p50": p95 * 0.9,
            "p95": p95,
            "p99": p95 * 1.1,
            "std": 0.1,
            "cv": cv,
        },
        "stable": cv <= 0.10,
        "peakRssMb": rss,
        "costPerInference": cost if cost is not None else 1 / throughput / 1e4,
        "costPerMillion": (cost if cost is not None else 1 / throughput / 1e4) * 1e6,
    }


def reports():
    return {
        "none": {"details": [row(1, 40.0, 30.0), row(8, 60.0, 150.0)], "quality": None},
        "standard": {"details": [row(1, 45.0, 26.0), row(8, 70.0, 130.0)], "quality": PASSED},
        "bfloat16": {
            "details": [row(1, 80.0, 14.0, 400), row(8, 130.0, 70.0, 420)],
            "quality": PASSED,
        },
        "aggressive": {
            "details": [row(1, 90.0, 12.0, 300), row(8, 150.0, 60.0, 310)],
            "quality": FAILED,
        },
    }


def test_the_fastest_configuration_that_passes_every_gate_is_recommended():
    found = summarize(reports(), device="cpu", slo_ms=100.0, limit_bytes=4096 * MiB)
    rec = found["recommended"]
    # aggressive is faster but failed its quality gate; bfloat16 batch 8 meets p95 <= 100
    assert rec["options"] == {"batchSize": 8, "gpu": False, "optimizationLevel": "bfloat16"}
    assert rec["meetsRequirements"] is True and rec["rejectedBecause"] == []
    assert rec["speedupVsDefault"] == pytest.approx(130.0 / 40.0)
    assert found["default"] == {"optimizationLevel": "none", "batchSize": 1,
                                "throughput": 40.0, "latencyP95Ms": 30.0}  # fmt: skip
    assert found["sentence"] == (
        "Ship optimization level 'bfloat16' at batch size 8: 130.0 samples/s at p95 70.0 ms, "
        "3.25x the default ('none', batch size 1: 40.0 samples/s); level 'aggressive' failed "
        "the quality gate."
    )
    table = {(r["optimizationLevel"], r["batchSize"]): r for r in found["configurations"]}
    assert len(table) == 8 and [r["recommended"] for r in found["configurations"]].count(True) == 1
    gated = table[("aggressive", 8)]
    assert not gated["qualified"] and not gated["pareto"]
    assert gated["rejectedBecause"] == ["quality gate failed: min_cosine 0.968 (threshold 0.999)"]
    slow = table[("none", 8)]
    assert slow["rejectedBecause"] == ["p95 150.0 ms is over the 100 ms objective"]
    assert table[("none", 1)]["quality"] == {"passed": True, "metric": "reference"}
    # ordered by throughput, fastest first
    speeds = [r["throughput"] for r in found["configurations"]]
    assert speeds == sorted(speeds, reverse=True)


def test_the_objective_and_the_memory_limit_move_the_pick():
    tight = summarize(reports(), device="cpu", slo_ms=20.0, limit_bytes=4096 * MiB)
    assert tight["recommended"]["options"]["batchSize"] == 1
    assert tight["recommended"]["options"]["optimizationLevel"] == "bfloat16"
    small = summarize(reports(), device="cuda", slo_ms=None, limit_bytes=450 * MiB)
    # only bfloat16 (400-420 MiB) fits among those that passed; the options ask for a GPU
    assert small["recommended"]["options"] == {
        "batchSize": 8, "gpu": True, "optimizationLevel": "bfloat16"}  # fmt: skip
    table = {(r["optimizationLevel"], r["batchSize"]): r for r in small["configurations"]}
    assert table[("standard", 8)]["rejectedBecause"] == [
        "peak memory 500 MiB is over the 450 MiB limit"
    ]


def test_when_nothing_qualifies_the_least_violating_gated_one_is_recommended_as_such():
    found = summarize(reports(), device="cpu", slo_ms=5.0, limit_bytes=4096 * MiB)
    rec = found["recommended"]
    # every p95 is over 5 ms; the smallest overshoot among those that passed the gate is
    # bfloat16 at batch 1 (14 ms: 1.8 over), not aggressive (12 ms, failed the gate)
    assert rec["options"] == {"batchSize": 1, "gpu": False, "optimizationLevel": "bfloat16"}
    assert rec["meetsRequirements"] is False
    assert rec["rejectedBecause"] == ["p95 14.0 ms is over the 5 ms objective"]
    assert found["sentence"] == (
        "No configuration met every requirement (p95 at most 5 ms, memory, stable timings); "
        "the least violating is optimization level 'bfloat16' at batch size 1: 80.0 samples/s "
        "at p95 14.0 ms, 2.00x the default ('none', batch size 1: 40.0 samples/s) (p95 14.0 ms "
        "is over the 5 ms objective); level 'aggressive' failed the quality gate."
    )
    assert [r["recommended"] for r in found["configurations"]].count(True) == 1
    assert not any(r["qualified"] for r in found["configurations"])


def test_a_configuration_that_failed_the_gate_is_never_recommended():
    data = {level: spec for level, spec in reports().items() if level == "aggressive"}
    found = summarize(data, device="cpu", slo_ms=None, limit_bytes=None)
    assert found["recommended"] is None
    assert found["sentence"].startswith("No configuration both ran and passed the quality gate")


def test_unstable_and_failed_rows_are_not_recommended():
    data = reports()
    data["bfloat16"]["details"][1] = row(8, 130.0, 70.0, cv=0.3)
    data["standard"]["details"][1] = {"batchSize": 8, "status": "oom", "throughput": None,
                                      "latencyMs": None}  # fmt: skip
    found = summarize(data, device="cpu", slo_ms=100.0, limit_bytes=4096 * MiB)
    assert found["recommended"]["options"]["batchSize"] == 1
    assert found["recommended"]["options"]["optimizationLevel"] == "bfloat16"
    table = {(r["optimizationLevel"], r["batchSize"]): r for r in found["configurations"]}
    assert table[("bfloat16", 8)]["rejectedBecause"] == ["not stable (cv 0.30)"]
    assert ("standard", 8) not in table  # not measured: not a configuration


def test_pareto_front_is_the_non_dominated_set_of_passing_configurations():
    from modelport.benchmarking.search import configurations

    configs = configurations(reports())
    front = {(c.level, c.batch_size) for c in pareto(configs)}
    # bfloat16 dominates none and standard at each batch size (faster, lower p95, less
    # memory, cheaper); batch 1 and batch 8 trade throughput for latency
    assert front == {("bfloat16", 1), ("bfloat16", 8)}
    configs.append(configurations({"x": {"details": [row(32, 200.0, 400.0, 900)],
                                         "quality": PASSED}})[0])  # fmt: skip
    assert ("x", 32) in {(c.level, c.batch_size) for c in pareto(configs)}


def test_search_levels_put_the_reference_first_once():
    assert search_levels("cpu") == [
        "none", "standard", "bfloat16", "aggressive", "onnxruntime", "openvino",
    ]  # fmt: skip
    # ONNX Runtime and OpenVINO run on CPU: a GPU search leaves them out
    assert search_levels("cuda") == ["none", "standard", "bfloat16", "aggressive"]
    assert search_levels("cuda", ["onnxruntime", "bfloat16", "openvino"]) == ["none", "bfloat16"]
    assert search_levels("cpu", ["bfloat16", "none", "bfloat16"]) == ["none", "bfloat16"]


def test_a_search_sweep_stops_a_level_far_over_the_objective(tiny_models):
    """Model Analyzer-style: once a batch size's p95 is over stop_over_objective x the
    objective, larger batch sizes of that level are not run (their p95 would only be higher)
    and say why; smaller ones still are, whatever the order asked."""
    from modelport.benchmarking import BenchmarkConfig, run_benchmark
    from modelport.benchmarking.modelcache import ModelCache
    from modelport.core.modelref import ModelRef
    from modelport.packaging.facts import resolve

    facts = resolve(ModelRef(tiny_models["text-classification"].repo_id))
    cache = ModelCache(2**32)

    def sweep(sizes, **extra):
        config = BenchmarkConfig(batch_sizes=sizes, iterations=3, warmup=0, sequence_length=8,
                                 cpu_cores=1.0, latency_slo_ms=1e-6, **extra)  # fmt: skip
        return {r.batch_size: r for r in run_benchmark(facts, config, cache=cache).rows}

    rows = sweep([4, 1, 2], stop_over_objective=1.5)
    assert rows[4].measured and rows[1].measured  # 1 is smaller than 4: still run
    assert rows[2].status == "over_objective" and not rows[2].measured
    assert rows[2].message.startswith("not run: batch size 1 already had p95 ")
    assert rows[2].message.endswith("over 1.5x the 1e-06 ms objective")
    assert all(r.measured for r in sweep([1, 2]).values())  # a plain benchmark runs them all
    report = summarize(
        {"none": {"details": [r.to_dict() for r in rows.values()], "quality": None}},
        device="cpu", slo_ms=1e-6, limit_bytes=None,
    )  # fmt: skip
    assert report["notRun"] == [
        {"optimizationLevel": "none", "batchSize": 2, "reason": rows[2].message}
    ]
    assert {c["batchSize"] for c in report["configurations"]} == {1, 4}
