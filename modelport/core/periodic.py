"""At most one run of a periodic task per interval, even if two beats send it.

Beat is meant to run once (see Procfile), but a second one started by mistake sends every
periodic task twice. Tasks sent by beat carry ``periodic=True`` (beat_schedule.py) and take a
Redis lock keyed by task name and interval slot, ``slot = floor(now / interval)``::

    SET modelport:periodic:{name}:{slot} <token> NX EX <interval>

The first send in a slot gets the lock and does the work; any later send in the same slot
returns ``SKIPPED`` without doing it. If Redis cannot be reached the lock fails open (logged):
the periodic work is idempotent (conditional updates), so running twice is merely wasteful.

Observable counters: ``modelport:periodic:{name}:runs`` and ``modelport:periodic:{name}:skipped``.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from modelport.core.redis_client import get_redis

log = logging.getLogger(__name__)

PREFIX = "modelport:periodic"
SKIPPED = {"skipped": "already ran in this interval"}


def lock_key(name: str, slot: int) -> str:
    return f"{PREFIX}:{name}:{slot}"


def runs_key(name: str) -> str:
    return f"{PREFIX}:{name}:runs"


def skipped_key(name: str) -> str:
    return f"{PREFIX}:{name}:skipped"


def once_per_interval(name: str, interval_s: float, now: float | None = None) -> bool:
    """True if this caller is the first in the current interval slot (or Redis is down)."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    now = time.time() if now is None else now
    slot = math.floor(now / interval_s)
    try:
        client = get_redis()
        taken = client.set(
            lock_key(name, slot), uuid.uuid4().hex, nx=True, ex=max(1, math.ceil(interval_s))
        )
        if not taken:
            _incr(skipped_key(name))
        return bool(taken)
    except (redis.RedisError, OSError) as exc:
        log.warning("periodic lock for %s unavailable, running anyway (fail open): %s", name, exc)
        return True


def record_run(name: str) -> None:
    """Count a run that actually did the work (ops metric; never fails the task)."""
    _incr(runs_key(name))


def _incr(key: str) -> None:
    try:
        get_redis().incr(key)
    except (redis.RedisError, OSError) as exc:
        log.warning("could not count %s: %s", key, exc)


def run_periodic(name: str, interval_s: float, periodic: bool, work: Callable[[], Any]) -> Any:
    """Run `work` unless beat already ran `name` in this interval slot (only beat's sends,
    `periodic=True`, take the lock); count the runs."""
    if periodic and not once_per_interval(name, interval_s):
        return dict(SKIPPED)
    result = work()
    record_run(name)
    return result
