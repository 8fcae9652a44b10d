"""`modelport watch MODEL`: live metric updates and alerts over the API's WebSocket (/ws)."""

from __future__ import annotations

import json
import sys
import time

from modelport.client.api import Client, Unreachable

RECONNECTS = 5


def watch(client: Client, args) -> int:
    """Print every metric_update and alert; reconnect with lastEventId when the socket drops."""
    import simple_websocket

    base = "ws" + client.url[len("http") :] if client.url.startswith("http") else client.url
    headers = {"Authorization": f"Bearer {client.api_key}"} if client.api_key else None
    subscribe = {"event": "subscribe_metrics", "data": {"modelId": args.model}}
    if args.metrics:
        subscribe["data"]["metrics"] = args.metrics
    last_id, failures = None, 0
    while True:
        url = f"{base}/ws" + (f"?lastEventId={last_id}" if last_id else "")
        try:
            ws = simple_websocket.Client.connect(url, headers=headers)
        except Exception as exc:  # refused handshakes and socket errors look alike here
            failures += 1
            if failures > RECONNECTS:
                raise Unreachable(f"cannot open {base}/ws: {exc}") from exc
            time.sleep(min(2**failures, 10))
            continue
        try:
            ws.send(json.dumps(subscribe))
            while True:
                message = json.loads(ws.receive())
                last_id = message.get("id") or last_id
                failures = 0
                _show(message, args.json)
        except simple_websocket.ConnectionClosed:
            print("connection closed; reconnecting", file=sys.stderr)
        finally:
            ws.close()


def _show(message: dict, as_json: bool) -> None:
    event, data = message.get("event"), message.get("data") or {}
    if as_json:
        print(json.dumps(message), flush=True)
    elif event == "metric_update":
        values = " ".join(f"{k}={v}" for k, v in data.items() if k not in ("modelId",))
        print(f"{data.get('modelId')} {values}", flush=True)
    elif event == "alert":
        print(f"ALERT {json.dumps(data)}", flush=True)
    elif event == "error":
        print(f"error {data.get('code')}: {data.get('message')}", file=sys.stderr, flush=True)
    else:
        print(f"{event} {json.dumps(data)}", file=sys.stderr, flush=True)
