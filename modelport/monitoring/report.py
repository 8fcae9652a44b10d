"""SPEC's Monitoring API answer: statistics, trends, Plotly figures and recommendations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from modelport.core.db import session_scope
from modelport.core.errors import NotFound, ValidationFailed
from modelport.core.models import Model
from modelport.core.settings import get_settings
from modelport.monitoring import plots
from modelport.monitoring.query import Buckets, window_stats
from modelport.monitoring.recommendations import recommend
from modelport.monitoring.trends import trend

METRIC_NAMES = ("throughput", "latency", "costs", "memory_usage")


def validate(days: Any, metrics: list[str] | None) -> tuple[int, tuple[str, ...]]:
    retention = get_settings().METRICS_RETENTION_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= retention:
        raise ValidationFailed(
            f"days must be an integer from 1 to {retention} (METRICS_RETENTION_DAYS)",
            {"field": "days", "value": days, "min": 1, "max": retention},
        )
    if not metrics:
        return days, METRIC_NAMES
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown or not all(isinstance(m, str) for m in metrics):
        raise ValidationFailed(
            f"unknown metrics {unknown}; allowed: {', '.join(METRIC_NAMES)}",
            {"field": "metrics", "unknown": unknown, "allowed": list(METRIC_NAMES)},
        )
    return days, tuple(m for m in METRIC_NAMES if m in metrics)


def monitor_report(
    model_id: str, days: int, metrics: list[str] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Answer POST /api/monitor for the last `days` days of deployment samples."""
    days, wanted = validate(days, metrics)
    with session_scope() as session:
        if session.get(Model, model_id) is None:
            raise NotFound(
                f"no model {model_id!r} is known: register a deployment or run a benchmark first",
                {"modelId": model_id},
            )
    window = window_stats(model_id, days, now)
    b: Buckets = window["buckets"]
    total = window["samples"]
    limit_mb = get_settings().max_memory_bytes / 2**20
    stats = _statistics(b, window, limit_mb)
    full = {"samples": total, **stats}
    answer: dict[str, Any] = {
        "statistics": {k: _public(stats[k]) for k in wanted},
        "plots": _plots(b, wanted, window["interval_s"]),
        "recommendations": recommend(
            model_id, days, full, window["baseline"], limit_mb, window["configuration"]
        ),
        # additive fields
        "trends": {k: stats[k]["trend_detail"] for k in wanted if "trend_detail" in stats[k]},
        "samples": total,
        "window": {
            "from": window["from"].isoformat(),
            "to": window["to"].isoformat(),
            "days": days,
        },
        "baseline": window["baseline"],
        "configuration": window["configuration"],
        "observed_batch_size": stats["batch_size"]["mean"],
        "p95_method": window["p95_method"],
    }
    return answer


def _public(stat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stat.items() if k != "trend_detail"}


def _mean(b: Buckets, name: str) -> float | None:
    n = b.gpu_count.sum() if name == "gpu_memory" else b.count.sum()
    return float(np.nansum(b.sums[name]) / n) if n else None


def _trend(b: Buckets, name: str) -> dict[str, Any]:
    mids = (b.first + b.last) / 2 if len(b.count) else b.start
    return trend(b.mean(name), mids)


def _statistics(b: Buckets, window: dict[str, Any], limit_mb: float) -> dict[str, Any]:
    p95 = window["p95"]
    out: dict[str, Any] = {}
    for name in ("throughput", "latency"):
        detail = _trend(b, name)
        out[name] = {
            "mean": _mean(b, name),
            "p95": p95[name],
            "trend": detail["direction"],
            "trend_detail": detail,
        }
    detail = _trend(b, "cost")
    interval = window["interval_s"] or 0.0
    out["costs"] = {
        "mean": _mean(b, "cost"),
        "total": float(b.cost_volume.sum() * interval) if len(b.count) else None,
        "trend": detail["direction"],
        "trend_detail": detail,
        "total_basis": "sum of cost_per_inference x throughput x sampling interval (USD)",
    }
    detail = _trend(b, "memory")
    out["memory_usage"] = {
        "mean": _mean(b, "memory"),
        "max": float(np.nanmax(b.maxs["memory"])) if len(b.count) else None,
        "gpu_mean": _mean(b, "gpu_memory"),
        "gpu_max": float(np.nanmax(b.maxs["gpu_memory"])) if b.gpu_count.sum() else None,
        "limit_mb": limit_mb,
        "trend": detail["direction"],
        "trend_detail": detail,
    }
    out["batch_size"] = {"mean": _mean(b, "batch")}
    return out


def _plots(b: Buckets, wanted: tuple[str, ...], interval_s: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    down = plots.downsample(b)
    perf = [m for m in ("throughput", "latency") if m in wanted]
    if perf:
        out["performance_over_time"] = plots.performance_over_time(down, perf)
    if "memory_usage" in wanted:
        out["resource_usage"] = plots.resource_usage(down)
    if "costs" in wanted:
        out["cost_analysis"] = plots.cost_analysis(down, interval_s)
    return out
