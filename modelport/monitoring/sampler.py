"""Sampling every due deployment, concurrently with a bound, one failure never the others'.

The first successful scrape of a deployment is its baseline (no row); each later one writes
one `metrics` row (source "deployment") for the interval since. A failed scrape writes one
`events` row per incident (not per interval), counts the failure and backs off
exponentially; the first success after failures writes a `deployment_recovered` event.

A deployment that hangs or drips its answer never holds up the others: a scrape is bounded
by SAMPLE_TIMEOUT_SECONDS as a whole (scrape.fetch), and a run may stop waiting for its
slowest scrapes (`wait_s`, beat's runs: most of an interval) so that the next run starts on
time; those finish in the background and record their own outcome. Claiming a deployment
leases it for longer than a scrape can take, so a scrape still in flight is never started
again by the next run; its outcome then sets the real next_sample_at.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update

from modelport.core.db import session_scope
from modelport.core.events import publish
from modelport.core.models import Deployment, utcnow
from modelport.core.records import add_event, add_metrics
from modelport.core.settings import Settings, get_settings
from modelport.monitoring import alerts, scrape

log = logging.getLogger(__name__)
LEASE_MARGIN_SECONDS = 10.0  # a claimed scrape's lease beyond SAMPLE_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Target:
    """What a worker thread needs of a deployment (no ORM object crosses threads)."""

    id: str
    model_id: str
    url: str
    name: str | None
    labels: dict[str, Any]
    last_scrape: dict[str, Any] | None
    last_sampled_at: datetime | None
    failures: int
    claimed_at: datetime | None = None  # the run's `now`; the next sample is due from it


def sample_due(now: datetime | None = None, wait_s: float | None = None) -> dict[str, int]:
    """Sample every active deployment whose next_sample_at has come. Never raises for one
    deployment; returns counts: due, sampled (rows written), baseline, failed, alerts, and
    pending: scrapes still running after `wait_s` seconds (None: wait for all), which finish
    and record their outcome in the background."""
    started = time.monotonic()
    settings = get_settings()
    now = now or utcnow()
    targets = _claim_due(now, settings)
    summary = {
        "due": len(targets), "sampled": 0, "baseline": 0, "failed": 0, "alerts": 0, "pending": 0
    }  # fmt: skip
    if not targets:
        return summary
    price = _prices()
    workers = min(settings.SAMPLE_CONCURRENCY, len(targets))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="sample")
    try:
        futures = [
            pool.submit(_safe_sample, replace(t, claimed_at=now), settings, price) for t in targets
        ]
        left = None if wait_s is None else max(wait_s - (time.monotonic() - started), 0.0)
        done, not_done = wait(futures, timeout=left)
    finally:
        pool.shutdown(wait=wait_s is None)  # stragglers finish on their own, bounded by fetch
    for future in done:
        outcome, fired = future.result()
        summary[outcome] += 1
        summary["alerts"] += fired
    summary["pending"] = len(not_done)
    log.info("sampled deployments: %s", summary)
    return summary


def _next_after(now: datetime, settings: Settings) -> datetime:
    return now + timedelta(seconds=settings.SAMPLE_INTERVAL_SECONDS * 0.9)


def _claim_due(now: datetime, settings: Settings) -> list[Target]:
    """Lease every due deployment in one statement (one commit, not one per deployment, which
    on SQLite ate most of an interval at 100 deployments): next_sample_at moves past `now` and
    past the longest a scrape can take, so neither an overlapping run nor the next one samples
    them while this run's scrapes are in flight."""
    following = max(
        _next_after(now, settings),
        now + timedelta(seconds=settings.SAMPLE_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS),
    )
    with session_scope() as session:
        rows = session.scalars(
            update(Deployment)
            .where(
                Deployment.active.is_(True),
                or_(Deployment.next_sample_at.is_(None), Deployment.next_sample_at <= now),
            )
            .values(next_sample_at=following)
            .returning(Deployment)
            .execution_options(synchronize_session=False)
        ).all()
        return [
            Target(
                d.id,
                d.model_id,
                d.url,
                d.name,
                dict(d.labels or {}),
                d.last_scrape,
                d.last_sampled_at,
                d.consecutive_failures,
            )
            for d in rows
        ]


def _prices() -> Any:
    from modelport.benchmarking.cost import load_prices

    try:
        return load_prices()
    except ValueError as exc:
        log.warning("price table unreadable (%s); cost per inference will be 0", exc)
        return None


