"""The quality gate: does an optimized configuration still compute what float32 computes?

An engine's outputs on a fixed input set are compared with those of a float32 reference load
of the same model (plain float32, eager attention, no quantization, same device):

- embeddings (pooled sentence vectors, or every real token's vector for plain encoders):
  minimum cosine similarity, at least MIN_COSINE;
- classification-like heads (sequence, token, question answering, fill-mask, zero-shot, image):
  top-1 agreement over every scored position (each real token, the masked token, a QA span's
  start and end), at least MIN_TOP1, and the largest difference of any softmax probability,
  at most MAX_PROBABILITY_DIFF;
- generation: greedy tokens over GREEDY_TOKENS steps, identical for every input.

`run_inference.py --self-check` runs it in a bundle (exit 1 on failure); the platform's
benchmark runs it before timing a configuration, and recommends nothing that fails. The
texts are fixed sentences of different lengths (padding included), the images seeded noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIN_COSINE = 0.999
MIN_TOP1 = 1.0
MAX_PROBABILITY_DIFF = 0.02
GREEDY_TOKENS = 16
MAX_LENGTH = 128
QUESTION = "What does the fox jump over?"
HYPOTHESIS = "This example is about animals."
TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on a small stage in front of a quiet audience.",
    "Stocks fell sharply on Monday after the central bank raised interest rates again.",
    "I loved this film: the acting was superb and the story kept me guessing until the end.",
    "The service was slow and the food arrived cold, so we will not be coming back.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules, "
    "releasing oxygen as a by-product; it takes place mainly in the chloroplasts of leaves.",
    "Paris is the capital of France.",
    "Machine learning models need careful evaluation on data they have not seen during "
    "training, otherwise their reported accuracy says little about how they will behave in "
    "production, where inputs drift and rare cases appear more often than expected.",
)
IMAGES = 4


@dataclass
class QualityCheck:
    metric: str  # "min_cosine", "top1_agreement" or "greedy_tokens_identical"
    value: float
    threshold: float
    passed: bool
    inputs: int
    reference: str = "float32 (optimization level none) on the same device"
    extra: dict[str, float] = field(default_factory=dict)  # e.g. maxProbabilityDiff

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "inputs": self.inputs,
            "reference": self.reference,
            **self.extra,
        }


def compare(candidate: Any, reference: Any, max_length: int = MAX_LENGTH) -> QualityCheck:
    """Compare two loaded engines of the same model (the candidate and the float32 one)."""
    import torch

    from .embeddings import EmbeddingEngine
    from .generation import CausalEngine
    from .seq2seq import Seq2SeqEngine

    with torch.inference_mode():
        if isinstance(candidate, CausalEngine | Seq2SeqEngine):
            return _greedy(candidate, reference, max_length)
        task = candidate.config.task
        if task == "image-classification":
            batch_c, batch_r = _images(candidate), _images(reference)
        else:
            batch_c, batch_r = _texts(candidate, max_length), _texts(reference, max_length)
        if isinstance(candidate, EmbeddingEngine):
            return _cosine(candidate.embed(batch_c), reference.embed(batch_r))
        out_c = candidate.model(**_model_inputs(candidate, batch_c))
        out_r = reference.model(**_model_inputs(reference, batch_r))
        if task == "feature-extraction":  # token vectors: every real token's
            mask = batch_c["attention_mask"].bool()
            return _cosine(out_c.last_hidden_state[mask], out_r.last_hidden_state[mask])
        return _agreement(_heads(out_c), _heads(out_r), _position_mask(candidate, batch_c))


def _model_inputs(engine: Any, batch: dict[str, Any]) -> dict[str, Any]:
    names = set(getattr(engine.processor, "model_input_names", None) or batch)
    return {k: v for k, v in batch.items() if k in names}


def _texts(engine: Any, max_length: int) -> dict[str, Any]:
    tokenizer, task = engine.processor, engine.config.task
    options: dict[str, Any] = {
        "padding": True,
        "truncation": True,
        "max_length": max_length,
        "return_tensors": "pt",
    }
    texts = list(TEXTS)
    if task == "fill-mask":
        texts = [_masked(text, tokenizer.mask_token) for text in texts]
    if task == "question-answering":
        encoded = tokenizer([QUESTION] * len(texts), texts, **options)
    elif task == "zero-shot-classification":
        encoded = tokenizer(texts, [HYPOTHESIS] * len(texts), **options)
    else:
        encoded = tokenizer(texts, **options)
    return {k: v.to(engine.backend.device) for k, v in encoded.items()}


def _masked(text: str, mask: str) -> str:
    words = text.split()
    words[len(words) // 2] = mask
    return " ".join(words)


def _images(engine: Any) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(IMAGES)]
    pixels = engine.processor(images=images, return_tensors="pt")["pixel_values"]
    return {"pixel_values": pixels.to(engine.backend.device, engine.backend.dtype)}


def _heads(output: Any) -> list[Any]:
    """The scored outputs: logits, or a QA model's start and end logits."""
    if getattr(output, "logits", None) is not None:
        return [output.logits]
    return [output.start_logits, output.end_logits]


