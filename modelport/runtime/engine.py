"""The engine contract, its factory and the self-check (quality.py's gate).

An engine serves one task family: it loads the model through a backend, checks one input
(cheap, on the event loop), and predicts a batch (preprocess, batched forward, postprocess,
on the model thread). Its outputs are shaped as the transformers pipeline gives them for one
input; `shape` wraps them for a request as the Hugging Face Inference API answers.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from .backend import TorchBackend
from .config import RuntimeConfig
from .errors import InputError
from .params import NoParameters

if TYPE_CHECKING:
    from .quality import QualityCheck

log = logging.getLogger("run_inference")
MODEL_LIMIT_SENTINEL = 100_000  # tokenizers without a limit report ~1e30 as model_max_length


class Engine:
    """Base class: text inputs, no parameters. Subclasses override what differs."""

    tasks: ClassVar[frozenset[str]] = frozenset()
    Parameters: type[BaseModel] = NoParameters

    def __init__(self, config: RuntimeConfig, backend: TorchBackend, path: str) -> None:
        self.config, self.backend, self.path = config, backend, path
        self.task = config.task
        self.model: Any = None  # the torch module that runs (the benchmark times it)
        self.processor: Any = None  # tokenizer or image processor
        self.max_tokens: int | None = None

    # ------------------------------------------------------------ what subclasses implement

    def load(self) -> None:
        raise NotImplementedError

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        """One output per item, shaped as the transformers pipeline gives it for one input."""
        raise NotImplementedError

    def check(self, item: Any, params: Any) -> Any:
        """The item as predict takes it, or InputError naming what is wrong."""
        return self.check_text(item, "input")

    def size(self, item: Any) -> int:
        """A length to group inputs of similar size into one batch."""
        return len(item) if isinstance(item, str) else 0

    def shape(self, outputs: list[Any], single: bool, params: Any) -> Any:
        """The response body for a request's outputs (as the HF Inference API answers)."""
        return outputs[0] if single else outputs

    # ------------------------------------------------------------ shared helpers

    def check_text(self, value: Any, what: str, *, limit_tokens: bool = False) -> str:
        """A non-empty string within the character limit and, when `limit_tokens`, within the
        model's token limit (413 naming it; `truncation` lifts that check)."""
        if not isinstance(value, str):
            raise InputError(f"{what} must be a string, not {_kind(value)}")
        if not value.strip():
            raise InputError(f"{what} must not be empty")
        limit = self.config.limits.max_text_chars
        if len(value) > limit:
            raise InputError(f"{what} is {len(value)} characters; the limit is {limit}", 413)
        if limit_tokens and self.max_tokens and self.processor is not None:
            # No tokenizer makes more than two tokens per UTF-8 byte (a byte, or a word-start
            # marker and a byte) plus its special tokens: short inputs need no counting.
            if 2 * len(value.encode("utf-8", "surrogatepass")) + 8 <= self.max_tokens:
                return value
            count = len(self.processor(value, add_special_tokens=True)["input_ids"])
            if count > self.max_tokens:
                raise InputError(
                    f"{what} is {count} tokens long; this model takes at most {self.max_tokens}. "
                    'Shorten it, or set "truncation": true in "parameters" to cut it',
                    413,
                )
        return value

    def token_limit(self, tokenizer: Any, config: Any = None) -> int | None:
        """The longest input the model takes: tokenizer limit and position embeddings."""
        limits = []
        tokenizer_limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < MODEL_LIMIT_SENTINEL:
            limits.append(tokenizer_limit)
        for name in ("max_position_embeddings", "n_positions", "max_seq_len"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                # RoBERTa-family models reserve padding_idx + 1 positions.
                offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta") else 0
                limits.append(value - offset)
                break
        return min(limits) if limits else None

    def parse_params(self, raw: Any) -> BaseModel:
        from pydantic import ValidationError

        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError(f'"parameters" must be a JSON object, not {_kind(raw)}')
        try:
            return self.Parameters.model_validate(raw)
        except ValidationError as exc:
            raise InputError(describe_validation(exc, self.Parameters, self.task)) from None


def describe_validation(exc: Any, model: type[BaseModel], task: str) -> str:
    """One readable sentence per problem pydantic found in "parameters"."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "parameters"
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields)) or "none"
            problems.append(f"unknown parameter {where!r} for {task} (allowed: {allowed})")
        else:
            problems.append(f"parameter {where!r}: {error['msg']}")
    return "; ".join(problems)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def engine_class(config: RuntimeConfig) -> type[Engine]:
    from .embeddings import EmbeddingEngine
    from .generation import CausalEngine
    from .pipelines import PipelineEngine
    from .qa import QuestionAnsweringEngine
    from .seq2seq import Seq2SeqEngine

    if config.sentence_transformers or config.task == "sentence-similarity":
        return EmbeddingEngine
    for cls in (PipelineEngine, QuestionAnsweringEngine, CausalEngine, Seq2SeqEngine):
        if config.task in cls.tasks:
            return cls
    raise InputError(f"task {config.task!r} is not served by this runtime")


def load_engine(config: RuntimeConfig, path: str, backend: TorchBackend | None = None) -> Engine:
    """The engine for `config`, loaded from the model folder `path`."""
    started = time.perf_counter()
    backend = backend or make_backend(config)
    engine = engine_class(config)(config, backend, path)
    engine.load()
    log.info(
        "loaded %s@%s for %s in %.1fs (%s)",
        config.model_id,
        config.revision[:12],
        config.task,
        time.perf_counter() - started,
        backend.describe(),
    )
    return engine


def make_backend(config: RuntimeConfig) -> TorchBackend:
    """The optimization's backend: torch, or ONNX Runtime or OpenVINO for the tasks they serve."""
    backend = config.optimization.backend
    if backend in ("onnxruntime", "openvino"):
        from .onnx_backend import OnnxBackend, check_task

        check_task(config.task, backend)
        if backend == "openvino":
            from .openvino_backend import OpenVinoBackend

            return OpenVinoBackend(config.optimization)
        return OnnxBackend(config.optimization)
    return TorchBackend(config.optimization)


def self_check(engine: Engine) -> QualityCheck:
    """The quality gate (quality.py): `engine` against a float32 reference load of its model."""
    from .quality import compare

    reference = load_engine(
        engine.config, engine.path, TorchBackend.reference(engine.backend.device)
    )
    return compare(engine, reference)
