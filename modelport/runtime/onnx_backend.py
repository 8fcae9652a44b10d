"""The ONNX Runtime backend (optimization level "onnxruntime", CPU).

The transformers model is loaded in float32 with eager attention (an SDPA export runs several
times slower in ONNX Runtime), exported once with `torch.onnx.export(dynamo=True)` with the
batch and sequence axes dynamic, and served by an `onnxruntime.InferenceSession` with the
process's torch thread count; torch then keeps one thread for what it still does (pooling).
The export is cached under MODELPORT_ONNX_CACHE (else ~/.cache/modelport/onnx, else a
temporary folder), keyed by the model folder, its weights' sizes and times, and the torch and
onnxruntime versions, so a restart loads it in a second.

`OrtModel` stands where the torch module stood: engines call it with the tokenizer's tensors
and read `.last_hidden_state` (or `.logits`) as torch tensors, so pooling, Dense layers,
normalisation and the quality gate are the same code as on the torch backend. Telemetry is off
before onnxruntime is imported (ORT_DISABLE_TELEMETRY, set by the runtime's entry point too).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import TorchBackend
from .config import ConfigError

log = logging.getLogger("run_inference")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SERVED_TASKS = frozenset({"feature-extraction", "sentence-similarity"})


class OrtOutput(dict):
    """A model output: `out.last_hidden_state`, `out["logits"]` and `out[0]` all work."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


@dataclass
class OrtModel:
    """An InferenceSession in the place of the torch module it was exported from."""

    session: Any
    config: Any  # the transformers config (limits, labels)
    input_names: list[str]
    output_names: list[str]
    nbytes: int  # the .onnx file's size: the weights it holds
    path: str

    def __call__(self, **inputs: Any) -> OrtOutput:
        return self.forward(**inputs)

    def forward(self, **inputs: Any) -> OrtOutput:
        import numpy as np
        import torch

        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None:
                raise ValueError(f"the ONNX model needs {name!r}")
            feed[name] = np.ascontiguousarray(value.detach().cpu().numpy().astype(np.int64))
        outputs = self.session.run(self.output_names, feed)
        return OrtOutput(
            (name, torch.from_numpy(value))
            for name, value in zip(self.output_names, outputs, strict=True)
        )

    def eval(self) -> OrtModel:
        return self

    def parameters(self) -> Any:
        return iter(())

    def state_dict(self, **_: Any) -> dict[str, Any]:
        return {}


class OnnxBackend(TorchBackend):
    """TorchBackend's contract with ONNX Runtime executing the transformer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.applied["device"] != "cpu":  # a GPU bundle cannot carry this level
            raise ConfigError("optimization backend 'onnxruntime' runs on CPU only")
        self.applied.update(backend="onnxruntime", attention="eager")

    def from_pretrained(self, auto_class: Any, path: str) -> Any:
        import torch

        model = auto_class.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        exported = export(model, path)
        quiet_torch()
        return exported

    def optimize(self, module: Any) -> Any:
        """Layers after the transformer (sentence-transformers Dense) stay in torch."""
        module.eval()
        return module


def quiet_torch() -> None:
    """One torch thread once ONNX Runtime has the cores: torch only pools and normalises
    here, and its OpenMP threads spinning after each op would compete with ONNX Runtime's
    (measured on 2 cores: MiniLM at batch 1 took 30 ms with both spinning, 18 ms this way)."""
    import torch

    torch.set_num_threads(1)


def unsupported_task(task: str) -> str | None:
    """Why this backend cannot serve a `task` model (None: it can)."""
    if task in SERVED_TASKS:
        return None
    return (
        f"optimization level 'onnxruntime' serves {', '.join(sorted(SERVED_TASKS))} models; "
        f"use a torch level (none, standard, bfloat16) for {task}"
    )


def check_task(task: str) -> None:
    why = unsupported_task(task)
    if why:
        raise ConfigError(why)


def export(model: Any, folder: str) -> OrtModel:
    """The cached ONNX export of `model` (loaded from `folder`), in an InferenceSession."""
    import torch

    names = [n for n in TEXT_INPUTS if n in inspect.signature(model.forward).parameters]
    sample = {n: torch.ones(2, 8, dtype=torch.long) for n in names}
    if "token_type_ids" in sample:
        sample["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long)
    with torch.inference_mode():
        outputs = [k for k, v in model(**sample).items() if isinstance(v, torch.Tensor)]
    target = cache_path(folder)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        log.info("exporting %s to ONNX (once; cached in %s)", folder, target.parent)
        # the exporter prints its stages and warns about axis names: keep stdout for answers
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (),
                str(partial),
                kwargs=sample,
                input_names=names,
                output_names=outputs,
                dynamic_shapes={n: {0: batch, 1: seq} for n in names},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        partial.replace(target)  # atomic: a concurrent process sees all of it or nothing
    return OrtModel(session(target), model.config, names, outputs, target.stat().st_size,
                    str(target))  # fmt: skip


def session(path: Path) -> Any:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cache_path(folder: str) -> Path:
    """Where the export of the model in `folder` lives: a key of what it was made from."""
    import onnxruntime
    import torch

    key = hashlib.sha256()
    for item in (os.path.realpath(folder), torch.__version__, onnxruntime.__version__):
        key.update(item.encode())
    for weights in sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin")):
        info = weights.stat()
        key.update(f"{weights.name}:{info.st_size}:{info.st_mtime_ns}".encode())
    return cache_root() / key.hexdigest()[:24] / "model.onnx"


def cache_root() -> Path:
    configured = os.environ.get("MODELPORT_ONNX_CACHE")
    if configured:
        return Path(configured)
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = home / "modelport" / "onnx"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "modelport-onnx"
