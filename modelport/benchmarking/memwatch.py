"""Process memory during a benchmark: RSS sampling that sleeps, peak resets, batch estimates.

The sampler is a thread that reads the resident set size every `interval_s` and sleeps in
between (Event.wait), so it never competes for the cores being measured. On Linux the kernel's
own high-water mark (VmHWM, reset through /proc/self/clear_refs) is folded in at the end, so
a spike shorter than the interval is not missed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
import threading
from typing import Any

from modelport.benchmarking.inputs import model_config
from modelport.benchmarking.modelcache import DTYPE_BYTES, LoadedModel

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
DEFAULT_INTERVAL_S = 0.02


def rss_bytes() -> int:
    """Current resident set size of this process (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def kernel_peak_bytes() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so one batch's peak does not carry over."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RssSampler:
    """Peak RSS over a `with` block; `exceeded` turns true once RSS passes `limit_bytes`."""

    def __init__(self, limit_bytes: int | None = None, interval_s: float = DEFAULT_INTERVAL_S):
        self.limit_bytes = limit_bytes
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.samples = 0
        self.exceeded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm = False

    def _sample(self) -> None:
        rss = rss_bytes()
        self.samples += 1
        if rss > self.peak_bytes:
            self.peak_bytes = rss
        if self.limit_bytes is not None and rss > self.limit_bytes:
            self.exceeded = True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._hwm = reset_peak()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        kernel = kernel_peak_bytes() if self._hwm else None
        if kernel is not None and kernel > self.peak_bytes:
            self.peak_bytes = kernel
            if self.limit_bytes is not None and kernel > self.limit_bytes:
                self.exceeded = True


def estimate_batch_bytes(loaded: LoadedModel, batch_size: int, length: int, new_tokens: int) -> int:
    """Memory a batch adds to the loaded model: activations (as packaging.memory sizes them:
    all layers live, erring high), eager attention scores, logits and generation's KV cache."""
    from modelport.packaging.memory import (
        ACTIVATION_FACTOR,
        KV_CACHE_FACTOR,
        model_shape,
    )

    config = model_config(loaded)
    as_dict = config.to_dict() if hasattr(config, "to_dict") else {}
    shape = model_shape(as_dict, loaded.task)
    dtype_bytes = DTYPE_BYTES.get(loaded.applied.get("dtype", "float32"), 4)
    hidden, layers = shape["hidden"] or 0, shape["layers"] or 0
    seq = (
        shape["seq"]
        if loaded.kind == "image"
        else length + (new_tokens if loaded.generative else 0)
    )
    factor = ACTIVATION_FACTOR + (KV_CACHE_FACTOR if loaded.generative else 0)
    total = batch_size * seq * hidden * layers * dtype_bytes * factor
    if loaded.applied.get("attention") != "sdpa" and shape["heads"]:
        total += batch_size * shape["heads"] * seq * seq * dtype_bytes * 2
    vocab = shape["vocab"] or 0
    if loaded.task == "fill-mask":
        total += batch_size * seq * vocab * dtype_bytes
    elif loaded.generative:
        total += batch_size * vocab * 4 * 2  # last-position logits and scores, float32
    if shape["ffn"]:
        total += batch_size * seq * shape["ffn"] * dtype_bytes  # one FFN intermediate
    return int(total)
