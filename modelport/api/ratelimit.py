"""Rate limiting of job submissions, counted in Redis (the cache db).

Algorithm: a fixed-window counter per identity. Each submission runs INCR + EXPIRE on
`modelport:ratelimit:<scope>:<identity>:<window>` in one MULTI/EXEC pipeline; over the limit
the request is refused with 429 (RATE_LIMITED, 1009) and `Retry-After` set to the seconds left
in the window. A burst of up to twice the limit is possible across a window boundary.

Identity: the API key id when the request carries a valid key (`g.api_key_id`, set by
modelport.api.auth), else the client address: `request.remote_addr`, or, when TRUSTED_PROXIES
is N > 0, the N-th address from the right of X-Forwarded-For (as werkzeug's ProxyFix does).

Every submission is counted, including ones later refused as invalid: the check runs before
the body is parsed. When Redis cannot be reached the limiter fails open: it logs a warning and
lets the request through (the route itself then reports Redis as it always does).
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from flask import after_this_request, current_app, g, request

from modelport.core.errors import RateLimited
from modelport.core.redis_client import CACHE_DB

log = logging.getLogger(__name__)

KEY_PREFIX = "modelport:ratelimit"
_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def _client(url: str) -> redis.Redis:
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1
            )
        return _clients[url]


def client_address(trusted_proxies: int) -> str:
    addr = request.remote_addr or "unknown"
    if trusted_proxies > 0:
        forwarded = [
            a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()
        ]
        if len(forwarded) >= trusted_proxies:
            addr = forwarded[-trusted_proxies]
    return addr


def identity(settings) -> str:
    key_id = g.get("api_key_id")
    if key_id is not None:
        return f"key:{key_id}"
    return f"addr:{client_address(settings.TRUSTED_PROXIES)}"


def check(scope: str) -> None:
    """Count this request against `scope`'s limit; raise RateLimited when it is over."""
    settings = current_app.config["MODELPORT"]
    rate = settings.submission_rate
    if rate is None:
        return
    limit, window = rate
    now = time.time()
    slot = int(now // window)
    who = identity(settings)
    key = f"{KEY_PREFIX}:{scope}:{who}:{slot}"
    try:
        pipe = _client(settings.redis_db_url(CACHE_DB)).pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("rate limiter failing open: Redis unavailable (%s)", exc)
        return
    if int(count) <= limit:
        return
    retry_after = max(1, math.ceil((slot + 1) * window - now))
    unit = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(window, f"{window}s")

    @after_this_request
    def _retry_after(response):
        response.headers["Retry-After"] = str(retry_after)
        return response

    raise RateLimited(
        f"rate limit exceeded: at most {limit} submissions per {unit} per "
        f"{'API key' if who.startswith('key:') else 'client address'}; "
        f"retry in {retry_after} seconds",
        {"limit": limit, "windowSeconds": window, "retryAfter": retry_after},
    )


def reset_clients() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
