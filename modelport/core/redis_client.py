"""Redis clients by role: cache (db 2, SPEC's keys) and event bus (same db)."""

from __future__ import annotations

import threading

import redis

from modelport.core.settings import get_settings

CACHE_DB = 2
_lock = threading.Lock()
_clients: dict[tuple[str, int], redis.Redis] = {}


def get_redis(db: int = CACHE_DB) -> redis.Redis:
    url = get_settings().redis_db_url(db)
    with _lock:
        key = (url, db)
        if key not in _clients:
            _clients[key] = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=5,
                socket_connect_timeout=3,
                health_check_interval=30,
            )
        return _clients[key]


def reset_redis() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
