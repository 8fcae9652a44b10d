"""Timed windows and throttled progress (worker-only).

CPU: `perf_counter_ns` around each iteration. GPU: a CUDA event pair recorded around each
iteration and one synchronize at the end of the window, so the host never waits on the device
mid-window. Garbage collection is off for the whole window. Work done between iterations
(progress reports, the memory-limit check) falls outside the per-iteration spans, and
throughput is computed from the sum of those spans.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

MIN_PROGRESS_INTERVAL_S = 0.1

# between(done) runs after each iteration outside its span; True stops the window early.
Between = Callable[[int], bool]


class Progress:
    """Calls `callback(fraction, stage)` with non-decreasing fractions, at most ~10 times/s."""

    def __init__(self, callback: Callable[[float, str], Any] | None, total_units: int):
        self.callback = callback
        self.total_units = max(1, total_units)
        self.done_units = 0
        self.fraction = 0.0
        self._last = float("-inf")

    def report(self, stage: str, units: int | None = None, *, force: bool = False) -> None:
        if units is not None:
            self.done_units = units
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < MIN_PROGRESS_INTERVAL_S:
            return
        self.fraction = max(self.fraction, min(1.0, self.done_units / self.total_units))
        self._last = now
        self.callback(self.fraction, stage)


def run_untimed(step: Callable[[], Any], count: int, between: Between | None = None) -> None:
    """Warmup: `count` runs, not timed; a GPU window is drained at the end."""
    for done in range(1, count + 1):
        step()
        if between is not None and between(done):
            break
    _synchronize_if_cuda()


def time_window(
    step: Callable[[], Any], count: int, *, device: str, between: Between | None = None
) -> list[float]:
    """Milliseconds of each of up to `count` runs of `step` (fewer if `between` stops it)."""
    gc.collect()
    gc.disable()
    try:
        if device == "cuda":
            return _cuda_window(step, count, between)
        return _cpu_window(step, count, between)
    finally:
        gc.enable()


def _cpu_window(step: Callable[[], Any], count: int, between: Between | None) -> list[float]:
    spans = [0] * count
    done = 0
    clock = time.perf_counter_ns
    for i in range(count):
        began = clock()
        step()
        spans[i] = clock() - began
        done = i + 1
        if between is not None and between(done):
            break
    return [span / 1e6 for span in spans[:done]]


def _cuda_window(step: Callable[[], Any], count: int, between: Between | None) -> list[float]:
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    done = 0
    for i in range(count):
        starts[i].record()
        step()
        ends[i].record()
        done = i + 1
        if between is not None and between(done):
            break
    torch.cuda.synchronize()  # the window's one synchronize
    return [starts[i].elapsed_time(ends[i]) for i in range(done)]


def _synchronize_if_cuda() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