def _position_mask(engine: Any, batch: dict[str, Any]) -> Any:
    """Which positions are scored: the masked token (fill-mask), real tokens (token-level
    heads), or every row (one prediction per input)."""
    task = engine.config.task
    if task == "fill-mask":
        return batch["input_ids"] == engine.processor.mask_token_id
    if task in ("token-classification", "question-answering"):
        return batch["attention_mask"].bool()
    return None


def _agreement(heads_c: list[Any], heads_r: list[Any], mask: Any) -> QualityCheck:
    import torch

    agree, total, diff = 0, 0, 0.0
    for c, r in zip(heads_c, heads_r, strict=True):
        c, r = c.float(), r.float()
        if mask is not None and c.shape == mask.shape:  # QA: a choice among the real tokens
            c = c.masked_fill(~mask, float("-inf"))
            r = r.masked_fill(~mask, float("-inf"))
        elif mask is not None and c.shape[:2] == mask.shape:
            c, r = c[mask], r[mask]  # one row per scored position
        c, r = c.reshape(-1, c.shape[-1]), r.reshape(-1, r.shape[-1])
        agree += int((c.argmax(-1) == r.argmax(-1)).sum())
        total += c.shape[0]
        diff = max(diff, float((torch.softmax(c, -1) - torch.softmax(r, -1)).abs().max()))
    top1 = agree / total if total else 1.0
    return QualityCheck(
        "top1_agreement",
        round(top1, 6),
        MIN_TOP1,
        top1 >= MIN_TOP1 and diff <= MAX_PROBABILITY_DIFF,
        total,
        extra={
            "maxProbabilityDiff": round(diff, 6),
            "maxProbabilityDiffThreshold": MAX_PROBABILITY_DIFF,
        },
    )


def _cosine(a: Any, b: Any) -> QualityCheck:
    import torch

    cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
    worst = float(cos.min())
    return QualityCheck("min_cosine", round(worst, 6), MIN_COSINE, worst >= MIN_COSINE, cos.numel())


def _greedy(candidate: Any, reference: Any, max_length: int) -> QualityCheck:
    """Each text on its own (no padding to get wrong), greedy, exactly GREEDY_TOKENS tokens."""
    from .generation import CausalEngine

    causal = isinstance(candidate, CausalEngine)
    tokenizer = candidate.processor
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    options = {
        "max_new_tokens": GREEDY_TOKENS,
        "min_new_tokens": GREEDY_TOKENS,
        "do_sample": False,
        "num_beams": 1,
        "pad_token_id": pad,
    }
    room = max(1, max_length - GREEDY_TOKENS if causal else max_length)
    same = []
    for text in TEXTS:
        encoded = tokenizer(text, truncation=True, max_length=room, return_tensors="pt")
        batch = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        outputs = []
        for engine in (candidate, reference):
            tensors = {k: v.to(engine.backend.device) for k, v in batch.items()}
            out = engine.model.generate(**tensors, **options)[0].cpu()
            if causal:  # the continuation only
                out = out[batch["input_ids"].shape[-1] :]
            outputs.append(out)
        first, second = outputs
        same.append(first.shape == second.shape and bool((first == second).all()))
    share = sum(same) / len(same)
    return QualityCheck(
        "greedy_tokens_identical",
        round(share, 6),
        1.0,
        share == 1.0,
        len(same),
        extra={"greedyTokens": GREEDY_TOKENS},
    )
