"""monitor_report against a real database: SPEC's shape, errors, filters, demo history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from modelport.core.db import session_scope
from modelport.core.errors import NotFound, ValidationFailed
from modelport.core.models import Metric, Model
from modelport.monitoring.demo import load_demo_history
from modelport.monitoring.report import monitor_report
from tests.core.test_storage import database_url  # noqa: F401  (sqlite + postgresql)
from tests.fixtures.services import migrate, reset_process_state

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def new_model() -> str:
    model_id = f"test/mon-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        session.add(Model(id=model_id))
    return model_id


def assert_spec_shape(report: dict) -> None:
    stats = report["statistics"]
    assert set(stats["throughput"]) == {"mean", "p95", "trend"}
    assert set(stats["latency"]) == {"mean", "p95", "trend"}
    assert {"mean", "total", "trend"} <= set(stats["costs"])
    assert set(report["plots"]) == {"performance_over_time", "resource_usage", "cost_analysis"}
    for fig in report["plots"].values():
        assert set(fig) == {"data", "layout"}
    assert report["recommendations"] and all(isinstance(r, str) for r in report["recommendations"])


def test_unknown_model_is_not_found(platform_env):
    with pytest.raises(NotFound) as err:
        monitor_report("nobody/nothing", 7)
    assert err.value.status == 404
    assert "register a deployment or run a benchmark first" in err.value.message
    assert err.value.to_dict()["error"]["code"] == 1008


def test_known_model_without_data_is_well_formed(platform_env):
    model_id = new_model()
    report = monitor_report(model_id, 7, now=NOW)
    assert_spec_shape(report)
    assert report["samples"] == 0
    for name in ("throughput", "latency", "costs"):
        assert report["statistics"][name]["mean"] is None
        assert report["statistics"][name]["trend"] == "stable"
    assert all(fig["data"] == [] for fig in report["plots"].values())
    assert "No deployment samples" in report["recommendations"][0]


@pytest.mark.parametrize("days", [0, -1, 31, 1.5, "7", True])
def test_days_out_of_bounds(platform_env, days):
    with pytest.raises(ValidationFailed) as err:
        monitor_report(new_model(), days)
    assert "1 to 30" in err.value.message


def test_unknown_metric_names_are_refused(platform_env):
    with pytest.raises(ValidationFailed) as err:
        monitor_report(new_model(), 7, ["throughput", "gpu_temp"])
    assert "gpu_temp" in err.value.message and "memory_usage" in err.value.message


def test_small_window_exact_p95_and_metrics_filter(platform_env):
    model_id = new_model()
    rng = np.random.default_rng(0)
    lat = rng.lognormal(3.5, 0.3, 600)
    with session_scope() as session:
        for i, value in enumerate(lat):
            session.add(
                Metric(
                    timestamp=NOW - timedelta(minutes=i + 1),
                    model_id=model_id,
                    batch_size=8,
                    throughput=8000 / value,
                    latency=float(value),
                    memory_mb=500.0,
                    cost_per_inference=1e-6,
                    source="deployment" if i % 2 else None,
                )
            )
        # a benchmark row is the baseline, never part of the statistics
        session.add(
            Metric(timestamp=NOW - timedelta(hours=1), model_id=model_id, batch_size=8,
                   throughput=1.0, latency=1e6, memory_mb=1.0, cost_per_inference=1.0,
                   source="benchmark")
        )  # fmt: skip
    report = monitor_report(model_id, 1, ["latency"], now=NOW)
    assert set(report["statistics"]) == {"latency"}
    assert set(report["plots"]) == {"performance_over_time"}
    assert [t["name"] for t in report["plots"]["performance_over_time"]["data"]] == ["latency"]
    assert report["samples"] == 600 and report["p95_method"] == "exact"
    assert report["statistics"]["latency"]["p95"] == pytest.approx(np.percentile(lat, 95))
    assert report["statistics"]["latency"]["mean"] == pytest.approx(lat.mean())
    assert report["baseline"]["latency"] == 1e6
    everything = monitor_report(model_id, 1, now=NOW)
    assert_spec_shape(everything)
    assert "memory_usage" in everything["statistics"]


def check_demo_report(model_id: str) -> dict:
    rows = load_demo_history(model_id, 10, seed=7, now=NOW)
    assert rows == 10 * 1440
    report = monitor_report(model_id, 10, now=NOW)
    assert_spec_shape(report)
    stats = report["statistics"]
    assert report["samples"] == rows
    assert stats["latency"]["trend"] == "increasing"  # the degradation in the last days
    assert stats["throughput"]["trend"] == "decreasing"
    assert stats["costs"]["total"] == pytest.approx(1.20 * 24 * 10, rel=0.01)
    assert report["baseline"]["batch_size"] == 16
    with session_scope() as session:
        lat = np.array(
            session.scalars(
                select(Metric.latency).where(
                    Metric.model_id == model_id, Metric.source == "deployment"
                )
            ).all()
        )
    assert stats["latency"]["mean"] == pytest.approx(lat.mean())
    assert stats["latency"]["p95"] == pytest.approx(np.percentile(lat, 95), rel=0.02)
    text = " ".join(report["recommendations"])
    assert "Latency is trending up" in text and "below the benchmark's" in text
    assert all(len(t["x"]) <= 500 for f in report["plots"].values() for t in f["data"])
    return report


def test_demo_history_on_sqlite(platform_env):
    model_id = f"test/demo-{uuid.uuid4().hex[:8]}"
    report = check_demo_report(model_id)
    assert report["p95_method"] == "exact"  # 14,400 samples


@pytest.fixture
def other_backend(database_url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DB_PATH", database_url)
    monkeypatch.setenv("METRICS_RETENTION_DAYS", "30")
    reset_process_state()
    migrate(database_url)
    yield database_url
    reset_process_state()


def test_demo_history_on_each_backend(other_backend, monkeypatch):
    monkeypatch.setattr("modelport.monitoring.query.EXACT_P95_MAX", 1000)  # mixture path too
    report = check_demo_report("test/demo-backend")
    assert report["p95_method"] == "hourly-mixture"


def test_demo_history_command(platform_env):
    import subprocess
    import sys

    run = [sys.executable, "-m", "modelport.cli", "demo-history"]
    ok = subprocess.run([*run, "cmd/demo-model", "--days", "1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "loaded 1440 samples" in ok.stdout
    bad = subprocess.run([*run, "bad; id", "--days", "1"], capture_output=True, text=True)
    assert bad.returncode == 1 and "error 1001" in bad.stderr and "Traceback" not in bad.stderr


def _rows(model_id, source, device, level, *, when, throughput, count=1, latency=10.0):
    return [
        Metric(timestamp=when - timedelta(minutes=i), model_id=model_id, batch_size=8,
               throughput=throughput, latency=latency, memory_mb=300.0,
               cost_per_inference=1e-6, source=source, device=device, optimization_level=level)
        for i in range(count)
    ]  # fmt: skip


def test_the_baseline_is_a_benchmark_of_the_configuration_deployed(platform_env):
    """A GPU benchmark (the newest) is not the baseline of a CPU deployment; a CPU benchmark of
    the same level is. Without one, the report says so instead of comparing."""
    model_id = new_model()
    with session_scope() as session:
        session.add_all(
            _rows(model_id, "deployment", "cpu", "standard", when=NOW, throughput=50.0, count=30)
            + _rows(model_id, "benchmark", "cpu", "aggressive", when=NOW - timedelta(hours=2),
                    throughput=400.0)
            + _rows(model_id, "benchmark", "cuda", "standard", when=NOW - timedelta(hours=1),
                    throughput=5000.0)
        )  # fmt: skip
    report = monitor_report(model_id, 1, now=NOW)
    assert report["configuration"] == {"device": "cpu", "optimizationLevel": "standard"}
    assert report["baseline"] is None
    first = report["recommendations"][0]
    assert "serves" in first and "on cpu at optimization level 'standard'" in first
    assert '"device": "cpu", "optimizationLevel": "standard"' in first
    assert not any("5000" in s or "400.0" in s for s in report["recommendations"])

    with session_scope() as session:
        session.add_all(
            _rows(model_id, "benchmark", "cpu", "standard", when=NOW - timedelta(hours=3),
                  throughput=100.0)
        )  # fmt: skip
    report = monitor_report(model_id, 1, now=NOW)
    base = report["baseline"]
    assert (base["device"], base["optimization_level"], base["throughput"]) == (
        "cpu", "standard", 100.0,
    )  # fmt: skip
    # 50 samples/s against the matching 100: 50% short, said against the right figure
    assert any("50% below the benchmark's 100.0 samples/s" in s for s in report["recommendations"])


def test_deployments_without_a_reported_configuration_keep_the_latest_benchmark(platform_env):
    model_id = new_model()
    with session_scope() as session:
        session.add_all(
            _rows(model_id, "deployment", None, None, when=NOW, throughput=50.0, count=5)
            + _rows(model_id, "benchmark", "cpu", "standard", when=NOW - timedelta(hours=1),
                    throughput=60.0)
        )  # fmt: skip
    report = monitor_report(model_id, 1, now=NOW)
    assert report["configuration"] is None and report["baseline"]["throughput"] == 60.0
