"""SPEC's response shape, the config bounds and the price table with its overrides."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.cost import cost_per_inference, gpu_type, hourly_price, load_prices
from modelport.benchmarking.report import BatchResult, BenchmarkReport, LatencyStats
from modelport.core.errors import BadRequest


def test_latency_stats_match_numpy():
    samples = [5.0, 7.0, 6.0, 30.0, 5.5, 6.5, 6.1, 5.9]
    stats = LatencyStats.from_samples(samples)
    for q, value in ((50, stats.p50), (95, stats.p95), (99, stats.p99)):
        assert value == pytest.approx(np.percentile(samples, q))
    assert stats.std == pytest.approx(np.std(samples, ddof=1))
    assert stats.cv == pytest.approx(np.std(samples, ddof=1) / np.mean(samples))
    assert not stats.stable  # one 30 ms outlier: cv ~0.9
    assert LatencyStats.from_samples([10.0, 10.2, 9.9, 10.1]).stable
    assert not LatencyStats.from_samples([10.0, 10.0]).stable  # too few to judge


def _report() -> BenchmarkReport:
    config = BenchmarkConfig(batch_sizes=[8, 1, 64, 32], iterations=10, warmup=2)
    ok = LatencyStats.from_samples([10.0, 11.0, 10.5])
    rows = [  # in another order than the request's
        BatchResult(1, throughput=90.0, latency=ok, stable=True, peak_rss_mb=400.0,
                    cost_per_inference=1e-7, iterations=3),
        BatchResult(8, throughput=700.0, latency=ok, stable=True, peak_rss_mb=420.0,
                    cost_per_inference=2e-8, iterations=3),
        BatchResult(32, status="over_memory_limit", message="not run: too big"),
        BatchResult(64, status="oom", message="out of memory", peak_rss_mb=900.0),
    ]  # fmt: skip
    report = BenchmarkReport({"repoId": "a/b"}, config, {"type": "cpu"}, rows)
    report.analyze()
    return report


def test_spec_arrays_are_aligned_with_the_request_and_null_where_not_run():
    spec = _report().to_spec()
    assert set(spec["results"]) == {"throughput", "latency", "memory_usage", "cost_per_inference"}
    assert spec["results"]["throughput"] == [700.0, 90.0, None, None]
    assert spec["results"]["latency"] == [pytest.approx(10.5)] * 2 + [None, None]
    assert spec["results"]["memory_usage"] == [420.0, 400.0, None, None]
    assert spec["results"]["cost_per_inference"] == [2e-8, 1e-7, None, None]
    assert spec["analysis"]["optimal_batch_size"] == 8
    assert all(isinstance(s, str) for s in spec["analysis"]["resource_recommendations"])
    assert [d["batchSize"] for d in spec["details"]] == [8, 1, 64, 32]
    assert [d["status"] for d in spec["details"]] == ["ok", "ok", "oom", "over_memory_limit"]
    assert set(spec["details"][0]["latencyMs"]) == {"mean", "p50", "p95", "p99", "std", "cv"}


def test_spec_round_trip_and_metric_rows():
    report = _report()
    again = BenchmarkReport.from_spec(report.to_spec())
    assert again.to_spec() == report.to_spec()
    assert report.metric_rows() == [
        {"batch_size": 1, "throughput": 90.0, "latency": pytest.approx(10.5), "memory_mb": 400.0,
         "gpu_memory_mb": None, "cost_per_inference": 1e-7},
        {"batch_size": 8, "throughput": 700.0, "latency": pytest.approx(10.5),
         "memory_mb": 420.0, "gpu_memory_mb": None, "cost_per_inference": 2e-8},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_sizes", []), ("batch_sizes", [0]), ("batch_sizes", [1025]), ("batch_sizes", [2, 2]),
     ("batch_sizes", list(range(1, 18))), ("iterations", 0), ("iterations", 10_001),
     ("warmup", -1), ("sequence_length", 0), ("device", "gpu"), ("optimization_level", "max"),
     ("latency_slo_ms", 0), ("max_new_tokens", 0), ("batch_sizes", [True])],
)  # fmt: skip
def test_config_bounds(field, value):
    kwargs = {"batch_sizes": [1], field: value}
    with pytest.raises(BadRequest):
        BenchmarkConfig(**kwargs)


@pytest.mark.parametrize(
    ("request_field", "field", "top"),
    [("iterations", "iterations", 10_000), ("warmup", "warmup", 1_000),
     ("sequenceLength", "sequence_length", 8192), ("maxNewTokens", "max_new_tokens", 512)],
)  # fmt: skip
def test_what_the_api_accepts_the_worker_accepts(request_field, field, top):
    """One set of bounds: a request the API accepts never fails later in the worker (a `?wait`
    call answered 500 for iterations between 1,001 and 10,000)."""
    from pydantic import ValidationError

    from modelport.core.schemas import BenchmarkRequest

    BenchmarkRequest(modelId="org/m", **{request_field: top})
    BenchmarkConfig(batch_sizes=[1], **{field: top})
    with pytest.raises(ValidationError):
        BenchmarkRequest(modelId="org/m", **{request_field: top + 1})
    with pytest.raises(BadRequest):
        BenchmarkConfig(batch_sizes=[1], **{field: top + 1})


def test_config_fingerprint_and_dict_round_trip():
    a = BenchmarkConfig(batch_sizes=[1, 8], iterations=20, latency_slo_ms=50.0)
    b = BenchmarkConfig(batch_sizes=[8, 1], iterations=20, latency_slo_ms=50.0)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != BenchmarkConfig(batch_sizes=[1, 8], iterations=21).fingerprint()
    assert BenchmarkConfig.from_dict(a.to_dict()) == a
    assert a.to_dict()["latencySloMs"] == 50.0


def test_price_table_defaults():
    prices = load_prices({})
    assert prices["cpu_core_hour"] == 0.0446
    assert prices["gpu_hour"]["H100"] == 6.88
    assert set(prices["gpu_hour"]) >= {"H100", "H200", "A100", "L4", "T4", "A10G", "default"}
    price = hourly_price("cpu", cores=2, prices=prices)
    assert price.usd_per_hour == pytest.approx(0.0892)
    assert cost_per_inference(100.0, price) == pytest.approx(0.0892 / 3600 / 100)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100"), ("NVIDIA H200", "H200"),
     ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A10G", "A10G"), ("NVIDIA L4", "L4"),
     ("Tesla T4", "T4"), ("NVIDIA L40S", None), ("NVIDIA GH200 480GB", None), (None, None)],
)  # fmt: skip
def test_gpu_types_by_device_name(name, kind):
    assert gpu_type(name) == kind


def test_prices_file_overrides_part_of_the_table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("gpu_hour:\n  H100: 2.49\n")
    prices = load_prices({"MODELPORT_PRICES": str(path)})
    assert prices["gpu_hour"]["H100"] == 2.49
    assert prices["gpu_hour"]["A100"] == 4.10  # kept from the repo's table
    assert prices["cpu_core_hour"] == 0.0446
    price = hourly_price("cuda", cores=4, gpu_name="NVIDIA H100 80GB HBM3", prices=prices)
    assert price.usd_per_hour == 2.49
    assert "H100" in price.basis


def test_environment_floats_override_the_file(tmp_path, monkeypatch):
    path = tmp_path / "prices.yaml"
    path.write_text("cpu_core_hour: 0.05\n")
    monkeypatch.setenv("MODELPORT_PRICES", str(path))
    assert load_prices()["cpu_core_hour"] == 0.05
    monkeypatch.setenv("PRICE_CPU_CORE_HOUR", "0.1")
    monkeypatch.setenv("PRICE_GPU_HOUR", "1.5")
    assert hourly_price("cpu", cores=3).usd_per_hour == pytest.approx(0.3)
    assert hourly_price("cuda", cores=3, gpu_name="NVIDIA A100").usd_per_hour == 1.5
    assert hourly_price("cuda", cores=3, gpu_name="Some New GPU").usd_per_hour == 1.5


def test_bad_prices_are_refused(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("gpu_hour:\n  H100: cheap\n")
    with pytest.raises(ValueError, match=r"gpu_hour\.H100"):
        load_prices({"MODELPORT_PRICES": str(path)})
    with pytest.raises(ValueError, match="PRICE_GPU_HOUR"):
        load_prices({"PRICE_GPU_HOUR": "-1"})