def hourly_price(target: Target, raw: dict[str, Any], prices: Any, settings: Settings) -> float:
    """USD per hour of the deployment: labels `device`, `gpu`, `cores` when given; else cuda
    when it reports GPU memory, CPU with MAX_CPU_CORES otherwise."""
    if prices is None:
        return 0.0
    from modelport.benchmarking.cost import hourly_price as price_of

    labels = target.labels
    device = labels.get("device") or ("cuda" if raw.get("gpu_bytes") is not None else "cpu")
    try:
        cores = float(labels.get("cores") or settings.MAX_CPU_CORES)
        return price_of(
            str(device), cores=cores, gpu_name=labels.get("gpu"), prices=prices
        ).usd_per_hour
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("cannot price deployment %s: %s", target.id, exc)
        return 0.0


def _safe_sample(target: Target, settings: Settings, prices: Any) -> tuple[str, int]:
    try:
        return sample_one(target, settings, prices)
    except Exception:
        log.exception("sampling deployment %s failed unexpectedly", target.id)
        try:  # end the claim's lease: due again at the next interval, as after a sample
            with session_scope() as session:
                session.execute(
                    update(Deployment)
                    .where(Deployment.id == target.id)
                    .values(next_sample_at=_next_after(target.claimed_at or utcnow(), settings))
                )
        except Exception:
            log.exception("cannot release deployment %s", target.id)
        return "failed", 0


def sample_one(target: Target, settings: Settings, prices: Any) -> tuple[str, int]:
    """(outcome, alerts fired) for one deployment."""
    label = target.name or target.url
    try:
        raw = scrape.parse(
            scrape.fetch(
                target.url, settings.DEPLOYMENT_ALLOWED_HOSTS, settings.SAMPLE_TIMEOUT_SECONDS
            )
        )
    except scrape.ScrapeError as exc:
        return "failed", _failed(target, exc, settings)
    when = utcnow()
    row = None
    if target.last_scrape is not None and target.last_sampled_at is not None:
        elapsed = (when - target.last_sampled_at).total_seconds()
        row = scrape.sample_from(
            target.last_scrape, raw, elapsed, hourly_price(target, raw, prices, settings)
        )
    with session_scope() as session:  # the row and the scrape it came from: one commit
        if row is not None:
            add_metrics(
                target.model_id,
                [row],
                source="deployment",
                device=raw.get("device"),
                optimization_level=raw.get("optimization_level"),
                timestamp=when,
                session=session,
            )
        session.execute(
            update(Deployment)
            .where(Deployment.id == target.id)
            .values(
                last_scrape=raw,
                last_sampled_at=when,
                consecutive_failures=0,
                status="up",
                next_sample_at=_next_after(target.claimed_at or when, settings),
            )
        )
    if target.failures:
        add_event(
            target.model_id,
            "deployment_recovered",
            f"{label}: /metrics answers again after {target.failures} failed scrapes",
            "info",
        )
    if row is None:
        return "baseline", 0
    publish(
        alerts.model_channel(target.model_id),
        "metric_update",
        {
            "modelId": target.model_id,
            "timestamp": when.isoformat(),
            "metrics": {
                "throughput": row["throughput"],
                "latency": row["latency"],
                "memory_usage": row["memory_mb"],
            },
        },
    )
    fired = alerts.evaluate(target.model_id, row, deployment=label, now=when)
    return "sampled", len(fired)


def _failed(target: Target, exc: scrape.ScrapeError, settings: Settings) -> int:
    failures = target.failures + 1
    delay = min(
        settings.SAMPLE_INTERVAL_SECONDS * 2 ** min(failures, 30),
        max(settings.SAMPLE_MAX_BACKOFF_SECONDS, settings.SAMPLE_INTERVAL_SECONDS),
    )
    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(Deployment)
            .where(Deployment.id == target.id)
            .values(
                consecutive_failures=failures,
                next_sample_at=now + timedelta(seconds=delay),
                status="down" if exc.kind == "deployment_unreachable" else "malformed",
            )
        )
    log.warning("deployment %s scrape failed (%d in a row): %s", target.id, failures, exc.message)
    if failures == 1:  # one events row per incident
        add_event(
            target.model_id, exc.kind, f"{target.name or target.url}: {exc.message}", "warning"
        )
    fired = alerts.evaluate(
        target.model_id, None, failures=failures, deployment=target.name or target.url, now=now
    )
    return len(fired)
