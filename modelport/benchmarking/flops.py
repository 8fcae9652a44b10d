"""The machine's peak FLOP/s, against which a benchmark's achieved FLOP/s is set (worker-only).

Known GPUs use their datasheet's dense (no sparsity) tensor-core figure for the dtype; float32
uses the TF32 figure only when torch lets matmuls use TF32. Other devices, the CPU included,
are probed: the best of a few square matmuls in the dtype (on CPU at several sizes), measured
once per process and cached by (device, dtype, threads). Models with dynamic int8 Linear layers
are set against a probe of that kernel ("int8-dynamic").
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

TFLOPS = 1e12
# Dense TFLOP/s by dtype ("tf32": float32 through tensor cores; "float32": plain FP32 units).
LISTED_GPUS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989.4, "float16": 989.4, "tf32": 494.7, "float32": 66.9},
    "H100 PCIE": {"bfloat16": 756.0, "float16": 756.0, "tf32": 378.0, "float32": 51.2},
    "H100 NVL": {"bfloat16": 835.0, "float16": 835.0, "tf32": 417.5, "float32": 60.0},
    "H100": {"bfloat16": 989.4, "float16": 989.4, "tf32": 494.7, "float32": 66.9},  # SXM
    "A100": {"bfloat16": 312.0, "float16": 312.0, "tf32": 156.0, "float32": 19.5},
    "A10G": {"bfloat16": 70.0, "float16": 70.0, "tf32": 35.0, "float32": 31.2},  # approximate
    "L4": {"bfloat16": 121.0, "float16": 121.0, "tf32": 60.0, "float32": 30.3},
    "T4": {"float16": 65.0, "float32": 8.1},
}
_CACHE: dict[tuple[str, str, int], PeakFlops] = {}
_REGISTERED = False


@dataclass(frozen=True)
class PeakFlops:
    flops_per_s: float
    source: str  # "listed: H100 bfloat16" or "probe: 1024x1024 float32 matmul"


def listed_peak(device_name: str, dtype: str, tf32: bool = False) -> PeakFlops | None:
    upper = device_name.upper()
    for name, figures in LISTED_GPUS.items():
        if re.search(rf"(?<![A-Z0-9]){re.escape(name)}(?![0-9])", upper):
            key = "tf32" if dtype == "float32" and tf32 and "tf32" in figures else dtype
            if key in figures:
                return PeakFlops(figures[key] * TFLOPS, f"listed: {name} {key}")
            return None
    return None


def peak_flops(device: str, dtype: str = "float32") -> PeakFlops:
    """Peak FLOP/s of `device` ("cpu"/"cuda") in `dtype`, listed or probed once per process."""
    import torch

    key = (device, dtype, torch.get_num_threads())
    if key not in _CACHE:
        found = None
        if device == "cuda":
            tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
            found = listed_peak(torch.cuda.get_device_name(), dtype, tf32)
        _CACHE[key] = found or best_probe(device, dtype)
    return _CACHE[key]


CPU_PROBE_SIZES = (512, 1024, 2048)
PROBE_MAX_S = 0.5


def best_probe(device: str, dtype: str = "float32") -> PeakFlops:
    """The best of probes at a few sizes: on CPU the fastest size depends on the caches and
    the BLAS blocking (here 512 beat 1024 by 13%), and a probe that misses the peak would
    set model FLOP/s above 100% of it."""
    if device != "cpu":
        return probe(device, dtype)
    found: list[PeakFlops] = []
    for size in CPU_PROBE_SIZES:
        found.append(probe(device, dtype, size))
        # the next size does 8x the work: stop before one matmul takes over PROBE_MAX_S
        # (emulated bfloat16 runs at ~1 GFLOP/s on CPUs without bf16 instructions)
        if 8 * 2 * size**3 / _rate(found[-1]) > PROBE_MAX_S:
            break
    return max(found, key=_rate)


def _rate(peak: PeakFlops) -> float:
    return peak.flops_per_s


def probe(device: str, dtype: str = "float32", size: int | None = None, repeats: int = 5):
    """Best FLOP/s of `repeats` square matmuls (after one untimed run) on `device`.

    dtype "int8-dynamic" (CPU) probes a dynamically quantized Linear layer, the kernel the
    "aggressive" level runs, so int8 models are not set against the float32 peak.
    """
    import torch

    size = size or (1024 if device == "cpu" else 8192)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    if dtype == "int8-dynamic":
        op = _int8_linear(a, size)
    else:
        # in the dtype the model runs: bfloat16 matmuls run natively on CPUs with AMX or
        # AVX-512 bf16 (about 2x float32) and are emulated, slower, elsewhere: either way
        # the probe sees what the model's matmuls get
        torch_dtype = getattr(torch, dtype)
        a = a.to(device, torch_dtype)
        b = torch.randn(size, size, generator=gen).to(device, torch_dtype)
        op = lambda: torch.mm(a, b)  # noqa: E731
    best = float("inf")
    with torch.inference_mode():
        op()
        for _ in range(repeats):
            if device == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                op()
                end.record()
                end.synchronize()
                seconds = start.elapsed_time(end) / 1000
            else:
                began = time.perf_counter_ns()
                op()
                seconds = (time.perf_counter_ns() - began) / 1e9
            best = min(best, seconds)
    flops = 2 * size**3
    return PeakFlops(flops / best, f"probe: {size}x{size} {dtype} matmul, best of {repeats}")


def _int8_linear(x, size: int):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        layer = torch.nn.Sequential(torch.nn.Linear(size, size, bias=False))
        layer = quantize_dynamic(
            layer, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    return lambda: layer(x)


def clear_cache() -> None:
    _CACHE.clear()


def register_formulas() -> None:
    """Teach torch's FlopCounterMode the ops it leaves at zero that our models run: SDPA as it
    reaches the counter on CPU, and dynamic int8 Linear layers (2 x inputs x outputs)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import torch
    from torch.utils import flop_counter

    ops = torch.ops.aten
    sdpa = [ops.scaled_dot_product_attention, ops._scaled_dot_product_flash_attention_for_cpu]
    sdpa = [op for op in sdpa if op not in flop_counter.flop_registry]
    if sdpa:

        @flop_counter.register_flop_formula(sdpa)
        def _sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            # QK^T and AV over the query's heads (grouped-query attention shares K and V)
            *heads, s_q, d_q = query_shape
            s_k, d_v = key_shape[-2], value_shape[-1]
            return 2 * math.prod(heads) * s_q * s_k * (d_q + d_v)

    linear = getattr(torch.ops.quantized, "linear_dynamic", None)
    if linear is not None and linear not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(linear)
        def _linear_dynamic(input_shape, *args, out_shape=None, **kwargs) -> int:
            return 2 * math.prod(input_shape) * out_shape[-1]

    _REGISTERED = True
