"""One Redis stream reader per web process, fanning events out to bounded per-socket queues.

Progress-like events (job_progress, metric_update) may be dropped for a slow client, oldest
first; final results, alerts and acknowledgements never are: a client whose queue is full of
those is told to go (close code 1013) and reconnects with its last event id to replay.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from modelport.core.events import STREAM, STREAM_MAXLEN
from modelport.core.redis_client import get_redis

log = logging.getLogger(__name__)

LOSSY = frozenset({"job_progress", "metric_update"})
QUEUE_SIZE = 256
STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?\Z")
MAX_REPLAY_SCAN = 2_000  # stream entries one replay reads at most (the stream keeps 10,000)


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class Item:
    event: str
    data: dict[str, Any]
    id: str | None = None
    channel: str | None = None


class Overflow(Exception):
    """The queue is full of messages that may not be dropped."""


class Outbox:
    """A bounded queue that evicts the oldest lossy item before it ever refuses a final one."""

    def __init__(self, maxsize: int = QUEUE_SIZE):
        self.maxsize = maxsize
        self.dropped = 0
        self.overflowed = False
        self.closed = False
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()

    def put(self, item: Item) -> None:
        with self._cond:
            if self.closed or self.overflowed:
                return
            if len(self._items) >= self.maxsize and not self._evict_lossy():
                if item.event in LOSSY:
                    self.dropped += 1
                    return
                self.overflowed = True
                self._cond.notify_all()
                return
            self._items.append(item)
            self._cond.notify_all()

    def _evict_lossy(self) -> bool:
        for index, queued in enumerate(self._items):
            if queued.event in LOSSY:
                del self._items[index]
                self.dropped += 1
                return True
        return False

    def take(self, timeout: float | None = None) -> list[Item]:
        """Everything queued (waiting for something); [] once closed. Raises Overflow."""
        with self._cond:
            while not (self._items or self.overflowed or self.closed):
                if not self._cond.wait(timeout):
                    return []
            if self.overflowed:
                raise Overflow
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(eq=False)
class Subscriber:
    """One socket's side of the hub: its channels and its outbox."""

    outbox: Outbox = field(default_factory=Outbox)
    channels: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[Item] | None = None  # live items held back while a replay is read

    def offer(self, item: Item) -> None:
        with self.lock:
            if self.pending is not None:
                self.pending.append(item)
            else:
                self.outbox.put(item)


class Hub:
    """The process's stream reader and its channel -> subscribers index."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscriber]] = {}
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self.last_id: str | None = None

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread and self._thread.is_alive() and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._subs.clear()
                self.last_id = None
            self._pid = os.getpid()
            try:
                # start from the exact tail so nothing published after this call is missed
                self.last_id = self.last_id or _stream_tail(get_redis())
            except redis.RedisError as exc:
                log.warning("event stream unreachable at start (%s); the reader will retry", exc)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="modelport-relay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                client = get_redis()
                if self.last_id is None:
                    self.last_id = _stream_tail(client)
                response = client.xread({STREAM: self.last_id}, count=1000, block=1000)
                backoff = 0.5
            except Exception as exc:  # a closed or reset client too: never let the reader die
                log.warning("event stream read failed (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            for _stream, entries in response or []:
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    item = to_item(entry_id, fields)
                    if item is not None:
                        self._dispatch(item)

    def _dispatch(self, item: Item) -> None:
        with self._lock:
            targets = list(self._subs.get(item.channel or "", ()))
        for sub in targets:
            sub.offer(item)

    def subscribe(
        self, sub: Subscriber, channels: Iterable[str], ack: Item, after: str | None = None
    ) -> bool:
        """Register channels; queue `ack`, then what came after `after`, then live events.

        Returns True when `after` is older than the stream's window (some events are gone).
        """
        channels = set(channels)
        items: list[Item] = []
        truncated = False
        with sub.lock:
            sub.pending = []
        try:
            with self._lock:
                for channel in channels:
                    self._subs.setdefault(channel, set()).add(sub)
                    sub.channels.add(channel)
            if after:
                items, truncated = read_after(after, channels)
        finally:
            with sub.lock:
                pending, sub.pending = sub.pending or [], None
                sub.outbox.put(ack)
                newest = parse_id(items[-1].id) if items and items[-1].id else (0, 0)
                for item in items:
                    sub.outbox.put(item)
                for item in pending:
                    replayed = item.channel in channels and parse_id(item.id or "0") <= newest
                    if not replayed:
                        sub.outbox.put(item)
        return truncated

    def unsubscribe(self, sub: Subscriber, channels: Iterable[str] | None = None) -> None:
        with self._lock:
            for channel in list(sub.channels if channels is None else channels):
                sub.channels.discard(channel)
                members = self._subs.get(channel)
                if members is not None:
                    members.discard(sub)
                    if not members:
                        del self._subs[channel]

    def subscriber_count(self) -> int:
        with self._lock:
            return len({s for members in self._subs.values() for s in members})


def to_item(entry_id: str, fields: dict[str, str]) -> Item | None:
    try:
        message = json.loads(fields["message"])
        return Item(message["event"], message.get("data") or {}, entry_id, fields["channel"])
    except (KeyError, TypeError, ValueError):
        log.warning("skipping malformed event stream entry %s", entry_id)
        return None


def _stream_tail(client: redis.Redis) -> str:
    try:
        return client.xinfo_stream(STREAM)["last-generated-id"]
    except redis.ResponseError:  # no stream yet: every entry will be new
        return "0-0"


def read_after(after: str, channels: set[str]) -> tuple[list[Item], bool]:
    """Stream entries after `after` on `channels`, and whether the window had moved past it."""
    client = get_redis()
    truncated = False
    try:
        info = client.xinfo_stream(STREAM)
    except redis.ResponseError:
        return [], False
    first = info.get("first-entry")
    if first and parse_id(after) < parse_id(first[0]) and info["length"] >= STREAM_MAXLEN:
        truncated = True
    if parse_id(after) > parse_id(info["last-generated-id"]):
        truncated = True  # an id from before a Redis restart or flush
    # the newest MAX_REPLAY_SCAN entries at most: a bounded read per replay; entries older
    # than those are reported as lost, as if the window had moved past them
    newest = client.xrevrange(STREAM, max="+", min=f"({after}", count=MAX_REPLAY_SCAN)
    if len(newest) == MAX_REPLAY_SCAN and client.xrange(
        STREAM, min=f"({after}", max=f"({newest[-1][0]}", count=1
    ):
        truncated = True
    items = []
    for entry_id, fields in reversed(newest):
        if fields.get("channel") in channels:
            item = to_item(entry_id, fields)
            if item is not None:
                items.append(item)
    return items, truncated


_hub = Hub()


def get_hub() -> Hub:
    return _hub
