"""Dynamic batching: requests' inputs queue here and run together, one batch at a time.

Inputs from concurrent requests that share parameters are grouped into one model batch of at
most `max_batch`. When more are waiting than fit, the oldest input goes first and the rest of
its batch are the inputs closest to it in length, so little padding is wasted. A lone client
never waits: the delay of up to `max_delay_s` for a batch to fill applies only while the
server is under concurrent load (the last batch held more than one input), and counts from
when the model became free, not from when the oldest input arrived (an input that waited
through the last batch would otherwise run alone while its peers, answered by that batch,
queue again: batches of 1 and n-1 forever). The model runs in
one worker thread, so the event loop keeps accepting and parsing while a batch runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .errors import Busy, InputError

log = logging.getLogger("run_inference")
RunBatch = Callable[[list[Any], Any], Sequence[Any]]


@dataclass(eq=False)
class _Input:
    value: Any
    size: int
    key: Hashable
    params: Any
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int,
        max_delay_s: float,
        max_queued: int,
        observe: Callable[[int, float], None] = lambda size, seconds: None,
        on_depth: Callable[[int], None] = lambda depth: None,
    ) -> None:
        self.run, self.observe, self.on_depth = run, observe, on_depth
        self.max_batch, self.max_delay_s, self.max_queued = max_batch, max_delay_s, max_queued
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._pending: list[_Input] = []
        self._arrived = asyncio.Event()
        self._last_batch = 0
        self._free_since = 0.0  # when the model thread last finished a batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return len(self._pending)

    async def submit(
        self, values: list[Any], sizes: list[int], params: Any, key: Hashable
    ) -> list[Any]:
        """The outputs for `values`, in order; raises the first input's error if any failed."""
        if len(self._pending) + len(values) > self.max_queued:
            raise Busy(f"the server is busy: more than {self.max_queued} inputs are queued")
        loop = asyncio.get_running_loop()
        inputs = [
            _Input(value, size, key, params, loop.create_future())
            for value, size in zip(values, sizes, strict=True)
        ]
        self._pending.extend(inputs)
        self.on_depth(len(self._pending))
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(item.future for item in inputs)))
        finally:  # a client gone or timed out: its inputs leave the queue unrun
            for item in inputs:
                item.future.cancel()
            self._drop_cancelled()
            self.on_depth(len(self._pending))

    async def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` on the model thread, between batches (streaming generation)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self._last_batch > 1:  # under load: let the batch fill, up to the delay
                await self._fill(self._pending[0])
            batch = self._take()
            self.on_depth(len(self._pending))
            if not batch:
                continue
            self._last_batch = len(batch)
            began = time.perf_counter()
            outcomes = await loop.run_in_executor(self.executor, self._run, batch)
            self._free_since = time.monotonic()
            self.observe(len(batch), time.perf_counter() - began)
            for item, (ok, value) in zip(batch, outcomes, strict=True):
                if item.future.done():
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)

    async def _fill(self, head: _Input) -> None:
        deadline = max(head.enqueued, self._free_since) + self.max_delay_s
        while sum(1 for i in self._pending if i.key == head.key) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _drop_cancelled(self) -> None:
        if any(item.future.done() for item in self._pending):
            self._pending = [item for item in self._pending if not item.future.done()]

    def _take(self) -> list[_Input]:
        """The oldest input and the same-parameter inputs nearest to it in length."""
        self._drop_cancelled()
        if not self._pending:
            return []
        head = self._pending[0]
        same = [item for item in self._pending[1:] if item.key == head.key]
        if len(same) >= self.max_batch:
            same.sort(key=lambda item: abs(item.size - head.size))
        chosen = {id(item) for item in same[: self.max_batch - 1]}
        batch = [head, *(item for item in self._pending[1:] if id(item) in chosen)]
        self._pending = [item for item in self._pending[1:] if id(item) not in chosen]
        return batch

    def _run(self, batch: list[_Input]) -> list[tuple[bool, Any]]:
        """(ok, output or error) per input; a failing batch is retried one input at a time,
        so one bad input fails only its own request."""
        params = batch[0].params
        try:
            outputs = self.run([item.value for item in batch], params)
            if len(outputs) != len(batch):
                raise RuntimeError(f"{len(outputs)} outputs for {len(batch)} inputs")
            return [(True, output) for output in outputs]
        except Exception as exc:
            if len(batch) == 1:
                if not isinstance(exc, InputError):
                    log.exception("prediction failed")
                return [(False, exc)]
        return [outcome for item in batch for outcome in self._run([item])]
