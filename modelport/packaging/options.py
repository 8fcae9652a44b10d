"""Generation options (SPEC's `options`) and the concrete settings each optimization level means."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelport.core.quantity import parse_memory

OptimizationLevel = Literal["none", "standard", "aggressive"]
OPTIMIZATION_LEVELS: dict[str, str] = {
    "none": "float32 weights, eager attention, plain no_grad: the reference behaviour.",
    "standard": "inference_mode and SDPA attention; float16 weights on GPU.",
    "aggressive": (
        "standard plus dynamic int8 quantization of Linear layers on CPU; "
        "bfloat16 weights and torch.compile on GPU."
    ),
}
DEFAULT_MAX_DELAY_MS = 5


@dataclass(frozen=True)
class OptimizationSettings:
    """What run_inference.py does for one optimization level on one device kind."""

    device: Literal["cpu", "cuda"]
    dtype: Literal["float32", "float16", "bfloat16"]
    attention: Literal["eager", "sdpa"]
    inference_mode: bool
    quantization: Literal["none", "dynamic-int8"]
    compile: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerateOptions(BaseModel):
    """SPEC's `options` for POST /api/generate, validated (camelCase on the wire)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    batch_size: int = Field(8, alias="batchSize", ge=1, le=1024, strict=True)
    memory: str | None = Field(None, description="Kubernetes quantity, e.g. 2Gi")
    gpu: bool = Field(False, strict=True)
    optimization_level: OptimizationLevel = Field("standard", alias="optimizationLevel")

    @field_validator("memory")
    @classmethod
    def _memory_is_quantity(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parse_memory(value)  # raises ValueError with the accepted form
        return value

    @field_validator("optimization_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory) if self.memory is not None else None

    @property
    def max_delay_ms(self) -> int:
        return DEFAULT_MAX_DELAY_MS

    def optimization(self) -> OptimizationSettings:
        return optimization_settings(self.optimization_level, gpu=self.gpu)

    def normalized(self) -> dict[str, Any]:
        """Options with equivalent spellings made equal ("1Gi" and "1024Mi" agree)."""
        return {
            "batchSize": self.batch_size,
            "memory": self.memory_bytes,
            "gpu": self.gpu,
            "optimizationLevel": self.optimization_level,
        }

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of the normalized options, for cache keys."""
        text = json.dumps(self.normalized(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def optimization_settings(level: str, *, gpu: bool) -> OptimizationSettings:
    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimizationLevel must be one of {sorted(OPTIMIZATION_LEVELS)}")
    device: Literal["cpu", "cuda"] = "cuda" if gpu else "cpu"
    if level == "none":
        return OptimizationSettings(device, "float32", "eager", False, "none", False)
    if level == "standard":
        return OptimizationSettings(
            device, "float16" if gpu else "float32", "sdpa", True, "none", False
        )
    if gpu:
        return OptimizationSettings(device, "bfloat16", "sdpa", True, "none", True)
    return OptimizationSettings(device, "float32", "sdpa", True, "dynamic-int8", False)
