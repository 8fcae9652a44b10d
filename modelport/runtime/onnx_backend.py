"""Exported backends: the transformer as an ONNX graph, run by ONNX Runtime (optimization level
"onnxruntime") or OpenVINO ("openvino", openvino_backend.py), on CPU.

The transformers model is loaded in float32 with eager attention (an SDPA export runs several
times slower in ONNX Runtime), exported once with `torch.onnx.export(dynamo=True)` with the
batch and sequence axes dynamic, and run with the process's torch thread count; torch then
keeps one thread for what it still does (pooling). The export is cached under
MODELPORT_ONNX_CACHE (else ~/.cache/modelport/onnx, else a temporary folder), keyed by the
model folder, its weights' sizes and times, and the torch and onnxscript versions that made
it, so a restart loads it in a second, and both backends share one export.

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
from typing import Any, ClassVar, Protocol

from .backend import TorchBackend
from .config import ConfigError

log = logging.getLogger("run_inference")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SERVED_TASKS = frozenset({"feature-extraction", "sentence-similarity"})


class Session(Protocol):
    """What runs the exported graph: onnxruntime.InferenceSession's `run` signature."""

    def run(self, output_names: list[str], feed: dict[str, Any]) -> list[Any]: ...


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
    """A session running the export, in the place of the torch module it was exported from."""

    session: Any  # a Session: an onnxruntime.InferenceSession, or openvino_backend's
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


class ExportedBackend(TorchBackend):
    """TorchBackend's contract with an ONNX runtime executing the exported transformer."""

    name: ClassVar[str]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.applied["device"] != "cpu":  # a GPU bundle cannot carry this level
            raise ConfigError(f"optimization backend {self.name!r} runs on CPU only")
        self.applied.update(backend=self.name, attention="eager")

    def from_pretrained(self, auto_class: Any, path: str) -> Any:
        import torch

        model = auto_class.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        target, names, outputs = export(model, path)
        exported = OrtModel(self.open(target), model.config, names, outputs,
                            target.stat().st_size, str(target))  # fmt: skip
        quiet_torch()
        return exported

    def open(self, path: Path) -> Session:
        """A session running the graph at `path` with the process's torch thread count."""
        raise NotImplementedError

    def optimize(self, module: Any) -> Any:
        """Layers after the transformer (sentence-transformers Dense) stay in torch."""
        module.eval()
        return module


class OnnxBackend(ExportedBackend):
    name = "onnxruntime"

    def open(self, path: Path) -> Session:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session: Session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        return session


def quiet_torch() -> None:
    """One torch thread once ONNX Runtime has the cores: torch only pools and normalises
    here, and its OpenMP threads spinning after each op would compete with ONNX Runtime's
    (measured on 2 cores: MiniLM at batch 1 took 30 ms with both spinning, 18 ms this way)."""
    import torch

    torch.set_num_threads(1)


def unsupported_task(task: str, level: str = "onnxruntime") -> str | None:
    """Why an exported backend's `level` cannot serve a `task` model (None: it can)."""
    if task in SERVED_TASKS:
        return None
    return (
        f"optimization level {level!r} serves {', '.join(sorted(SERVED_TASKS))} models; "
        f"use a torch level (none, standard, bfloat16) for {task}"
    )


def check_task(task: str, level: str) -> None:
    why = unsupported_task(task, level)
    if why:
        raise ConfigError(why)


def export(model: Any, folder: str) -> tuple[Path, list[str], list[str]]:
    """The cached ONNX export of `model` (loaded from `folder`): its path, inputs and outputs."""
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
    return target, names, outputs


def cache_path(folder: str) -> Path:
    """Where the export of the model in `folder` lives: a key of what it was made from (the
    weights and the exporter; any runtime reads the same graph)."""
    from importlib.metadata import version

    import torch

    key = hashlib.sha256()
    for item in (os.path.realpath(folder), torch.__version__, version("onnxscript")):
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
