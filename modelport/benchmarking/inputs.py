"""Synthetic inputs of the requested length, made by the model's own tokenizer or image processor.

Text is a sentence repeated past the length and truncated, so every row holds exactly
`sequence_length` real tokens (attention mask all ones, special tokens included). Pair tasks
(question answering, zero-shot NLI) truncate the long side of the pair; one zero-shot sample
is one premise-hypothesis pair. Images are seeded random pixels at the processor's size. One
row is made and repeated to the batch size, then moved to the device (and the model's dtype
for pixel values) before any timing. The length is capped by what the model accepts; for
causal models the prompt leaves room for `max_new_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelport.benchmarking.modelcache import LoadedModel

SENTENCE = "The quick brown fox jumps over the lazy dog. "
QUESTION = "What does the fox jump over?"
HYPOTHESIS = "This example is about animals."
LIMIT_SENTINEL = 100_000  # tokenizers without a limit report ~1e30 as model_max_length


@dataclass
class Inputs:
    tensors: dict[str, Any]  # model inputs, on the device
    batch_size: int
    sequence_length: int | None  # None for images


def model_config(loaded: LoadedModel) -> Any:
    return getattr(loaded.model, "config", None)


def sequence_length(loaded: LoadedModel, requested: int, max_new_tokens: int = 0) -> int:
    """The requested length capped by the model's positions, tokenizer and (ST) max_seq_length."""
    config = model_config(loaded)
    limits = [requested]
    positions = None
    for name in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            positions = value
            break
    if positions:
        # BERT-family position ids start at 0; RoBERTa-family reserve padding_idx + 1 of them.
        offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta") else 0
        limits.append(positions - offset)
    tokenizer_limit = getattr(loaded.processor, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < LIMIT_SENTINEL:
        limits.append(tokenizer_limit)
    st_limit = getattr(loaded.engine, "max_tokens", None)  # sentence_bert_config's max_seq_length
    if loaded.kind == "sentence-transformers" and isinstance(st_limit, int) and st_limit > 0:
        limits.append(st_limit)
    length = min(limits)
    if loaded.kind == "causal" and positions:
        length = min(length, positions - max_new_tokens)
    return max(1, length)


def build_inputs(loaded: LoadedModel, batch_size: int, length: int) -> Inputs:
    """Inputs for one batch of `batch_size` rows of `length` tokens, on the model's device."""
    import torch

    if loaded.kind == "image":
        one = {"pixel_values": _image_row(loaded)}
        length_used = None
    else:
        one = _text_row(loaded, length)
        length_used = int(one["input_ids"].shape[-1])
    dtype = getattr(torch, loaded.applied.get("dtype", "float32"))
    tensors = {}
    for name, value in one.items():
        value = value.expand(batch_size, *value.shape[1:]).contiguous()
        if value.is_floating_point():
            value = value.to(dtype)
        tensors[name] = value.to(loaded.device)
    return Inputs(tensors, batch_size, length_used)


def _text_row(loaded: LoadedModel, length: int) -> dict[str, Any]:
    tokenizer = loaded.processor
    per_sentence = max(1, len(tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]))
    text = SENTENCE * (length // per_sentence + 2)
    options = {
        "max_length": length,
        "padding": "max_length",
        "return_tensors": "pt",
    }
    # Pairs truncate longest-first: the long side is cut, and very short lengths still fit.
    if loaded.task == "question-answering":
        first, second = (QUESTION, text) if tokenizer.padding_side == "right" else (text, QUESTION)
        encoded = tokenizer(first, second, truncation=True, **options)
    elif loaded.task == "zero-shot-classification":
        encoded = tokenizer(text, HYPOTHESIS, truncation=True, **options)
    else:
        encoded = tokenizer(text, truncation=True, **options)
    names = list(getattr(tokenizer, "model_input_names", None) or encoded.keys())
    if loaded.kind in ("causal", "seq2seq"):
        names = [n for n in names if n in ("input_ids", "attention_mask")]
    return {k: v for k, v in encoded.items() if k in names}


def _image_row(loaded: LoadedModel) -> Any:
    import numpy as np

    processor = loaded.processor
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    if isinstance(size, int):
        height = width = size
    else:
        size = dict(size)
        edge = size.get("shortest_edge") or 224
        height, width = size.get("height", edge), size.get("width", edge)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return processor(images=[image], return_tensors="pt")["pixel_values"]
