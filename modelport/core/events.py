"""The event bus between workers/beat and the API: Redis pub/sub plus a bounded stream.

Channels: `modelport:job:{id}` (job_progress, job_completed). The stream `modelport:events`
keeps recent events for replay by the realtime relay.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from modelport.core.redis_client import get_redis

log = logging.getLogger(__name__)

STREAM = "modelport:events"
STREAM_MAXLEN = 10_000


def job_channel(job_id: str) -> str:
    return f"modelport:job:{job_id}"


def _message(event: str, data: dict[str, Any]) -> str:
    return json.dumps({"event": event, "data": data, "ts": time.time()})


def publish(channel: str, event: str, data: dict[str, Any]) -> None:
    message = _message(event, data)
    try:
        client = get_redis()
        pipe = client.pipeline(transaction=False)
        pipe.xadd(STREAM, {"channel": channel, "message": message}, maxlen=STREAM_MAXLEN)
        pipe.publish(channel, message)
        pipe.execute()
    except redis.RedisError as exc:  # the DB row is the truth; events are best effort
        log.warning("could not publish %s on %s: %s", event, channel, exc)


def publish_job(job_id: str, event: str, data: dict[str, Any]) -> None:
    publish(job_channel(job_id), event, {"jobId": job_id, **data})


# Appends and publishes only if the marker key was not set yet, atomically: a final event sent
# again (by the reconciler, for a process killed between its commit and its bookkeeping) is
# not seen twice.
_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'channel', ARGV[1], 'message', ARGV[2])
    redis.call('PUBLISH', ARGV[1], ARGV[2])
    return 1
end
return 0
"""
ONCE_TTL = 7 * 24 * 3600


def publish_job_once(job_id: str, event: str, data: dict[str, Any]) -> bool:
    """Publish a job's final event at most once. True once it is on the bus (now or before),
    False when Redis could not be reached (the caller tries again later)."""
    channel = job_channel(job_id)
    message = _message(event, {"jobId": job_id, **data})
    try:
        marker = f"modelport:announced:{job_id}:{event}"
        keys_and_args = (marker, STREAM, channel, message, STREAM_MAXLEN, ONCE_TTL)
        get_redis().eval(_ONCE, 2, *keys_and_args)
    except redis.RedisError as exc:
        log.warning("could not publish %s on %s: %s", event, channel, exc)
        return False
    return True
