"""Monitoring query benchmark: 30 days of one-minute samples for 50 models (~2.2M rows, SQLite).

Times monitor_report() for one model over 30 days (and POST /api/monitor uncached through the
Flask app, with a throwaway Redis) against the bare SQL aggregate in the same run.

    python bench/monitor_query.py [--models 50] [--days 30] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._harness import record, summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="modelport-monbench-"))
    os.environ.update(
        {
            "DB_PATH": f"sqlite:///{tmp / 'bench.db'}",
            "FLASK_ENV": "development",
            "METRICS_RETENTION_DAYS": str(max(30, args.days)),
        }
    )
    from modelport.cli import db_upgrade
    from modelport.core.db import get_engine
    from modelport.monitoring.demo import load_demo_history
    from modelport.monitoring.report import monitor_report

    db_upgrade(os.environ["DB_PATH"])
    now = datetime.now(UTC)
    models = [f"bench/model-{i:02d}" for i in range(args.models)]
    started = time.perf_counter()
    rows = sum(load_demo_history(m, args.days, seed=i, now=now) for i, m in enumerate(models))
    load_s = time.perf_counter() - started
    print(f"loaded {rows} deployment rows for {len(models)} models in {load_s:.1f} s")

    target = models[len(models) // 2]
    since = (now - timedelta(days=args.days)).replace(tzinfo=None)
    engine = get_engine()
    bare_sql = (
        "SELECT count(*), avg(throughput), avg(latency), sum(cost_per_inference) "
        "FROM metrics WHERE model_id=? AND timestamp>=?"
    )

    def bare() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(bare_sql, (target, since.isoformat(sep=" "))).all()

    def report() -> None:
        monitor_report(target, args.days, now=now)

    timings = {
        "bare SQL aggregate": _time(bare, args.runs),
        "monitor_report": _time(report, args.runs),
    }
    timings.update(_through_flask(tmp, target, args.days, args.runs))
    base = timings["bare SQL aggregate"]["median"]
    for name, s in timings.items():
        print(
            f"{name:32s} median {s['median'] * 1000:7.1f} ms  p95 {s['p95'] * 1000:7.1f} ms  "
            f"ratio to bare SQL (median) {s['median'] / base:5.1f}x  (n={s['n']})"
        )
    result = monitor_report(target, args.days, now=now)
    print(f"samples in window: {result['samples']}, p95 method: {result['p95_method']}")
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT throughput, latency FROM metrics WHERE model_id=? AND timestamp>=? "
            "AND source='deployment'",
            (target, since.isoformat(sep=" ")),
        ).all()
    exact = np.percentile(np.asarray(raw, dtype=float), 95, axis=0)
    for k, name in enumerate(("throughput", "latency")):
        approx = result["statistics"][name]["p95"]
        print(
            f"p95 {name}: reported {approx:.3f}, numpy over samples {exact[k]:.3f} "
            f"({(approx / exact[k] - 1) * 100:+.2f}%)"
        )
    p95 = timings["monitor_report"]["p95"] * 1000
    print(f"target p95 < 200 ms: {'met' if p95 < 200 else 'MISSED'} ({p95:.1f} ms)")
    scope = f"1 of {len(models)} models x {args.days} days ({rows:,} rows, SQLite)"
    labels = {
        "monitor_report": f"`monitor_report`, {scope}",
        "POST /api/monitor (uncached)": "`POST /api/monitor`, uncached, same data",
        "POST /api/monitor (cached)": "`POST /api/monitor`, cached, same data",
    }
    bare_stats = timings["bare SQL aggregate"]
    for name, label in labels.items():
        if name not in timings:
            continue
        for stat in ("median", "p95"):
            value = timings[name][stat] * 1000
            has_target = name == "monitor_report" and stat == "p95"
            record(
                f"{label}: {stat}",
                value,
                "ms",
                baseline=bare_stats[stat] * 1000,
                baseline_what="bare SQL aggregate",
                target="p95 < 200 ms" if has_target else None,
                passed=value < 200 if has_target else None,
                note=f"n={timings[name]['n']}",
            )
    shutil.rmtree(tmp, ignore_errors=True)


def _time(fn, runs: int) -> dict[str, float]:
    fn()  # warm: imports, connection, page cache
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        values.append(time.perf_counter() - started)
    return summary(values)


def _through_flask(tmp: Path, model_id: str, days: int, runs: int) -> dict[str, dict]:
    """POST /api/monitor (uncached: the cache db is flushed before each request)."""
    try:
        from modelport.api import monitoring  # noqa: F401
    except ImportError:
        print("POST /api/monitor not available yet: skipped")
        return {}
    from modelport import localredis
    from modelport.api import create_app
    from modelport.core.redis_client import get_redis, reset_redis
    from modelport.core.settings import reset_settings

    port = localredis.free_port()
    proc = localredis.start_server(port, tmp / "redis", persist=False)
    try:
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}"
        reset_settings()
        reset_redis()
        client = create_app().test_client()
        body = {"modelId": model_id, "days": days}

        def post() -> None:
            get_redis().flushdb()
            response = client.post("/api/monitor", json=body)
            assert response.status_code == 200, response.get_data(as_text=True)[:500]

        def post_cached() -> None:
            response = client.post("/api/monitor", json=body)
            assert response.status_code == 200

        return {
            "POST /api/monitor (uncached)": _time(post, runs),
            "POST /api/monitor (cached)": _time(post_cached, runs),
        }
    finally:
        localredis.stop(proc)


if __name__ == "__main__":
    main()
