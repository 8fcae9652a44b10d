"""Trend test, p95 approximation, Plotly figures and recommendations on crafted data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelport.monitoring import plots
from modelport.monitoring.query import Buckets, mixture_quantile
from modelport.monitoring.recommendations import recommend
from modelport.monitoring.trends import trend

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def hourly(n: int) -> list[datetime]:
    return [T0 + timedelta(hours=i) for i in range(n)]


def test_clear_increase_is_increasing_with_positive_slope():
    rng = np.random.default_rng(1)
    values = 50 + 0.02 * np.arange(240) + rng.normal(0, 0.5, 240)  # +0.48/day
    out = trend(values, hourly(240))
    assert out["direction"] == "increasing"
    assert out["p_value"] < 1e-6
    assert out["slope_per_day"] == pytest.approx(0.48, rel=0.1)
    assert out["change_pct"] > 0


def test_clear_decrease_without_timestamps():
    rng = np.random.default_rng(2)
    values = 100 - np.arange(20) + rng.normal(0, 1, 20)
    out = trend(values)
    assert out["direction"] == "decreasing"
    assert out["test"] == "mann-kendall"
    assert out["slope_per_day"] == pytest.approx(-1.0, rel=0.2)


def test_flat_noise_is_stable():
    values = np.random.default_rng(0).normal(10, 1, 300)
    assert trend(values, hourly(300))["direction"] == "stable"


def test_false_positive_rate_matches_alpha():
    """On pure noise the test says "stable" about 95% of the time at alpha=0.05."""
    stamps = hourly(300)
    flagged = sum(
        trend(np.random.default_rng(seed).normal(10, 1, 300), stamps)["direction"] != "stable"
        for seed in range(200)
    )
    assert flagged / 200 <= 0.09


def test_daily_seasonality_without_trend_is_stable():
    rng = np.random.default_rng(3)
    n = 24 * 14 + 7  # not a whole number of days: a plain test would see a slope
    hours = np.arange(n)
    values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, n)
    out = trend(values, hourly(n))
    assert out["test"] == "seasonal-kendall"
    assert out["direction"] == "stable"
    assert out["p_value"] > 0.05


def test_seasonality_with_trend_is_detected():
    rng = np.random.default_rng(4)
    n = 24 * 14
    hours = np.arange(n)
    values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + 0.05 * hours + rng.normal(0, 1, n)
    assert trend(values, hourly(n))["direction"] == "increasing"


def test_too_few_points_is_stable():
    out = trend([1, 2, 3, 4, 5, 6, 7], hourly(7))
    assert out["direction"] == "stable" and out["p_value"] is None


def test_ties_do_not_break_the_test():
    values = [1.0] * 10 + [2.0] * 10
    out = trend(values, hourly(20))
    assert out["direction"] == "increasing"
    assert trend([5.0] * 20, hourly(20))["direction"] == "stable"


def buckets_from(samples: np.ndarray, per_bucket: int) -> Buckets:
    """Aggregate per-sample (throughput, latency) the way the SQL query does."""
    groups = samples.reshape(-1, per_bucket, 2)
    n = len(groups)
    b = Buckets(start=np.arange(n) * 3600.0, count=np.full(n, float(per_bucket)))
    for k, name in enumerate(("throughput", "latency")):
        v = groups[:, :, k]
        b.sums[name], b.sumsq[name] = v.sum(1), (v * v).sum(1)
        b.mins[name], b.maxs[name] = v.min(1), v.max(1)
    return b


def test_mixture_p95_is_close_to_numpy():
    rng = np.random.default_rng(5)
    hours = np.repeat(np.arange(720), 60)
    lat = 50 * (1 + 0.2 * np.sin(2 * np.pi * hours / 24)) * rng.lognormal(0, 0.08, len(hours))
    tp = 400 / lat * 10
    b = buckets_from(np.column_stack([tp, lat]), 60)
    for k, name in enumerate(("throughput", "latency")):
        exact = np.percentile(np.column_stack([tp, lat])[:, k], 95)
        assert mixture_quantile(b, name) == pytest.approx(exact, rel=0.02)


def series(n: int = 1200) -> dict:
    b = Buckets(start=T0.timestamp() + np.arange(n) * 3600.0, count=np.full(n, 60.0))
    for name in ("throughput", "latency", "cost", "memory", "gpu_memory"):
        b.sums[name] = np.full(n, 60.0 * 2)
    b.gpu_count = np.full(n, 60.0)
    b.cost_volume = np.full(n, 1.0)
    return plots.downsample(b)


def test_performance_plot_has_two_axes_and_is_downsampled():
    fig = plots.performance_over_time(series())
    assert [t["name"] for t in fig["data"]] == ["throughput", "latency"]
    assert [t["yaxis"] for t in fig["data"]] == ["y", "y2"]
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"
    assert all(len(t["x"]) == len(t["y"]) <= plots.MAX_POINTS for t in fig["data"])
    assert fig["data"][0]["y"][0] == 2.0
    assert fig["data"][0]["x"][0].startswith("2026-10-01T00:00")


def test_resource_and_cost_plots():
    d = series(10)
    fig = plots.resource_usage(d)
    assert [t["name"] for t in fig["data"]] == ["memory", "gpu_memory"]
    fig = plots.cost_analysis(d, 60.0)
    assert [t["name"] for t in fig["data"]] == ["cost_per_inference", "cumulative_cost"]
    assert fig["data"][1]["y"] == [60.0 * (i + 1) for i in range(10)]
    assert fig["data"][1]["yaxis"] == "y2"


def test_empty_plots_have_no_traces():
    d = plots.downsample(Buckets(start=np.array([]), count=np.array([])))
    assert plots.performance_over_time(d)["data"] == []
    assert plots.resource_usage(d)["data"] == []
    assert plots.cost_analysis(d, None)["data"] == []


BASELINE = {"batch_size": 16, "throughput": 200.0, "latency": 80.0}


def stats(**over) -> dict:
    base = {
        "samples": 1000,
        "throughput": {"mean": 120.0, "p95": 150.0, "trend": "stable", "trend_detail": {}},
        "latency": {
            "mean": 66.0,
            "p95": 75.0,
            "trend": "increasing",
            "trend_detail": {
                "direction": "increasing",
                "p_value": 0.001,
                "change_pct": 12.5,
                "recent_change_pct": 20.0,
                "test": "seasonal-kendall",
            },
        },
        "costs": {
            "mean": 2e-6,
            "total": 30.0,
            "trend": "increasing",
            "trend_detail": {"direction": "increasing", "p_value": 0.01, "change_pct": 7.25},
        },
        "memory_usage": {"mean": 7000.0, "max": 7800.0},
        "batch_size": {"mean": 4.0},
    }
    base.update(over)
    return base


def test_recommendations_quote_the_numbers():
    out = recommend("org/m", 30, stats(), BASELINE, memory_limit_mb=8192.0)
    text = "\n".join(out)
    assert "Latency is trending up by 12.5%" in text and "20.0%" in text
    assert "40% below the benchmark's 200.0 samples/s at batch size 16" in text
    assert "mean batch size of 4.0" in text and "optimal batch size 16" in text
    assert "7800 MB, 95% of the 8192 MB limit" in text
    assert "rising by 7.2%" in text or "rising by 7.3%" in text
    assert len(out) == 5


def test_recommendations_without_baseline_or_issues():
    quiet = stats(
        latency={"mean": 66.0, "p95": 75.0, "trend": "stable", "trend_detail": {}},
        costs={"mean": 2e-6, "total": 1.0, "trend": "stable", "trend_detail": {}},
        memory_usage={"mean": 100.0, "max": 120.0},
    )
    out = recommend("org/m", 7, quiet, None, memory_limit_mb=8192.0)
    assert len(out) == 1 and out[0].startswith("No action needed")
    assert "120.0 samples/s" in out[0] and "1000 samples" in out[0]


def test_recommendation_for_no_data():
    out = recommend("org/m", 7, {"samples": 0}, None, memory_limit_mb=8192.0)
    assert len(out) == 1
    assert "No deployment samples for org/m in the last 7 days" in out[0]
    assert "POST /api/deployments" in out[0] and "POST /api/benchmark" in out[0]
