"""The optimal-batch rules and the recommendation sentences, on crafted figures."""

from __future__ import annotations

import re

import pytest

from modelport.benchmarking.analysis import optimal_batch_size, recommendations
from modelport.benchmarking.config import BenchmarkConfig

GiB = 2**30


def row(size, throughput, p95, *, cv=0.02, peak_mb=500.0, status="ok", stable=True, cost=None):
    p50 = p95 * 0.9
    return {
        "batchSize": size,
        "status": status,
        "message": None if status == "ok" else "details",
        "throughput": throughput,
        "latencyMs": {
            "mean": p50,
            "p50": p50,
            "p95": p95,
            "p99": p95 * 1.05,
            "std": cv * p50,
            "cv": cv,
        },
        "stable": stable,
        "peakRssMb": peak_mb,
        "costPerMillion": cost,
    }


def config(**kw):
    kw.setdefault("max_memory_bytes", 2 * GiB)
    return BenchmarkConfig(batch_sizes=[1, 8, 32], **kw)


CURVE = [row(1, 100.0, 10.0), row(8, 400.0, 40.0), row(32, 600.0, 120.0)]


def test_best_throughput_without_objective():
    choice = optimal_batch_size(CURVE)
    assert (choice.batch_size, choice.qualified) == (32, True)


def test_latency_objective_filters_on_p95():
    choice = optimal_batch_size(CURVE, slo_ms=50)
    assert (choice.batch_size, choice.qualified) == (8, True)
    assert optimal_batch_size(CURVE, slo_ms=130).batch_size == 32


def test_the_highest_throughput_wins_and_a_near_one_is_offered():
    """Optimal = the highest throughput among the qualified; a smaller batch size within 95% of
    it at a lower p95 is named as the lower-latency alternative (a 1,4 sweep once picked a
    batch size with 26% of the best throughput)."""
    rows = [row(4, 500.0, 5), row(8, 580.0, 8), row(16, 600.0, 15), row(32, 610.0, 30)]
    choice = optimal_batch_size(rows)
    assert (choice.batch_size, choice.qualified, choice.best_throughput) == (32, True, 610.0)
    first = recommendations(rows, config())[0]
    assert first.startswith(
        "Batch size 32 gives the highest throughput of the batch sizes that are stable and fit "
        "in memory: 610.0 samples/s at p95 30.0 ms."
    )
    # 580 >= 0.95 x 610 = 579.5, at p95 8 ms: the smallest such
    assert "Batch size 8 gives 95% of that (580.0 samples/s) at p95 8.00 ms" in first
    rows[1]["throughput"] = 579.0
    assert "Batch size 16 gives 98% of that" in recommendations(rows, config())[0]
    # a tie in throughput goes to the smaller batch size
    assert optimal_batch_size([row(8, 600.0, 10), row(16, 600.0, 20)]).batch_size == 8


def test_memory_limit_filters():
    rows = [row(8, 400.0, 40.0, peak_mb=900), row(32, 600.0, 120.0, peak_mb=3000)]
    assert optimal_batch_size(rows, memory_limit_bytes=2 * GiB).batch_size == 8
    assert optimal_batch_size(rows, memory_limit_bytes=4 * GiB).batch_size == 32


def test_unstable_measurements_are_not_chosen():
    rows = [row(8, 400.0, 40.0), row(32, 600.0, 120.0, cv=0.3, stable=False)]
    assert optimal_batch_size(rows).batch_size == 8


def test_rows_that_did_not_run_are_ignored():
    rows = [row(8, 400.0, 40.0), {"batchSize": 64, "status": "oom", "throughput": None}]
    assert optimal_batch_size(rows).batch_size == 8
    assert optimal_batch_size([{"batchSize": 64, "status": "oom"}]).batch_size is None


def test_none_qualifies_picks_the_least_violating_and_says_so():
    # batch 1: p95 20 ms is 100% over a 10 ms objective; batch 8: 40 ms is 300% over.
    rows = [row(1, 100.0, 20.0), row(8, 400.0, 40.0)]
    choice = optimal_batch_size(rows, slo_ms=10)
    assert (choice.batch_size, choice.qualified) == (1, False)
    assert choice.violations == {"latency": pytest.approx(1.0)}
    text = recommendations(rows, config(latency_slo_ms=10))
    assert text[0].startswith("No batch size met every requirement")
    assert "batch size 1 violates them least" in text[0]
    assert "100% over the 10.0 ms objective" in text[0]


