"""Specific sentences with numbers, from window statistics and the benchmark baseline."""

from __future__ import annotations

import json
from typing import Any

THROUGHPUT_SHORTFALL = 0.15  # below the benchmark's throughput by more than this fraction
BATCH_FAR = 2.0  # observed mean batch size off the optimal by this factor either way
MEMORY_NEAR = 0.85  # peak memory above this fraction of MAX_MEMORY


def recommend(
    model_id: str,
    days: int,
    stats: dict[str, Any],
    baseline: dict[str, Any] | None,
    memory_limit_mb: float | None,
    configuration: dict[str, Any] | None = None,
) -> list[str]:
    """`stats`: {"samples", "throughput", "latency", "costs", "memory_usage", "batch_size"}
    with means, p95s and trend dicts (see report.py); `baseline`: query.latest_baseline(), of
    the deployments' `configuration` (device, optimizationLevel) when they reported one."""
    if not stats.get("samples"):
        return [no_data_sentence(model_id, days, baseline)]
    out: list[str] = []
    if configuration and baseline is None:
        out.append(no_matching_baseline_sentence(model_id, configuration))
    lat, tp = stats.get("latency") or {}, stats.get("throughput") or {}
    costs, mem = stats.get("costs") or {}, stats.get("memory_usage") or {}
    lat_trend = lat.get("trend_detail") or {}
    if lat_trend.get("direction") == "increasing" and lat_trend.get("change_pct") is not None:
        sentence = (
            f"Latency is trending up by {lat_trend['change_pct']:.1f}% over the last {days} days "
            f"({lat_trend.get('test', 'mann-kendall')} test p={lat_trend['p_value']:.2g}; "
            f"mean {lat['mean']:.1f} ms, p95 {lat['p95']:.1f} ms"
        )
        recent = lat_trend.get("recent_change_pct")
        if recent is not None and recent > 0:
            sentence += f"; the most recent day is {recent:.1f}% above the rest of the window"
        sentence += ")"
        if baseline:
            sentence += (
                f", against {baseline['latency']:.1f} ms in the benchmark at batch size "
                f"{baseline['batch_size']}"
            )
        out.append(sentence + "; look for a recent change in traffic, inputs or the host.")
    if baseline and tp.get("mean") and baseline.get("throughput"):
        short = 1.0 - tp["mean"] / baseline["throughput"]
        if short > THROUGHPUT_SHORTFALL:
            out.append(
                f"Throughput averages {tp['mean']:.1f} samples/s, {short * 100:.0f}% below the "
                f"benchmark's {baseline['throughput']:.1f} samples/s at batch size "
                f"{baseline['batch_size']}; check batching, concurrency and the device in use."
            )
    observed = (stats.get("batch_size") or {}).get("mean")
    if baseline and observed:
        best = baseline["batch_size"]
        if observed >= best * BATCH_FAR or observed <= best / BATCH_FAR:
            out.append(
                f"Requests are served at a mean batch size of {observed:.1f}, far from the "
                f"benchmark's optimal batch size {best} ({baseline['throughput']:.1f} samples/s); "
                f"configure the server to batch {best} at a time."
            )
    peak = mem.get("max")
    if peak and memory_limit_mb and peak >= MEMORY_NEAR * memory_limit_mb:
        out.append(
            f"Memory peaked at {peak:.0f} MB, {peak / memory_limit_mb * 100:.0f}% of the "
            f"{memory_limit_mb:.0f} MB limit (MAX_MEMORY); lower the batch size or raise the limit "
            "before requests fail."
        )
    cost_trend = costs.get("trend_detail") or {}
    if cost_trend.get("direction") == "increasing" and cost_trend.get("change_pct") is not None:
        out.append(
            f"Cost per inference is rising by {cost_trend['change_pct']:.1f}% over the last "
            f"{days} days (now about ${costs['mean']:.3g} per inference, "
            f"${costs['total']:.2f} in total); compare throughput against the benchmark."
        )
    if not out:
        parts = []
        if tp.get("mean") is not None:
            parts.append(f"throughput {tp['mean']:.1f} samples/s")
        if lat.get("mean") is not None:
            parts.append(f"latency {lat['mean']:.1f} ms (p95 {lat['p95']:.1f} ms)")
        if costs.get("mean") is not None:
            parts.append(f"cost ${costs['mean']:.3g} per inference")
        figures = ", ".join(parts) or f"{stats['samples']} samples"
        out.append(
            f"No action needed: over the last {days} days ({stats['samples']} samples) "
            f"{figures}, with no significant trend."
        )
    return out


def no_matching_baseline_sentence(model_id: str, configuration: dict[str, Any]) -> str:
    device = configuration["device"]
    level = configuration.get("optimizationLevel")
    at = f" at optimization level '{level}'" if level else ""
    request = {"modelId": model_id, "device": "gpu" if device == "cuda" else "cpu"}
    body = json.dumps({**request, "optimizationLevel": level} if level else request)
    return (
        f"The deployment serves {model_id} on {device}{at}, and no benchmark of that "
        "configuration exists, so it is not compared with one (a benchmark of another device "
        f"or level would mislead): run POST /api/benchmark with {body}."
    )


def no_data_sentence(model_id: str, days: int, baseline: dict[str, Any] | None) -> str:
    bench = (
        f" The latest benchmark measured {baseline['throughput']:.1f} samples/s at batch size "
        f"{baseline['batch_size']}, which will serve as the baseline."
        if baseline
        else " Run POST /api/benchmark as well to get a baseline to compare against."
    )
    return (
        f"No deployment samples for {model_id} in the last {days} days yet: register the running "
        "server with POST /api/deployments (modelId, url) and beat samples it every minute, "
        f"or load synthetic history with modelport.monitoring.demo.load_demo_history.{bench}"
    )
