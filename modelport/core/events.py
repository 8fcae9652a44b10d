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


def publish(channel: str, event: str, data: dict[str, Any]) -> None:
    message = json.dumps({"event": event, "data": data, "ts": time.time()})
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
