"""Generation options (SPEC's `options`) and the concrete settings each optimization level means."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from modelport.core import schemas

OPTIMIZATION_LEVELS: dict[str, str] = {
    "none": "float32 weights, eager attention, plain no_grad: the reference behaviour.",
    "standard": "inference_mode and SDPA attention; float16 weights on GPU.",
    "aggressive": (
        "standard plus dynamic int8 quantization of Linear layers (per-channel weights) on "
        "CPU; bfloat16 weights and torch.compile on GPU."
    ),
    "onnxruntime": (
        "the model exported to ONNX (torch.onnx, float32, eager attention) and run by ONNX "
        "Runtime on CPU; sentence embedding and feature-extraction models."
    ),
    "openvino": (
        "the same ONNX export run by OpenVINO's CPU plugin with float32 precision (the hint "
        "set: it would pick bfloat16 by itself where the CPU has it); sentence embedding and "
        "feature-extraction models."
    ),
    "bfloat16": (
        "standard with bfloat16 weights on CPU and GPU: about 2x float32 on CPUs with AMX or "
        "AVX-512 bf16 instructions, slower where they are emulated (a search measures which)."
    ),
}
EXPORTED_BACKENDS = ("onnxruntime", "openvino")  # levels named after their backend: ONNX export
DEFAULT_MAX_DELAY_MS = schemas.DEFAULT_BATCH_DELAY_MS


@dataclass(frozen=True)
class OptimizationSettings:
    """What run_inference.py does for one optimization level on one device kind."""

    device: Literal["cpu", "cuda"]
    dtype: Literal["float32", "float16", "bfloat16"]
    attention: Literal["eager", "sdpa"]
    inference_mode: bool
    quantization: Literal["none", "dynamic-int8"]
    compile: bool
    backend: Literal["torch", "onnxruntime", "openvino"] = "torch"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerateOptions(schemas.GenerateOptions):
    """The validated options (core.schemas) plus what they mean for run_inference.py."""

    @property
    def max_delay_ms(self) -> int:
        return DEFAULT_MAX_DELAY_MS if self.max_batch_delay_ms is None else self.max_batch_delay_ms

    def optimization(self) -> OptimizationSettings:
        return optimization_settings(self.optimization_level, gpu=self.gpu)


def optimization_settings(level: str, *, gpu: bool) -> OptimizationSettings:
    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimizationLevel must be one of {sorted(OPTIMIZATION_LEVELS)}")
    device: Literal["cpu", "cuda"] = "cuda" if gpu else "cpu"
    if level == "none":
        return OptimizationSettings(device, "float32", "eager", False, "none", False)
    if level in EXPORTED_BACKENDS:
        if gpu:
            raise ValueError(f"optimizationLevel {level!r} runs on CPU: use gpu false")
        return OptimizationSettings(device, "float32", "eager", True, "none", False, level)
    if level == "bfloat16":
        return OptimizationSettings(device, "bfloat16", "sdpa", True, "none", False)
    if level == "standard":
        return OptimizationSettings(
            device, "float16" if gpu else "float32", "sdpa", True, "none", False
        )
    if gpu:
        return OptimizationSettings(device, "bfloat16", "sdpa", True, "none", True)
    return OptimizationSettings(device, "float32", "sdpa", True, "dynamic-int8", False)


def unsupported(level: str, task: str) -> str | None:
    """Why `level` cannot serve a `task` model (None: it can)."""
    if optimization_settings(level, gpu=False).backend in EXPORTED_BACKENDS:
        from modelport.runtime.onnx_backend import unsupported_task

        return unsupported_task(task, level)
    return None
