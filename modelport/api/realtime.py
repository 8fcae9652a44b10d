"""`/ws`: the WebSocket relay. Handshake checks, the JSON protocol, one sender per socket.

Messages are `{"event": name, "data": {...}}`; the server adds `id` (the Redis stream entry
id, null on acknowledgements) so a client can reconnect with `?lastEventId=` and replay.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Blueprint, Flask, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from modelport.api import relay
from modelport.api.common import loads_strict
from modelport.core import apikeys
from modelport.core.errors import BadRequest, ServiceUnavailable, Unauthorized
from modelport.core.events import job_channel

log = logging.getLogger(__name__)

bp = Blueprint("realtime", __name__)
sock = Sock()

MAX_MESSAGE = 64 * 1024
METRIC_NAMES = ("throughput", "latency", "memory_usage")
ALERT_FIELDS = ("modelId", "type", "message", "severity")
CLOSE_TRY_AGAIN_LATER = 1013
MAX_SUBSCRIPTIONS = 100  # channels (models and jobs) per connection
REPLAY_BURST = 10  # replays a connection may make at once (one per channel on reconnect)
REPLAY_INTERVAL_S = 1.0


def init_app(app: Flask) -> None:
    # The library closes a socket past max_message_size; below it we answer with an `error`.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": 2**20})
    app.register_blueprint(bp)


def model_channel(model_id: str) -> str:
    return f"modelport:model:{model_id}"


@bp.before_request
def _handshake():
    """Refuse before upgrading: a foreign Origin (403), missing credentials (401), a bad id."""
    settings = current_app.config["MODELPORT"]
    origin = request.headers.get("Origin")
    allowed = settings.ALLOWED_ORIGINS
    # the dashboard this process serves is same-origin; any other page must be listed
    same_origin = origin is not None and origin.rstrip("/") == request.host_url.rstrip("/")
    if origin and not same_origin and "*" not in allowed and origin.rstrip("/") not in allowed:
        raise Unauthorized(
            "this Origin may not open the WebSocket; add it to ALLOWED_ORIGINS",
            {"origin": origin},
            status=403,
        )
    if settings.auth_required:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else request.args.get("token", "")
        if not key or apikeys.verify(key) is None:
            raise Unauthorized(
                "a valid API key is required: send 'Authorization: Bearer <key>' or "
                "?token=<key> (browsers cannot set headers on a WebSocket)"
            )
    after = request.args.get("lastEventId")
    if after is not None and not relay.STREAM_ID.match(after):
        raise BadRequest("lastEventId must be a stream id such as 1700000000000-0")


@sock.route("/ws", bp=bp)
def websocket(ws) -> None:
    size = current_app.config.get("WS_QUEUE_SIZE", relay.QUEUE_SIZE)
    Connection(ws, relay.get_hub(), request.args.get("lastEventId"), size).serve()


class ProtocolError(Exception):
    pass


class Connection:
    """One socket: this (request) thread reads client messages, a second thread sends."""

    def __init__(self, ws, hub: relay.Hub, resume_from: str | None, queue_size: int):
        self.ws = ws
        self.hub = hub
        self.resume_from = _full_id(resume_from) if resume_from else None
        self.sub = relay.Subscriber(outbox=relay.Outbox(queue_size))
        self.metric_filters: dict[str, frozenset[str] | None] = {}
        self.replay_tokens, self.replay_checked = float(REPLAY_BURST), time.monotonic()

    def serve(self) -> None:
        self.hub.ensure_started()
        sender = threading.Thread(target=self.send_loop, name="modelport-ws-send", daemon=True)
        sender.start()
        try:
            while not self.sub.outbox.closed:
                raw = self.ws.receive(timeout=1.0)
                if raw is not None:
                    self.handle(raw)
        except ConnectionClosed:
            pass
        finally:
            self.hub.unsubscribe(self.sub)
            self.sub.outbox.close()
            sender.join(timeout=5)

    def send_loop(self) -> None:
        try:
            while True:
                try:
                    items = self.sub.outbox.take()
                except relay.Overflow:
                    self.ws.close(CLOSE_TRY_AGAIN_LATER, "too slow; reconnect with lastEventId")
                    return
                if not items:
                    return
                for item in items:
                    text = self.render(item)
                    if text is not None:
                        self.ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            self.sub.outbox.close()

    def render(self, item: relay.Item) -> str | None:
        data = item.data
        if item.channel is not None and item.channel not in self.sub.channels:
            return None  # unsubscribed while it was queued
        if item.event == "metric_update":
            wanted = self.metric_filters.get(data.get("modelId", ""), None)
            metrics = data.get("metrics") or {}
            data = {
                "modelId": data.get("modelId"),
                "timestamp": data.get("timestamp"),
                "metrics": {k: v for k, v in metrics.items() if wanted is None or k in wanted},
            }
        elif item.event == "alert":
            data = {k: data.get(k) for k in ALERT_FIELDS}
        return json.dumps({"event": item.event, "data": data, "id": item.id})

    # ------------------------------------------------------------------ client messages

    def handle(self, raw: str | bytes) -> None:
        name = None
        try:
            if len(raw) > MAX_MESSAGE:
                raise ProtocolError(f"message is larger than {MAX_MESSAGE} bytes")
            try:
                message = loads_strict(raw)
            except ValueError as exc:
                raise ProtocolError(f"message is not valid JSON: {str(exc)[:200]}") from None
            if not isinstance(message, dict) or not isinstance(message.get("event"), str):
                raise ProtocolError('expected {"event": name, "data": {...}}')
            name = message["event"]
            data = message.get("data") or {}
            if not isinstance(data, dict):
                raise ProtocolError("data must be a JSON object")
            handler = HANDLERS.get(name)
            if handler is None:
                raise ProtocolError(f"unknown event; expected one of {sorted(HANDLERS)}")
            handler(self, data)
        except ProtocolError as exc:
            self.error(BadRequest(str(exc), {"event": name}).to_dict()["error"])
        except redis.RedisError as exc:
            log.warning("websocket %s: redis unavailable: %s", name, exc)
            err = ServiceUnavailable("the event store (Redis) is unavailable; retry shortly")
            self.error(err.to_dict()["error"])

    def reply(self, event: str, data: dict[str, Any]) -> None:
        self.sub.outbox.put(relay.Item(event, data))

    def error(self, body: dict[str, Any]) -> None:
        self.reply("error", body)

    def subscribe(self, channel: str, ack: relay.Item) -> None:
        if channel not in self.sub.channels and len(self.sub.channels) >= MAX_SUBSCRIPTIONS:
            raise ProtocolError(
                f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection: unsubscribe first, "
                "or open another connection"
            )
        after = self.resume_from if channel not in self.sub.channels else None
        if after is not None:
            self.replay_allowed()
        if self.hub.subscribe(self.sub, [channel], ack, after):
            self.reply("replay_truncated", {"lastEventId": after})

    def subscribe_metrics(self, data: dict[str, Any]) -> None:
        model_id = _required_str(data, "modelId")
        metrics = data.get("metrics")
        if metrics is not None:
            if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
                raise ProtocolError("metrics must be a list of metric names")
            unknown = sorted(set(metrics) - set(METRIC_NAMES))
            if unknown:
                raise ProtocolError(f"unknown metrics {unknown}; known: {list(METRIC_NAMES)}")
        self.metric_filters[model_id] = None if metrics is None else frozenset(metrics)
        ack_data = {"modelId": model_id, "metrics": metrics or list(METRIC_NAMES)}
        self.subscribe(model_channel(model_id), relay.Item("subscribed", ack_data))

    def unsubscribe_metrics(self, data: dict[str, Any]) -> None:
        model_id = _required_str(data, "modelId")
        self.hub.unsubscribe(self.sub, [model_channel(model_id)])
        self.metric_filters.pop(model_id, None)
        self.reply("unsubscribed", {"modelId": model_id})

    def subscribe_job(self, data: dict[str, Any]) -> None:
        job_id = _required_str(data, "jobId")
        self.subscribe(job_channel(job_id), relay.Item("subscribed", {"jobId": job_id}))

    def unsubscribe_job(self, data: dict[str, Any]) -> None:
        job_id = _required_str(data, "jobId")
        self.hub.unsubscribe(self.sub, [job_channel(job_id)])
        self.reply("unsubscribed", {"jobId": job_id})

    def replay_allowed(self) -> None:
        """A replay reads the event stream (at most relay.MAX_REPLAY_SCAN entries): a token
        bucket per connection, REPLAY_BURST at once then one per REPLAY_INTERVAL_S, so a
        reconnecting client replays its subscriptions but none can spend the server's CPU
        on replays in a loop."""
        now = time.monotonic()
        self.replay_tokens = min(
            REPLAY_BURST, self.replay_tokens + (now - self.replay_checked) / REPLAY_INTERVAL_S
        )
        self.replay_checked = now
        if self.replay_tokens < 1:
            raise ProtocolError(
                f"too many replays (resume, or subscriptions with lastEventId): one per "
                f"{REPLAY_INTERVAL_S:g} s after {REPLAY_BURST}; retry shortly"
            )
        self.replay_tokens -= 1

    def resume(self, data: dict[str, Any]) -> None:
        after = _required_str(data, "lastEventId")
        if not relay.STREAM_ID.match(after):
            raise ProtocolError("lastEventId must be a stream id such as 1700000000000-0")
        self.replay_allowed()
        ack = relay.Item("resumed", {"lastEventId": after})
        if self.hub.subscribe(self.sub, set(self.sub.channels), ack, _full_id(after)):
            self.reply("replay_truncated", {"lastEventId": after})

    def ping(self, data: dict[str, Any]) -> None:
        self.reply("pong", data)


HANDLERS: dict[str, Callable[[Connection, dict[str, Any]], None]] = {
    "subscribe_metrics": Connection.subscribe_metrics,
    "unsubscribe_metrics": Connection.unsubscribe_metrics,
    "subscribe_job": Connection.subscribe_job,
    "unsubscribe_job": Connection.unsubscribe_job,
    "resume": Connection.resume,
    "ping": Connection.ping,
}


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ProtocolError(f"data.{key} is required: a non-empty string")
    return value


def _full_id(entry_id: str) -> str:
    ms, seq = relay.parse_id(entry_id)
    return f"{ms}-{seq}"
