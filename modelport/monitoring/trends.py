"""Trend of a metric over a window, decided by a significance test (numpy + math, no scipy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

MIN_POINTS = 8
DAY = 86400.0
MAX_POINTS = 2000  # the pairwise statistic is O(n^2); longer series are averaged down first


def trend(
    values: Sequence[float],
    timestamps: Sequence[datetime | float] | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Mann-Kendall trend test (two-sided, normal approximation with tie correction).

    S = sum over pairs i<j of sign(x_j - x_i); Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)]/18
    over tied groups t; Z = (S - sign(S)) / sqrt(Var(S)) (continuity correction);
    p = erfc(|Z| / sqrt(2)). When the points span at least two days and number at least 48,
    the seasonal Kendall variant (Hirsch et al. 1982) is used instead: S and Var(S) are summed
    over the 24 hour-of-day seasons (UTC), so daily seasonality alone does not read as a trend.
    The direction is "increasing"/"decreasing" when p < alpha, else "stable"; fewer than 8
    points is always "stable". The slope is Sen's estimator (median of pairwise slopes, within
    seasons for the seasonal variant) per day; change_pct is that slope over the window's span
    relative to the fitted level at its start; recent_change_pct compares the mean of the last
    day (last quarter under two days) with the rest. Without timestamps, points are one day apart.
    """
    y = np.asarray(values, dtype=float)
    t = _seconds(timestamps, len(y))
    keep = np.isfinite(y) & np.isfinite(t)
    y, t = y[keep], t[keep]
    order = np.argsort(t, kind="stable")
    y, t = y[order], t[order]
    out: dict[str, Any] = {
        "direction": "stable",
        "p_value": None,
        "slope_per_day": None,
        "change_pct": None,
        "test": "mann-kendall",
        "n": len(y),
        "recent_change_pct": None,
    }
    if len(y) < MIN_POINTS:
        return out
    if len(y) > MAX_POINTS:
        y, t = _average_down(y, t, MAX_POINTS)
    seasonal = (t[-1] - t[0]) >= 2 * DAY and len(y) >= 48
    if seasonal:
        groups = [np.flatnonzero(g) for g in _hour_of_day_masks(t)]
        groups = [g for g in groups if len(g) >= 2]
        out["test"] = "seasonal-kendall"
    else:
        groups = [np.arange(len(y))]
    s = var = 0.0
    slopes: list[np.ndarray] = []
    for g in groups:
        gs, gv, gsl = _kendall(y[g], t[g])
        s, var = s + gs, var + gv
        slopes.append(gsl)
    p = _p_value(s, var)
    all_slopes = np.concatenate(slopes) if slopes else np.array([])
    slope = float(np.median(all_slopes)) if len(all_slopes) else 0.0  # per second
    span = float(t[-1] - t[0])
    start = float(np.median(y - slope * (t - t[0])))
    out["p_value"] = p
    out["slope_per_day"] = slope * DAY
    out["change_pct"] = (slope * span / abs(start) * 100.0) if start else None
    out["recent_change_pct"] = _recent_change(y, t)
    if p < alpha and s != 0:
        out["direction"] = "increasing" if s > 0 else "decreasing"
    return out


def _recent_change(y: np.ndarray, t: np.ndarray) -> float | None:
    """Mean of the last day (last quarter for windows under two days) against the rest, in %."""
    span = t[-1] - t[0]
    cut = t[-1] - (DAY if span >= 2 * DAY else span / 4)
    recent, rest = y[t > cut], y[t <= cut]
    if not len(recent) or not len(rest) or not rest.mean():
        return None
    return float((recent.mean() / rest.mean() - 1.0) * 100.0)


def _seconds(timestamps: Sequence[datetime | float] | None, n: int) -> np.ndarray:
    if timestamps is None:
        return np.arange(n, dtype=float) * DAY
    if len(timestamps) != n:
        raise ValueError("values and timestamps differ in length")
    return np.asarray(
        [ts.timestamp() if isinstance(ts, datetime) else float(ts) for ts in timestamps],
        dtype=float,
    )


def _average_down(y: np.ndarray, t: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = np.array_split(np.arange(len(y)), limit)
    return (
        np.array([y[c].mean() for c in chunks]),
        np.array([t[c].mean() for c in chunks]),
    )


def _hour_of_day_masks(t: np.ndarray) -> list[np.ndarray]:
    hour = np.floor((t % DAY) / 3600.0).astype(int)
    return [hour == h for h in range(24)]


def _kendall(y: np.ndarray, t: np.ndarray) -> tuple[float, float, np.ndarray]:
    """S, its tie-corrected variance, and the pairwise slopes of one series."""
    n = len(y)
    i, j = np.triu_indices(n, k=1)
    diff = y[j] - y[i]
    s = float(np.sign(diff).sum())
    _, counts = np.unique(y, return_counts=True)
    ties = counts[counts > 1].astype(float)
    var = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18.0
    dt = t[j] - t[i]
    ok = dt > 0
    return s, var, diff[ok] / dt[ok]


def _p_value(s: float, var: float) -> float:
    if var <= 0 or s == 0:
        return 1.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(var)
    return float(math.erfc(abs(z) / math.sqrt(2.0)))
