"""SPEC's Redis cache keys and TTLs.

`files:{model_id}` is one hash per model whose fields are option fingerprints, so different
options never share an entry; each field carries its own timestamp and is a miss after the
TTL even while the hash itself lives on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from modelport.core.redis_client import get_redis

log = logging.getLogger(__name__)

MODEL_INFO_TTL = 3600
FILES_TTL = 3600
BENCHMARK_TTL = 1800


def model_info_key(model_id: str) -> str:
    return f"model_info:{model_id}"


def files_key(model_id: str) -> str:
    return f"files:{model_id}"


def benchmark_key(model_id: str, batch_size: int) -> str:
    return f"benchmark:{model_id}:{batch_size}"


def _safe(fn, default=None):
    try:
        return fn()
    except redis.RedisError as exc:  # the cache is an optimisation, never a failure
        log.warning("cache unavailable: %s", exc)
        return default


def get_model_info(model_id: str) -> dict[str, Any] | None:
    raw = _safe(lambda: get_redis().get(model_info_key(model_id)))
    return json.loads(raw) if raw else None


def set_model_info(model_id: str, info: dict[str, Any]) -> None:
    body = json.dumps(info)
    _safe(lambda: get_redis().set(model_info_key(model_id), body, ex=MODEL_INFO_TTL))


def _get_entry(key: str, field: str, ttl: int) -> dict[str, Any] | None:
    """A hash field written by `_set_entry`, or None once it is older than `ttl`."""
    raw = _safe(lambda: get_redis().hget(key, field))
    if not raw:
        return None
    entry = json.loads(raw)
    if time.time() - entry.get("cachedAt", 0) > ttl:
        return None
    return entry["value"]


def _set_entry(key: str, field: str, value: dict[str, Any], ttl: int) -> None:
    body = json.dumps({"cachedAt": time.time(), "value": value})

    def write():
        pipe = get_redis().pipeline()
        pipe.hset(key, field, body)
        pipe.expire(key, ttl)
        pipe.execute()

    _safe(write)


def get_files(model_id: str, fingerprint: str) -> dict[str, Any] | None:
    return _get_entry(files_key(model_id), fingerprint, FILES_TTL)


def set_files(model_id: str, fingerprint: str, response: dict[str, Any]) -> None:
    _set_entry(files_key(model_id), fingerprint, response, FILES_TTL)


def get_benchmark(model_id: str, batch_size: int, config_key: str) -> dict[str, Any] | None:
    """One batch size's measurement, only for an identical configuration."""
    return _get_entry(benchmark_key(model_id, batch_size), config_key, BENCHMARK_TTL)


def set_benchmark(model_id: str, batch_size: int, config_key: str, row: dict[str, Any]) -> None:
    """`benchmark:{model_id}:{batch_size}`: SPEC's throughput and latency, plus the details."""
    _set_entry(benchmark_key(model_id, batch_size), config_key, row, BENCHMARK_TTL)
