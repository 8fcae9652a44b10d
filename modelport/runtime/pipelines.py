"""Tasks transformers has a pipeline for: the pipeline's own pre- and postprocessing, batched.

Text and token classification, fill-mask, zero-shot classification, token-level feature
extraction and image classification run `transformers.pipeline` on each batch, so their
outputs are the pipeline's by construction; this engine adds input checks (token limits with
`truncation`, the mask token, images from bytes) and the Inference API's response shapes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .engine import Engine
from .errors import InputError
from .media import decode_image
from .params import parameters_for


class PipelineEngine(Engine):
    tasks: ClassVar[frozenset[str]] = frozenset(
        {
            "text-classification",
            "token-classification",
            "fill-mask",
            "zero-shot-classification",
            "feature-extraction",
            "image-classification",
        }
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.Parameters = parameters_for(self.task)
        self.pipe: Any = None

    def load(self) -> None:
        from transformers import pipeline

        backend = self.backend
        task: Any = self.task  # a runtime value, not one of pipeline()'s literal overloads
        self.pipe = backend.load(
            lambda **kw: pipeline(
                task,
                model=self.path,
                device=backend.device,
                dtype=backend.dtype,
                model_kwargs=kw or None,
            )
        )
        self.model = backend.optimize(self.pipe.model)
        if self.task == "image-classification":
            self.processor = self.pipe.image_processor
        else:
            self.processor = self.pipe.tokenizer
            self.max_tokens = self.token_limit(self.processor, self.model.config)

    # ------------------------------------------------------------ inputs

    def check(self, item: Any, params: Any) -> Any:
        if self.task == "image-classification":
            return decode_image(item)
        text = self.check_text(item, "input", limit_tokens=self._checks_length(params))
        if self.task == "fill-mask":
            mask = self.processor.mask_token
            if mask not in text:
                raise InputError(f"each input must contain the mask token {mask}")
        return text

    def _checks_length(self, params: Any) -> bool:
        """Whether an over-long input is refused (the pipeline would silently cut it)."""
        if self.task == "token-classification" and params.stride is not None:
            return False  # windows of `stride` overlap cover any length
        truncating = getattr(params, "truncating", None)
        return not (truncating if truncating is not None else getattr(params, "truncation", False))

    def size(self, item: Any) -> int:
        return len(item) if isinstance(item, str) else 0

    # ------------------------------------------------------------ predict

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        kwargs = params.pipeline_kwargs()
        # Cut at the model's limit (tokenizers saved without model_max_length cut nowhere).
        cut = {"truncation": True, "max_length": self.max_tokens}
        if self.task == "text-classification":
            kwargs.setdefault("top_k", 1)  # a list per input, as the Inference API answers
            if params.truncation:
                kwargs.update(cut)
        elif self.task == "fill-mask" and params.truncation:
            kwargs["tokenizer_kwargs"] = cut
        elif self.task == "feature-extraction":
            kwargs = {"tokenize_kwargs": cut} if params.truncating else {}
        outputs = self.pipe(list(items), batch_size=len(items), **kwargs)
        if self.task == "fill-mask" and len(items) == 1:
            outputs = [outputs]  # the fill-mask pipeline unwraps one-item lists
        if self.task == "zero-shot-classification":
            outputs = [_label_scores(o) for o in outputs]
        return [_plain(o) for o in outputs]

    def shape(self, outputs: list[Any], single: bool, params: Any) -> Any:
        if self.task == "text-classification":
            return outputs  # [[{label, score}, ...]] even for one input (InferenceClient)
        return outputs[0] if single else outputs


def _label_scores(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The zero-shot pipeline's {sequence, labels, scores} as the Inference API's list."""
    return [
        {"label": label, "score": score}
        for label, score in zip(output["labels"], output["scores"], strict=True)
    ]


def _plain(value: Any) -> Any:
    """JSON types from numpy/torch scalars and arrays."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    return value
