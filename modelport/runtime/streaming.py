"""Token streaming as server-sent events: TGI's events for POST / with "stream": true, and
OpenAI's chunks for /v1/chat/completions and /v1/completions with "stream": true.

Generation runs on the model thread between batches; each token crosses to the event loop
through a queue. A client that goes away stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .generation import CausalEngine, Generation
    from .protocol import InferenceRequest
    from .server import Runtime

DONE = object()


def sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def token_events(
    runtime: Runtime, engine: CausalEngine, prompt: str, params: Any
) -> AsyncIterator[tuple[dict[str, Any] | None, Generation | None]]:
    """(token, None) per generated token, then (None, the whole generation)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def emit(token: dict[str, Any]) -> None:
        if stop.is_set():
            raise _Stopped
        loop.call_soon_threadsafe(queue.put_nowait, token)

    def run() -> Generation | None:
        try:
            with engine.backend.running():
                return engine.stream(prompt, params, emit)
        except _Stopped:
            return None

    runtime.in_flight += 1  # the response outlives its route: drain waits for it too
    job = asyncio.ensure_future(runtime.batcher.call(run))
    job.add_done_callback(lambda _: loop.call_soon(queue.put_nowait, DONE))
    try:
        while True:
            item = await queue.get()
            if item is DONE:
                break
            yield item, None
        yield None, job.result()
    finally:
        stop.set()
        runtime.in_flight -= 1


class _Stopped(Exception):
    """The client went away: raised inside generate to end it."""


def error_event(exc: BaseException) -> bytes:
    if isinstance(exc, InputError):
        return sse({"error": str(exc), "error_type": exc.error_type})
    return sse({"error": "generation failed; see the server log", "error_type": "generation"})


async def tgi_stream(runtime: Runtime, engine: Any, job: InferenceRequest) -> AsyncIterator[bytes]:
    """TGI's stream: one event per token; the last carries generated_text and details."""
    params, pending, index = job.params, None, 0
    try:
        async for token, generation in token_events(runtime, engine, job.items[0], params):
            if token is not None:
                if pending is not None:
                    yield sse(pending)
                index += 1
                pending = {"index": index, "token": token, "generated_text": None, "details": None}
            elif generation is not None and pending is not None:
                text = generation.text
                if params.return_full_text:
                    text = generation.prompt + text
                pending["generated_text"] = text
                pending["details"] = {
                    "finish_reason": generation.finish_reason,
                    "generated_tokens": generation.completion_tokens,
                    "input_length": generation.prompt_tokens,
                    "seed": params.seed,
                }
                yield sse(pending)
    except Exception as exc:
        yield error_event(exc)
