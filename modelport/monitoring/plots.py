"""Plotly figure JSON (plain dicts for `Plotly.newPlot`) from hourly buckets.

Each figure takes the series from downsample(buckets): at most MAX_POINTS points per trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelport.monitoring.query import Buckets

MAX_POINTS = 500


def downsample(b: Buckets, limit: int = MAX_POINTS) -> dict[str, Any]:
    """Merge adjacent hours (count-weighted) so no trace has more than `limit` points."""
    n = len(b.count)
    if n == 0:
        return {"x": [], "throughput": [], "latency": [], "cost": [], "memory": [],
                "gpu_memory": [], "cost_total": []}  # fmt: skip
    edges = np.array_split(np.arange(n), min(n, limit))
    starts = np.array([g[0] for g in edges])

    def total(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.nan_to_num(values), starts)

    count, gcount = total(b.count), total(b.gpu_count)
    out: dict[str, Any] = {"x": [_iso(float(v)) for v in b.start[starts]]}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in ("throughput", "latency", "cost", "memory"):
            out[name] = [_num(v) for v in total(b.sums[name]) / count]
        out["gpu_memory"] = [_num(v) for v in total(b.sums["gpu_memory"]) / gcount]
    out["cost_total"] = [float(v) for v in total(b.cost_volume)]
    return out


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _trace(name: str, x: list, y: list, yaxis: str = "y", unit: str = "") -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": x,
        "y": y,
        "yaxis": yaxis,
        "hovertemplate": f"%{{y:.4g}} {unit}<extra>{name}</extra>".replace("  ", " "),
    }


def _layout(title: str, y_title: str, y2_title: str | None = None) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "time (UTC)"}, "type": "date"},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h"},
        "hovermode": "x unified",
    }
    if y2_title:
        layout["yaxis2"] = {
            "title": {"text": y2_title},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
        }
    return layout


def performance_over_time(
    d: dict[str, Any], metrics: Iterable[str] = ("throughput", "latency")
) -> dict[str, Any]:
    """Throughput (left axis, samples/s) and mean latency (right axis, ms); `d`: downsample()."""
    wanted = set(metrics)
    data = []
    if "throughput" in wanted:
        data.append(_trace("throughput", d["x"], d["throughput"], "y", "samples/s"))
    if "latency" in wanted:
        data.append(_trace("latency", d["x"], d["latency"], "y2", "ms"))
    layout = _layout("Performance over time", "throughput (samples/s)", "latency (ms)")
    return {"data": data if d["x"] else [], "layout": layout}


def resource_usage(d: dict[str, Any]) -> dict[str, Any]:
    """Process memory and GPU memory (MB), one axis."""
    data = [_trace("memory", d["x"], d["memory"], "y", "MB")]
    if any(v is not None for v in d["gpu_memory"]):
        data.append(_trace("gpu_memory", d["x"], d["gpu_memory"], "y", "MB"))
    return {"data": data if d["x"] else [], "layout": _layout("Resource usage", "memory (MB)")}


def cost_analysis(d: dict[str, Any], interval_s: float | None) -> dict[str, Any]:
    """Cost per inference (left axis) and cumulative USD spent (right axis)."""
    spent = np.cumsum(np.asarray(d["cost_total"], dtype=float) * (interval_s or 0.0))
    data = []
    if d["x"]:
        data = [
            _trace("cost_per_inference", d["x"], d["cost"], "y", "USD"),
            _trace("cumulative_cost", d["x"], [round(float(v), 6) for v in spent], "y2", "USD"),
        ]
    return {
        "data": data,
        "layout": _layout("Cost analysis", "USD per inference", "cumulative USD"),
    }
