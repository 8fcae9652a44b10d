"""The quality gate: does an optimized configuration still compute what float32 computes?

Before its figures may back a recommendation, a configuration's outputs on a fixed input set
are compared with the float32 reference (optimization level "none", same device) loaded by the
same runtime (worker-only):

- embeddings (pooled, or token vectors for plain encoders): minimum cosine similarity over
  every input (pooled) or every real token, at least MIN_COSINE;
- classification-like heads (sequence, token, question answering, fill-mask, zero-shot, image):
  top-1 agreement over every scored position, at least MIN_TOP1, and the largest difference
  of any softmax probability, at most MAX_PROBABILITY_DIFF;
- generation: greedy tokens over GREEDY_TOKENS steps, identical for every input.

The texts are fixed sentences of different lengths (padding included), the images seeded noise.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from modelport.benchmarking.inputs import HYPOTHESIS, QUESTION
from modelport.benchmarking.modelcache import LoadedModel

MIN_COSINE = 0.999
MIN_TOP1 = 1.0
MAX_PROBABILITY_DIFF = 0.02
GREEDY_TOKENS = 16
REFERENCE_LEVEL = "none"

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

    def sentence(self) -> str:
        """What failed, with its numbers (for the recommendations)."""
        extra = "".join(f", {name} {value:.4g}" for name, value in self.extra.items())
        return f"{self.metric} {self.value:.4g} (threshold {self.threshold:g}{extra})"


def check(candidate: LoadedModel, reference: LoadedModel, length: int) -> QualityCheck:
    """Compare the candidate's outputs with the reference's on the fixed input set."""
    import torch

    with torch.inference_mode():
        if candidate.generative:
            return _greedy(candidate, reference, length)
        if candidate.kind == "image":
            batch_c, batch_r = _images(candidate), _images(reference)
        else:
            batch_c, batch_r = _texts(candidate, length), _texts(reference, length)
        if hasattr(candidate.engine, "embed") and candidate.kind != "image":
            return _cosine(candidate.engine.embed(batch_c), reference.engine.embed(batch_r), None)
        out_c = candidate.model(**batch_c)
        out_r = reference.model(**batch_r)
        if candidate.task == "feature-extraction":
            mask = batch_c.get("attention_mask")
            return _cosine(out_c.last_hidden_state, out_r.last_hidden_state, mask)
        return _agreement(_heads(out_c), _heads(out_r), _position_mask(candidate, batch_c))


def run(candidate: LoadedModel, reference_loader: Any, length: int) -> QualityCheck:
    """Load the reference with `reference_loader()`, compare, and let it go before timing."""
    reference = reference_loader()
    try:
        return check(candidate, reference, length)
    finally:
        del reference
        gc.collect()


def _texts(loaded: LoadedModel, length: int) -> dict[str, Any]:
    tokenizer = loaded.processor
    options: dict[str, Any] = {
        "padding": True,
        "truncation": True,
        "max_length": length,
        "return_tensors": "pt",
    }
    texts = list(TEXTS)
    if loaded.task == "fill-mask":
        mask = tokenizer.mask_token or "[MASK]"
        texts = [_masked(text, mask) for text in texts]
    if loaded.task == "question-answering":
        encoded = tokenizer([QUESTION] * len(texts), texts, **options)
    elif loaded.task == "zero-shot-classification":
        encoded = tokenizer(texts, [HYPOTHESIS] * len(texts), **options)
    else:
        encoded = tokenizer(texts, **options)
    names = set(getattr(tokenizer, "model_input_names", None) or encoded.keys())
    return {k: v.to(loaded.device) for k, v in encoded.items() if k in names}


def _masked(text: str, mask: str) -> str:
    words = text.split()
    words[len(words) // 2] = mask
    return " ".join(words)


def _images(loaded: LoadedModel) -> dict[str, Any]:
    import numpy as np
    import torch

    from modelport.benchmarking.inputs import _image_row

    rows = [_image_row(loaded)]
    rng = np.random.default_rng(1)
    size = rows[0].shape[-2:]
    for _ in range(3):
        noise = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        rows.append(loaded.processor(images=[noise], return_tensors="pt")["pixel_values"])
    dtype = getattr(torch, loaded.applied.get("dtype", "float32"))
    return {"pixel_values": torch.cat(rows).to(loaded.device, dtype)}


def _heads(output: Any) -> list[Any]:
    """The scored outputs: logits, or a QA model's start and end logits."""
    if getattr(output, "logits", None) is not None:
        return [output.logits]
    return [output.start_logits, output.end_logits]


def _position_mask(loaded: LoadedModel, batch: dict[str, Any]) -> Any:
    """Which positions are scored: the masked token (fill-mask), real tokens (token-level
    heads), or every row (one prediction per input)."""
    if loaded.task == "fill-mask":
        return batch["input_ids"] == loaded.processor.mask_token_id
    if loaded.task in ("token-classification", "question-answering"):
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


def _cosine(a: Any, b: Any, mask: Any) -> QualityCheck:
    import torch

    a, b = a.float(), b.float()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    if mask is not None:
        cos = cos[mask.bool()]
    worst = float(cos.min())
    return QualityCheck("min_cosine", round(worst, 6), MIN_COSINE, worst >= MIN_COSINE, cos.numel())


def _greedy(candidate: LoadedModel, reference: LoadedModel, length: int) -> QualityCheck:
    """Each text on its own (no padding to get wrong), greedy, exactly GREEDY_TOKENS tokens."""
    tokenizer = candidate.processor
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    options = {
        "max_new_tokens": GREEDY_TOKENS,
        "min_new_tokens": GREEDY_TOKENS,
        "do_sample": False,
        "num_beams": 1,
        "pad_token_id": pad,
    }
    prompt_room = length - GREEDY_TOKENS if candidate.kind == "causal" else length
    same = []
    for text in TEXTS:
        encoded = tokenizer(text, truncation=True, max_length=max(1, prompt_room),
                            return_tensors="pt")  # fmt: skip
        batch = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        outputs = []
        for loaded in (candidate, reference):
            tensors = {k: v.to(loaded.device) for k, v in batch.items()}
            out = loaded.model.generate(**tensors, **options)[0].cpu()
            if loaded.kind == "causal":  # the continuation only
                out = out[batch["input_ids"].shape[-1] :]
            outputs.append(out)
        same.append(outputs[0].shape == outputs[1].shape and bool((outputs[0] == outputs[1]).all()))
    share = sum(same) / len(same)
    return QualityCheck(
        "greedy_tokens_identical",
        round(share, 6),
        1.0,
        share == 1.0,
        len(same),
        extra={"greedyTokens": GREEDY_TOKENS},
    )
