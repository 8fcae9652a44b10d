"""Loaded models kept between benchmark jobs in a worker, LRU-bounded by a byte budget.

A model is loaded by the bundle's own runtime (`modelport.runtime.engine.load_engine`) with
the configuration its module.yaml would carry for the same optimization level and device
(`packaging.bundle.runtime_config`), so a benchmark measures the model the bundle serves:
the same engine, loader, dtype, attention fallback, quantization and compilation. Keys are
(repo_id, revision, task, device, level). The budget is MODELPORT_MODEL_CACHE_BYTES, else
half of MAX_MEMORY; entries are sized by their weights.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from modelport.packaging.catalog import AUTO_CLASSES
from modelport.packaging.facts import ModelFacts
from modelport.packaging.options import OptimizationSettings, optimization_settings

log = logging.getLogger(__name__)

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

Key = tuple[str, str, str, str, str]


@dataclass
class LoadedModel:
    model: Any  # the engine's transformers model (a torch module)
    processor: Any  # tokenizer or image processor
    task: str
    kind: str  # "sentence-transformers", "encoder", "causal", "seq2seq" or "image"
    device: str
    settings: OptimizationSettings
    applied: dict[str, Any] = field(default_factory=dict)  # what was actually applied
    nbytes: int = 0
    eager_forward: Any = None  # the forward before torch.compile, for FLOP counting
    engine: Any = None  # the runtime engine (modelport.runtime.engine.Engine) that loaded it
    folder: str | None = None  # the model folder it was loaded from

    @property
    def generative(self) -> bool:
        return self.kind in ("causal", "seq2seq")

    @contextlib.contextmanager
    def eager(self) -> Iterator[None]:
        """Run the uncompiled forward inside (FlopCounterMode does not see through compile)."""
        if self.eager_forward is None:
            yield
            return
        compiled = self.model.forward
        self.model.forward = self.eager_forward
        try:
            yield
        finally:
            self.model.forward = compiled


class ModelCache:
    def __init__(self, budget_bytes: int, loader: Callable[..., LoadedModel] | None = None):
        self.budget_bytes = budget_bytes
        self.loader = loader or load_model
        self.loads = 0
        self.evictions = 0
        self._entries: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def cached_keys(self) -> list[Key]:
        """Keys from least to most recently used."""
        return list(self._entries)

    def get(self, facts: ModelFacts, device: str, level: str) -> LoadedModel:
        key = (facts.repo_id, facts.revision, facts.task, device, level)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            self._make_room(
                estimate_bytes(facts, optimization_settings(level, gpu=device == "cuda"))
            )
            loaded = self.loader(facts, device, level)
            self.loads += 1
            self._entries[key] = loaded
            self._make_room(0, keep=key)
            return loaded

    def _make_room(self, incoming: int, keep: Key | None = None) -> None:
        """Evict least recently used entries until `incoming` more bytes fit (never `keep`)."""
        while self._entries and self.total_bytes + incoming > self.budget_bytes:
            victim = next(iter(self._entries))
            if victim == keep:
                break
            self._entries.pop(victim)
            self.evictions += 1
            log.info("model cache: evicted %s", victim)
            _release_memory()

    def evict(self, repo_id: str) -> int:
        """Drop every loaded configuration of `repo_id`; how many were dropped."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == repo_id]
            for key in keys:
                del self._entries[key]
            if keys:
                self.evictions += len(keys)
                _release_memory()
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            _release_memory()


_DEFAULT: ModelCache | None = None


def default_cache() -> ModelCache:
    global _DEFAULT
    if _DEFAULT is None:
        budget = os.environ.get("MODELPORT_MODEL_CACHE_BYTES")
        if budget:
            size = int(budget)
        else:
            from modelport.core.settings import get_settings

            size = get_settings().max_memory_bytes // 2
        _DEFAULT = ModelCache(size)
    return _DEFAULT


def get_model(facts: ModelFacts, device: str, level: str) -> LoadedModel:
    """The loaded model from the worker's cache, loading (and evicting) when needed."""
    return default_cache().get(facts, device, level)


def estimate_bytes(facts: ModelFacts, settings: OptimizationSettings) -> int:
    """Resident weight bytes before loading: parameters x dtype (int8 Linear when quantized)."""
    from modelport.packaging.memory import model_shape, parameters_from_config

    params = facts.parameters or parameters_from_config(model_shape(facts.config or {}, facts.task))
    per = 1 if settings.quantization == "dynamic-int8" else DTYPE_BYTES[settings.dtype]
    return int((params or 0) * per)


KINDS = {"AutoModelForCausalLM": "causal", "AutoModelForSeq2SeqLM": "seq2seq"}


def load_model(facts: ModelFacts, device: str, level: str) -> LoadedModel:
    """The bundle runtime's engine for this model, wrapped for the benchmark's steps."""
    from modelport.packaging.bundle import runtime_config
    from modelport.packaging.options import GenerateOptions
    from modelport.runtime.engine import load_engine
    from modelport.runtime.weights import model_path

    options = GenerateOptions(gpu=device == "cuda", optimizationLevel=level)
    config = runtime_config(facts, options)
    if facts.local_path and os.path.isdir(facts.local_path):
        config = replace(config, model_path=facts.local_path)
    folder = model_path(config)
    engine = load_engine(config, folder)
    if config.sentence_transformers:
        kind = "sentence-transformers"
    elif facts.task == "image-classification":
        kind = "image"
    else:
        kind = KINDS.get(AUTO_CLASSES[facts.task], "encoder")
    backend = engine.backend
    loaded = LoadedModel(
        engine.model, engine.processor, facts.task, kind, backend.device,
        options.optimization(), backend.applied, engine=engine,
    )  # fmt: skip
    loaded.eager_forward = backend.eager_forward
    loaded.folder = folder
    loaded.nbytes = module_bytes(engine.model)
    return loaded


def module_bytes(model: Any) -> int:
    """Bytes of every tensor in the state dict (packed int8 weights included; tied weights once);
    an ONNX Runtime model's own count (its file's size)."""
    import torch

    if isinstance(getattr(model, "nbytes", None), int):
        return int(model.nbytes)

    tensors: list[torch.Tensor] = []
    for value in model.state_dict(keep_vars=False).values():
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif isinstance(value, tuple):  # packed quantized params: (weight, bias)
            tensors.extend(v for v in value if isinstance(v, torch.Tensor))
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in tensors:
        key = (tensor.data_ptr(), tensor.numel())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except ImportError:
        pass
