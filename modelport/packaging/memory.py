"""Memory estimate for a bundle: weights + activations for a batch + runtime headroom.

The estimate is deliberately simple and errs high: it sizes a container's memory request and
is checked against the requested memory and MAX_MEMORY, not used to pack GPUs tightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modelport.core.quantity import format_memory
from modelport.packaging.catalog import GENERATIVE_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.options import GenerateOptions

MiB = 2**20
# Resident size of python + torch + transformers (+ tokenizers, prometheus_client) before any
# weights, measured at ~450 MiB on CPU; CUDA builds map their kernels and libraries into host
# memory too.
RUNTIME_CPU_BYTES = 512 * MiB
RUNTIME_GPU_HOST_BYTES = 1536 * MiB
CUDA_CONTEXT_BYTES = 512 * MiB
# Live activation buffers per token, per hidden unit, per layer (hidden states, FFN
# intermediates, attention outputs); generation keeps a key and a value per layer on top.
ACTIVATION_FACTOR = 2
KV_CACHE_FACTOR = 2
RECOMMENDED_MARGIN = 1.2
ROUND_TO = 64 * MiB
ENCODER_SEQ_LEN = 512
GENERATION_SEQ_LEN = 1024
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass
class MemoryEstimate:
    parameters: int | None
    parameters_source: str  # "facts", "config" or "unknown"
    weights_bytes: int  # resident weights after load (int8 Linear layers when quantized)
    load_peak_bytes: int  # weights while loading (full precision before quantization)
    activation_bytes: int
    runtime_bytes: int
    total_bytes: int  # host memory the container needs at peak
    recommended_bytes: int  # total with a safety margin, rounded up to 64 MiB
    gpu_bytes: int | None = None  # device memory, for GPU bundles
    assumptions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.parameters is not None

    def to_dict(self) -> dict[str, Any]:
        """camelCase breakdown with human-readable totals, as module.yaml and the API show it."""
        data: dict[str, Any] = {
            "total": format_memory(self.total_bytes),
            "recommended": format_memory(self.recommended_bytes),
            "totalBytes": self.total_bytes,
            "recommendedBytes": self.recommended_bytes,
            "weightsBytes": self.weights_bytes,
            "loadPeakBytes": self.load_peak_bytes,
            "activationBytes": self.activation_bytes,
            "runtimeBytes": self.runtime_bytes,
            "parameters": self.parameters,
            "parametersSource": self.parameters_source,
            "assumptions": dict(self.assumptions),
        }
        if self.gpu_bytes is not None:
            data["gpu"] = format_memory(self.gpu_bytes)
            data["gpuBytes"] = self.gpu_bytes
        if self.notes:
            data["notes"] = list(self.notes)
        return data


def _first_int(config: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language-model part of composite configs (text_config), else the config itself."""
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) and inner else config


def model_shape(config: dict[str, Any], task: str) -> dict[str, int | None]:
    cfg = _text_config(config)
    hidden = _first_int(cfg, "hidden_size", "d_model", "n_embd", "dim", "embed_dim")
    layers = _first_int(cfg, "num_hidden_layers", "num_layers", "n_layer", "n_layers")
    decoder_layers = _first_int(cfg, "num_decoder_layers", "decoder_layers")
    heads = _first_int(cfg, "num_attention_heads", "num_heads", "n_head", "n_heads")
    vocab = _first_int(cfg, "vocab_size")
    ffn = _first_int(cfg, "intermediate_size", "d_ff", "n_inner", "ffn_dim", "hidden_dim")
    max_pos = _first_int(cfg, "max_position_embeddings", "n_positions", "max_seq_len")
    image = _first_int(config, "image_size")
    patch = _first_int(config, "patch_size")
    if image and patch:
        seq = (image // patch) ** 2 + 1
    elif task in GENERATIVE_TASKS:
        seq = min(max_pos or GENERATION_SEQ_LEN, GENERATION_SEQ_LEN)
    else:
        seq = min(max_pos or ENCODER_SEQ_LEN, ENCODER_SEQ_LEN)
    return {
        "hidden": hidden,
        "layers": (layers or 0) + (decoder_layers or 0) or None,
        "heads": heads,
        "vocab": vocab,
        "ffn": ffn or (4 * hidden if hidden else None),
        "seq": seq,
    }


def parameters_from_config(shape: dict[str, int | None]) -> int | None:
    """Transformer parameter count from its shape: embeddings + attention + FFN per layer."""
    hidden, layers, ffn = shape["hidden"], shape["layers"], shape["ffn"]
    if not hidden or not layers or not ffn:
        return None
    per_layer = 4 * hidden * hidden + 2 * hidden * ffn
    return layers * per_layer + (shape["vocab"] or 0) * hidden


def _round_up(nbytes: float, step: int = ROUND_TO) -> int:
    return int(math.ceil(nbytes / step) * step)


def estimate_memory(facts: ModelFacts, options: GenerateOptions) -> MemoryEstimate:
    settings = options.optimization()
    shape = model_shape(facts.config or {}, facts.task)
    notes: list[str] = []
    params, source = facts.parameters, "facts"
    if not params:
        params, source = parameters_from_config(shape), "config"
        if params:
            notes.append("parameter count derived from config.json (no safetensors metadata)")
    if not params:
        params, source = None, "unknown"
        notes.append("parameter count unknown: weights are not included in the estimate")

    dtype_bytes = DTYPE_BYTES[settings.dtype]
    n = params or 0
    load_peak = n * dtype_bytes
    weights = load_peak
    if settings.quantization == "dynamic-int8":
        embedding = min(n, (shape["vocab"] or 0) * (shape["hidden"] or 0))
        weights = embedding * 4 + (n - embedding) * 1
        notes.append("int8 Linear layers after load; loading still holds float32 weights")

    hidden = shape["hidden"] or 0
    layers = shape["layers"] or 0
    seq = shape["seq"] or ENCODER_SEQ_LEN
    factor = ACTIVATION_FACTOR + (KV_CACHE_FACTOR if facts.task in GENERATIVE_TASKS else 0)
    activations = options.batch_size * seq * hidden * layers * dtype_bytes * factor
    if settings.attention == "eager" and shape["heads"]:
        # eager attention materialises one layer's score matrix (scores + softmax)
        activations += options.batch_size * shape["heads"] * seq * seq * dtype_bytes * 2
    if not hidden or not layers:
        notes.append("model shape unknown: activations are not included in the estimate")

    gpu_bytes = None
    if settings.device == "cuda":
        runtime = RUNTIME_GPU_HOST_BYTES
        total = runtime + load_peak  # weights pass through host memory on their way to the GPU
        gpu_bytes = weights + activations + CUDA_CONTEXT_BYTES
    else:
        runtime = RUNTIME_CPU_BYTES
        total = runtime + max(load_peak, weights + activations)
    return MemoryEstimate(
        parameters=params,
        parameters_source=source,
        weights_bytes=weights,
        load_peak_bytes=load_peak,
        activation_bytes=activations,
        runtime_bytes=runtime,
        total_bytes=total,
        recommended_bytes=_round_up(total * RECOMMENDED_MARGIN),
        gpu_bytes=gpu_bytes,
        assumptions={
            "batchSize": options.batch_size,
            "sequenceLength": seq,
            "hiddenSize": hidden or None,
            "layers": layers or None,
            "dtype": settings.dtype,
            "quantization": settings.quantization,
            "device": settings.device,
        },
        notes=notes,
    )