def test_least_violating_compares_normalised_violations_across_requirements():
    slow = row(8, 400.0, 55.0)  # 10% over a 50 ms objective
    big = row(32, 600.0, 45.0, peak_mb=3072)  # 50% over a 2 GiB limit
    shaky = row(4, 300.0, 30.0, cv=0.25, stable=False)  # cv 2.5x the 0.10 bound
    choice = optimal_batch_size([slow, big, shaky], slo_ms=50, memory_limit_bytes=2 * GiB)
    assert (choice.batch_size, choice.qualified) == (8, False)
    choice = optimal_batch_size([big, shaky], slo_ms=50, memory_limit_bytes=2 * GiB)
    assert choice.batch_size == 32  # 0.5 (memory) beats 1.5 (spread)


def test_recommendations_name_the_knee_latency_cost_and_headroom():
    rows = [row(1, 100.0, 10.0, peak_mb=400), row(8, 181.0, 40.0, peak_mb=450),
            row(32, 190.0, 120.0, peak_mb=512)]  # fmt: skip
    text = recommendations(rows, config())
    joined = "\n".join(text)
    assert text[0].startswith("Batch size 32 gives the highest throughput")
    assert "Batch size 8 gives 95% of that (181.0 samples/s) at p95 40.0 ms" in text[0]
    assert "Throughput levels off at batch size 8: batch size 32 adds only 5.0%" in joined
    text = recommendations(rows, config(latency_slo_ms=50))
    assert text[0].startswith(
        "Batch size 8 gives the highest throughput of the batch sizes that meet every requirement: "
        "181.0 samples/s at p95 40.0 ms within the 50.0 ms p95 objective."
    )
    joined = "\n".join(text)
    assert "Going from batch size 8 to 32 costs +80.0 ms p95 (40.0 ms -> 120.0 ms)" in joined
    assert "+5.0% throughput" in joined
    assert "Peak memory 512 MiB (batch size 32) is 25% of the 2.0 GiB limit" in joined
    assert "1.5 GiB of headroom" in joined


def test_falling_throughput_is_said_to_fall():
    """A recommendation once read "batch size 4 adds only -73.6%"."""
    rows = [row(1, 100.0, 10.0), row(4, 26.4, 150.0)]
    joined = "\n".join(recommendations(rows, config()))
    assert (
        "Throughput falls past batch size 1: batch size 4 gives 73.6% less (100.0 -> 26.4" in joined
    )
    assert "adds only" not in joined


def test_recommendations_report_growth_unstable_rows_and_failures():
    rows = [
        row(1, 100.0, 10.0),
        row(8, 400.0, 40.0, cv=0.21, stable=False),
        {"batchSize": 64, "status": "oom", "message": "out of memory at batch 64: CUDA"},
        {"batchSize": 128, "status": "over_memory_limit", "message": "not run: too big"},
    ]
    joined = "\n".join(recommendations(rows, config()))
    assert "Throughput still grows at the largest batch size measured (8: +300.0% over 1)" in joined
    assert "batch size 8 (cv 0.21) are not stable" in joined
    assert "Batch size 64 ran out of memory" in joined
    assert "Batch size 128 was not run: too big." in joined


def test_cpu_or_gpu_cheaper_sentence_with_numbers():
    cpu = [row(1, 40.0, 30.0, cost=9.5), row(8, 60.0, 140.0, cost=3.10)]
    gpu_report = {
        "details": [row(8, 900.0, 9.0, cost=0.9), row(64, 4000.0, 16.0, cost=0.42)],
        "device": {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"},
    }
    text = recommendations(cpu, config(), gpu_report, device={"type": "cpu", "name": "EPYC"})
    last = text[-1]
    assert last.startswith("The GPU queue is cheaper: $0.42 per million inferences (batch size 64")
    assert "NVIDIA H100 80GB HBM3" in last
    assert "against $3.1 on the CPU queue (batch size 8 on EPYC), 7.4x less." in last
    # and from the GPU side, with the CPU figures as bare rows
    text = recommendations(gpu_report, config(device="cuda"), cpu)
    assert text[-1].startswith("The GPU queue is cheaper: $0.42")


def test_no_device_comparison_without_the_other_figures():
    text = recommendations(CURVE, config())
    assert not any(re.search(r"queue is cheaper", t) for t in text)
