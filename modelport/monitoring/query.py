"""Window statistics from the `metrics` table: one indexed, hour-bucketed aggregate query.

Approach: a single `GROUP BY hour` query over `idx_metrics_model_time` (model_id, timestamp
>= from) returns, per hour, the count, sums, sums of squares, min and max of each metric, so
means and the cost total are exact and only ~24 rows per day cross into Python. p95 is exact
(numpy over the per-sample values, one more indexed query) when the window holds at most
EXACT_P95_MAX samples; above that it is approximated from the hourly buckets as the 95th
percentile of a mixture of per-hour normal distributions (mean and standard deviation from the
sums, truncated to each hour's min/max, weighted by count). On one-minute samples with
hourly seasonality and noise the approximation is within about 1-2% of numpy's p95 (the
tests and bench/monitor_query.py measure it); it is weaker when samples within an hour are
strongly skewed (e.g. rare latency spikes), which the per-hour max bounds but cannot shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Float, and_, cast, func, literal_column, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from modelport.core.db import session_scope
from modelport.core.models import Metric

EXACT_P95_MAX = 20_000
HOUR = 3600.0


@dataclass
class Buckets:
    """Per-hour aggregates, one array entry per hour that has samples, in time order."""

    start: np.ndarray  # epoch seconds of each hour
    count: np.ndarray
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    sumsq: dict[str, np.ndarray] = field(default_factory=dict)
    mins: dict[str, np.ndarray] = field(default_factory=dict)
    maxs: dict[str, np.ndarray] = field(default_factory=dict)
    gpu_count: np.ndarray | None = None
    cost_volume: np.ndarray | None = None  # sum of cost_per_inference * throughput
    first: np.ndarray | None = None  # epoch seconds of the first/last sample in each hour
    last: np.ndarray | None = None

    def mean(self, name: str) -> np.ndarray:
        n = self.gpu_count if name == "gpu_memory" else self.count
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.sums[name] / np.maximum(n, 1), np.nan)


def _columns() -> dict[str, Any]:
    return {
        "throughput": Metric.throughput,
        "latency": Metric.latency,
        "cost": Metric.cost_per_inference,
        "memory": Metric.memory_mb,
        "gpu_memory": Metric.gpu_memory_mb,
        "batch": cast(Metric.batch_size, Float),
    }


def _hour_bucket(dialect: str):
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        return func.substr(Metric.timestamp, 1, 13)
    return func.date_trunc("hour", Metric.timestamp)


def _window_filter(model_id: str, start: datetime, end: datetime):
    return and_(
        Metric.model_id == model_id,
        Metric.timestamp >= start,
        Metric.timestamp <= end,
        or_(Metric.source == "deployment", Metric.source.is_(None)),
    )


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value if len(value) > 13 else value + ":00")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# which aggregates each metric needs: sums for means; squares/min/max for the p95 mixture
AGGREGATES = {
    "throughput": ("sum", "sumsq", "min", "max"),
    "latency": ("sum", "sumsq", "min", "max"),
    "cost": ("sum",),
    "memory": ("sum", "max"),
    "gpu_memory": ("sum", "max"),
    "batch": ("sum",),
}


def fetch_buckets(session: Session, model_id: str, start: datetime, end: datetime) -> Buckets:
    """The one statistics query: hourly aggregates over the window."""
    bucket = _hour_bucket(session.get_bind().dialect.name).label("bucket")
    cols = _columns()
    make = {
        "sum": func.sum,
        "sumsq": lambda c: func.sum(c * c),
        "min": func.min,
        "max": func.max,
    }
    keys = [(name, agg) for name, aggs in AGGREGATES.items() for agg in aggs]
    selected: list[Any] = [bucket, func.count()]
    selected += [make[agg](cols[name]) for name, agg in keys]
    selected += [
        func.count(Metric.gpu_memory_mb),
        func.sum(Metric.cost_per_inference * Metric.throughput),
        func.min(Metric.timestamp),
        func.max(Metric.timestamp),
    ]
    stmt = (
        select(*selected)
        .where(_window_filter(model_id, start, end))
        .group_by(literal_column("bucket"))
        .order_by(literal_column("bucket"))
    )
    rows = session.execute(stmt).all()
    out = Buckets(
        start=np.array([_epoch(r[0]) for r in rows], dtype=float),
        count=np.array([r[1] for r in rows], dtype=float),
    )
    targets = {"sum": out.sums, "sumsq": out.sumsq, "min": out.mins, "max": out.maxs}
    for k, (name, agg) in enumerate(keys, start=2):
        targets[agg][name] = np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=float)
    tail = 2 + len(keys)
    out.gpu_count = np.array([r[tail] for r in rows], dtype=float)
    out.cost_volume = np.array([r[tail + 1] or 0.0 for r in rows], dtype=float)
    out.first = np.array([_epoch(r[tail + 2]) for r in rows], dtype=float)
    out.last = np.array([_epoch(r[tail + 3]) for r in rows], dtype=float)
    return out


def fetch_samples(session: Session, model_id: str, start: datetime, end: datetime) -> np.ndarray:
    """Per-sample (throughput, latency) for small windows, where p95 can be exact."""
    rows = session.execute(
        select(Metric.throughput, Metric.latency).where(_window_filter(model_id, start, end))
    ).all()
    return np.asarray(rows, dtype=float).reshape(-1, 2)


def deployed_configuration(session: Session, model_id: str) -> dict[str, str] | None:
    """The device and optimization level the model's deployments last reported serving
    (`modelport_model_info` in their /metrics), or None before any did."""
    row = session.execute(
        select(Metric.device, Metric.optimization_level)
        .where(
            Metric.model_id == model_id,
            Metric.source == "deployment",
            Metric.device.is_not(None),
        )
        .order_by(Metric.timestamp.desc(), Metric.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return {"device": row.device, "optimizationLevel": row.optimization_level}


def benchmark_filter(
    model_id: str, device: str | None = None, level: str | None = None
) -> ColumnElement[bool]:
    """A model's benchmark rows; of one device and optimization level, when given (a
    deployment is compared only with a benchmark of what it serves)."""
    conditions = [Metric.model_id == model_id, Metric.source == "benchmark"]
    if device:
        conditions.append(Metric.device == device)
    if level:
        conditions.append(Metric.optimization_level == level)
    return and_(*conditions)


def latest_baseline(
    session: Session, model_id: str, configuration: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """The latest benchmark run's best-throughput row (its optimal batch size); with a
    `configuration`, only a benchmark of that device and optimization level qualifies."""
    configuration = configuration or {}
    where = benchmark_filter(
        model_id, configuration.get("device"), configuration.get("optimizationLevel")
    )
    latest = session.execute(
        select(Metric.job_id, Metric.timestamp)
        .where(where)
        .order_by(Metric.timestamp.desc(), Metric.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    same_run = (
        Metric.job_id == latest.job_id
        if latest.job_id is not None
        else Metric.timestamp == latest.timestamp
    )
    row = session.scalars(
        select(Metric)
        .where(Metric.model_id == model_id, Metric.source == "benchmark", same_run)
        .order_by(Metric.throughput.desc(), Metric.batch_size)
        .limit(1)
    ).first()
    return {
        "batch_size": row.batch_size,
        "throughput": row.throughput,
        "latency": row.latency,
        "memory_mb": row.memory_mb,
        "cost_per_inference": row.cost_per_inference,
        "job_id": row.job_id,
        "device": row.device,
        "optimization_level": row.optimization_level,
        "timestamp": row.timestamp.isoformat(),
    }


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), vectorised."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))  # fmt: skip  # noqa: E501
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def mixture_quantile(b: Buckets, name: str, q: float = 0.95) -> float | None:
    """q-quantile of the mixture of per-bucket truncated normals (see module docstring)."""
    n = b.count.astype(float)
    if n.sum() == 0:
        return None
    mean = b.sums[name] / n
    std = np.sqrt(np.maximum(b.sumsq[name] / n - mean * mean, 0.0))
    lo_b, hi_b = b.mins[name], b.maxs[name]
    std = np.where(std > 0, std, 1e-12)
    a, z = _norm_cdf((lo_b - mean) / std), _norm_cdf((hi_b - mean) / std)
    mass = np.maximum(z - a, 1e-12)

    def cdf(x: float) -> float:
        inside = np.clip((_norm_cdf((x - mean) / std) - a) / mass, 0.0, 1.0)
        inside = np.where(x >= hi_b, 1.0, np.where(x < lo_b, 0.0, inside))
        return float((n * inside).sum() / n.sum())

    lo, hi = float(np.nanmin(lo_b)), float(np.nanmax(hi_b))
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return hi


def window_stats(model_id: str, days: int, now: datetime | None = None) -> dict[str, Any]:
    """Buckets, p95s, sample count and the benchmark baseline for the last `days` days."""
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    with session_scope() as session:
        buckets = fetch_buckets(session, model_id, start, end)
        total = int(buckets.count.sum())
        p95: dict[str, float | None] = {"throughput": None, "latency": None}
        exact = 0 < total <= EXACT_P95_MAX
        if exact:
            samples = fetch_samples(session, model_id, start, end)
            p95 = {
                "throughput": float(np.percentile(samples[:, 0], 95)),
                "latency": float(np.percentile(samples[:, 1], 95)),
            }
        elif total:
            p95 = {k: mixture_quantile(buckets, k) for k in p95}
        configuration = deployed_configuration(session, model_id)
        baseline = latest_baseline(session, model_id, configuration)
    return {
        "from": start,
        "to": end,
        "samples": total,
        "buckets": buckets,
        "p95": p95,
        "p95_method": "exact" if exact else ("hourly-mixture" if total else None),
        "baseline": baseline,
        "configuration": configuration,
        "interval_s": sampling_interval(buckets),
    }


def sampling_interval(b: Buckets) -> float | None:
    """Median spacing between samples, from each hour's first/last timestamps and count."""
    multi = b.count > 1
    if not multi.any():
        return None
    spacing = (b.last[multi] - b.first[multi]) / (b.count[multi] - 1)
    return float(np.median(spacing))
