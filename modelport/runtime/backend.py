"""The execution backend: where and how a loaded torch module runs.

The seam between an engine (what to compute) and how it executes: device, dtype, attention
kernel, grad mode, quantization and compilation. ONNX Runtime (onnx_backend.py) takes the
same place for the "onnxruntime" level.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import Optimization

log = logging.getLogger("run_inference")
LOAD_ERRORS = (ValueError, ImportError, TypeError, NotImplementedError)


@dataclass
class TorchBackend:
    settings: Optimization
    applied: dict[str, Any] = field(default_factory=dict)  # what actually took effect
    eager_forward: Any = None  # the forward before torch.compile (FLOP counting needs it)

    def __post_init__(self) -> None:
        import torch

        device, dtype = self.settings.device, self.settings.dtype
        if device == "cuda" and not torch.cuda.is_available():
            log.warning(
                "this bundle was generated for a GPU but CUDA is not available: using the CPU "
                "with float32 weights"
            )
            device, dtype = "cpu", "float32"
        self.applied.update(
            device=device, dtype=dtype, attention="default", quantization="none", compile=False,
            backend="torch",
        )  # fmt: skip

    @classmethod
    def reference(cls, device: str = "cpu") -> TorchBackend:
        """Plain float32, eager attention, no quantization: what optimized outputs are held to."""
        return cls(Optimization(device, "float32", "eager", False, "none", False))

    @property
    def device(self) -> str:
        return str(self.applied["device"])

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.applied["dtype"])

    def grad_context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.inference_mode() if self.settings.inference_mode else torch.no_grad()

    def load(self, load: Callable[..., Any]) -> Any:
        """load(**kwargs) asking for the level's attention kernel, else the model's default."""
        wanted = self.settings.attention
        try:
            result = load(attn_implementation=wanted)
            self.applied["attention"] = wanted
        except LOAD_ERRORS as exc:
            log.warning("attention %r not available (%s): using the model's default", wanted, exc)
            result = load()
        return result

    def from_pretrained(self, auto_class: Any, path: str) -> Any:
        """A transformers model of `auto_class` from `path`: loaded as `load` does, moved to the
        device and optimized."""
        model = self.load(lambda **kw: auto_class.from_pretrained(path, dtype=self.dtype, **kw))
        return self.optimize(model.to(self.device))

    def optimize(self, module: Any) -> Any:
        """Apply the level's dynamic int8 quantization (CPU) or torch.compile (GPU) in place."""
        import torch

        module.eval()
        if self.settings.quantization == "dynamic-int8" and self.device == "cpu":
            try:
                with warnings.catch_warnings():  # torch.ao.quantization announces its deprecation
                    warnings.simplefilter("ignore")
                    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

                    # per-channel weight scales: MiniLM's minimum cosine to float32 is 0.97
                    # against 0.89 with one scale per tensor
                    quantize_dynamic(
                        module,
                        {torch.nn.Linear: per_channel_dynamic_qconfig},
                        dtype=torch.qint8,
                        inplace=True,
                    )
                self.applied["quantization"] = "dynamic-int8"
            except Exception as exc:  # an exotic Linear subclass: serve unquantized, say so
                log.warning("dynamic int8 quantization failed (%s): running unquantized", exc)
        if self.settings.compile and self.device == "cuda":
            self.eager_forward = module.forward
            module.forward = torch.compile(module.forward, dynamic=True)
            self.applied["compile"] = True
        return module

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self.grad_context():
            yield

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.applied.items()))


def set_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def accelerator_memory() -> dict[str, float]:
    """Allocated and reserved CUDA memory in bytes, empty without an initialized GPU."""
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {
        "allocated": float(torch.cuda.memory_allocated()),
        "reserved": float(torch.cuda.memory_reserved()),
    }
