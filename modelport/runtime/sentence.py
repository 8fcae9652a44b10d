"""sentence-transformers models without the sentence-transformers package.

A sentence-transformers repo describes its pipeline in modules.json: a Transformer, a Pooling
(1_Pooling/config.json), optional Dense projections and a Normalize. This module reads those
files and runs the same steps on transformers' AutoModel, as TEI does, so a bundle needs
neither sentence-transformers nor what it pulls in (scipy, scikit-learn: about 280 MB of image).
Prompts (config_sentence_transformers.json), `include_prompt`, `do_lower_case`, the similarity
function and max_seq_length follow sentence-transformers' rules.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError

POOLING_MODES = (  # sentence-transformers concatenates the enabled modes in this order
    "cls_token",
    "max_tokens",
    "mean_tokens",
    "mean_sqrt_len_tokens",
    "weightedmean_tokens",
    "lasttoken",
)
ACTIVATIONS = frozenset({"Tanh", "Identity", "ReLU", "GELU", "Sigmoid"})  # torch.nn classes
SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")


def _read(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {}


@dataclass
class SentenceConfig:
    transformer_path: str
    pooling: list[str]
    max_seq_length: int | None = None
    do_lower_case: bool = False
    include_prompt: bool = True
    dense: list[str] = field(default_factory=list)  # folders of Dense modules, in order
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity: str = "cosine"

    @classmethod
    def read(cls, path: str) -> SentenceConfig:
        """The pipeline of the sentence-transformers model in folder `path`."""
        with open(os.path.join(path, "modules.json"), encoding="utf-8") as handle:
            modules = json.load(handle)
        transformer, pooling, dense, normalize = None, None, [], False
        for module in sorted(modules, key=lambda m: m.get("idx", 0)):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            folder = os.path.join(path, module.get("path", ""))
            if kind == "Transformer" and transformer is None and pooling is None:
                transformer = folder
            elif kind == "Pooling" and transformer is not None and pooling is None:
                pooling = _read(os.path.join(folder, "config.json"))
            elif kind == "Dense" and pooling is not None:
                dense.append(folder)
            elif kind == "Normalize" and pooling is not None:
                normalize = True
            else:
                raise ConfigError(
                    f"modules.json: {module.get('type')!r} at this place is not supported "
                    "(the runtime serves Transformer, Pooling, Dense and Normalize pipelines)"
                )
        if transformer is None or pooling is None:
            raise ConfigError("modules.json must list a Transformer, then a Pooling module")
        modes = [m for m in POOLING_MODES if pooling.get(f"pooling_mode_{m}")]
        if not modes:
            raise ConfigError("1_Pooling/config.json enables no pooling mode")
        bert = _read(os.path.join(transformer, "sentence_bert_config.json")) or _read(
            os.path.join(path, "sentence_bert_config.json")
        )
        st = _read(os.path.join(path, "config_sentence_transformers.json"))
        similarity = st.get("similarity_fn_name") or "cosine"
        if similarity not in SIMILARITIES:
            raise ConfigError(f"similarity function {similarity!r} is not supported")
        return cls(
            transformer_path=transformer,
            pooling=modes,
            max_seq_length=bert.get("max_seq_length"),
            do_lower_case=bool(bert.get("do_lower_case", False)),
            include_prompt=bool(pooling.get("include_prompt", True)),
            dense=dense,
            normalize=normalize,
            prompts={str(k): str(v) for k, v in (st.get("prompts") or {}).items()},
            default_prompt_name=st.get("default_prompt_name"),
            similarity=similarity,
        )


def load_dense(folder: str, dtype: Any, device: str) -> Any:
    """A Dense module: torch Linear plus its activation, from config.json and its weights."""
    import torch

    config = _read(os.path.join(folder, "config.json"))
    activation = str(config.get("activation_function", "Identity")).rsplit(".", 1)[-1]
    if activation not in ACTIVATIONS:
        raise ConfigError(f"Dense activation {activation!r} is not supported")
    linear = torch.nn.Linear(
        int(config["in_features"]), int(config["out_features"]), bias=config.get("bias", True)
    )
    weights = os.path.join(folder, "model.safetensors")
    if os.path.isfile(weights):
        from safetensors.torch import load_file

        state = load_file(weights)
    else:
        state = torch.load(
            os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True
        )
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    act = getattr(torch.nn, activation)()
    return torch.nn.Sequential(linear, act).to(device=device, dtype=dtype)


def pool(hidden: Any, mask: Any, modes: list[str]) -> Any:
    """sentence-transformers' Pooling over token vectors `hidden` where `mask` is 1."""
    import torch

    weight = mask.unsqueeze(-1).to(hidden.dtype)
    counts = weight.sum(1).clamp(min=1e-9)
    parts = []
    for mode in modes:
        if mode == "cls_token":
            parts.append(hidden[:, 0])
        elif mode == "max_tokens":
            parts.append(hidden.masked_fill(weight == 0, -1e9).max(1).values)
        elif mode == "mean_tokens":
            parts.append((hidden * weight).sum(1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            parts.append((hidden * weight).sum(1) / counts.sqrt())
        elif mode == "weightedmean_tokens":
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device)
            weights = weight * positions.view(1, -1, 1).to(hidden.dtype)
            parts.append((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9))
        else:  # lasttoken: the last position the mask keeps, whichever side pads
            last = mask.shape[1] - 1 - mask.flip(1).long().argmax(1)
            parts.append(hidden[torch.arange(hidden.shape[0]), last])
    return torch.cat(parts, dim=1)


def similarity(name: str, source: Any, others: Any) -> Any:
    """Scores of `others` (n x d) against `source` (d), as sentence-transformers computes them."""
    import torch

    if name == "cosine":
        unit = torch.nn.functional.normalize
        return unit(others, dim=-1) @ unit(source, dim=-1)
    if name == "dot":
        return others @ source
    norm = 2 if name == "euclidean" else 1
    return -torch.linalg.vector_norm(others - source, ord=norm, dim=-1)
