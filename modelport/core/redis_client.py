"""Redis clients by role: cache (db 2, SPEC's keys) and event bus (same db).

Workers and beat wait for Redis as long as its socket timeouts allow (5 s, redis-py's
retries). The API's request threads must not: `use_request_path_timeouts()` (create_app)
makes every client this process builds give up after REQUEST_PATH_TIMEOUT_S without
retrying, so a stopped or unreachable Redis costs a request well under 2 s and it answers
(503 with Retry-After, or a job accepted that the reconciler sends later). One timeout opens
a breaker for BREAKER_S: until then the request path's calls fail at once instead of each
waiting its own timeout (a request touches Redis several times: rate limit, cache, broker).
Readers that block on purpose (the WebSocket relay's XREAD) ask for `blocking=True` and keep
the long timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from modelport.core.settings import get_settings

CACHE_DB = 2
REQUEST_PATH_TIMEOUT_S = 0.5
BREAKER_S = 2.0
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
_lock = threading.Lock()
_clients: dict[tuple[str, int, bool], redis.Redis] = {}
_request_path = False


class Breaker:
    """Open for BREAKER_S after Redis failed to answer; while open, calls fail at once."""

    def __init__(self) -> None:
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def check(self) -> None:
        if self.is_open():
            raise redis.ConnectionError(
                f"Redis did not answer a moment ago; not asked again for {BREAKER_S:g} s"
            )

    def trip(self) -> None:
        self.open_until = time.monotonic() + BREAKER_S


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(url: str) -> Breaker:
    """The breaker of the Redis server at `url` (its databases share it)."""
    parts = urlsplit(url)
    server = f"{parts.scheme}://{parts.netloc}" + (parts.path if parts.scheme == "unix" else "")
    with _breakers_lock:  # not _lock: get_redis holds that while it builds a client
        return _breakers.setdefault(server, Breaker())


def breaker() -> Breaker:
    """The breaker of this process's Redis (REDIS_URL), which is also the broker."""
    return breaker_for(get_settings().redis_db_url(CACHE_DB))


class FastRedis(redis.Redis):
    """A request-path client: short timeouts, no retries, its server's breaker."""

    breaker: Breaker

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.breaker.check()
        try:
            return super().execute_command(*args, **options)
        except UNREACHABLE:
            self.breaker.trip()
            raise

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = FastPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.breaker = self.breaker
        return pipe

    def pubsub(self, **kwargs: Any) -> Any:
        self.breaker.check()
        return super().pubsub(**kwargs)


class FastPipeline(Pipeline):
    breaker: Breaker

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.breaker.check()
        try:
            return super().execute(raise_on_error)
        except UNREACHABLE:
            self.breaker.trip()
            raise


def fast_client(url: str) -> redis.Redis:
    """A new request-path client for `url` (decoded responses)."""
    client = FastRedis.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=REQUEST_PATH_TIMEOUT_S,
        socket_connect_timeout=REQUEST_PATH_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    client.breaker = breaker_for(url)
    return client


def use_request_path_timeouts() -> None:
    """From now on this process's clients fail fast (the API process)."""
    global _request_path
    _request_path = True
    reset_redis()


def request_path() -> bool:
    return _request_path


def get_redis(db: int = CACHE_DB, *, blocking: bool = False) -> redis.Redis:
    url = get_settings().redis_db_url(db)
    fast = _request_path and not blocking
    with _lock:
        key = (url, db, fast)
        if key not in _clients:
            _clients[key] = (
                fast_client(url)
                if fast
                else redis.Redis.from_url(
                    url, decode_responses=True, health_check_interval=30,
                    socket_timeout=5, socket_connect_timeout=3,
                )
            )  # fmt: skip
        return _clients[key]


def reset_redis() -> None:
    """Close this process's clients (new ones follow the current settings) and breakers."""
    with _breakers_lock:
        _breakers.clear()
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
