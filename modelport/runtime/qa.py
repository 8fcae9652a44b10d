"""Extractive question answering with the transformers question-answering pipeline's rules.

transformers 5 no longer ships that pipeline, so this engine carries its algorithm: the
context is cut into windows of `max_seq_len` tokens overlapping by `doc_stride`; in each
window start and end logits outside the context (and padding) are masked, softmaxed, CLS is
excluded (kept only as the "impossible" score when `handle_impossible_answer`), spans are
scored start x end with end >= start and at most `max_answer_len` tokens; the best `top_k`
across windows win. Character offsets are widened to whole words (`align_to_words`). One
input gives a dict when top_k is 1, else a list, as the pipeline did.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .engine import Engine
from .errors import InputError
from .params import QuestionAnsweringParameters


class QuestionAnsweringEngine(Engine):
    tasks: ClassVar[frozenset[str]] = frozenset({"question-answering"})
    Parameters = QuestionAnsweringParameters

    def load(self) -> None:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.processor = AutoTokenizer.from_pretrained(self.path)
        if not self.processor.is_fast:
            raise RuntimeError("question-answering needs a fast tokenizer (for offset mapping)")
        self.model = self.backend.from_pretrained(AutoModelForQuestionAnswering, self.path)
        self.max_tokens = self.token_limit(self.processor, self.model.config)

    def check(self, item: Any, params: Any) -> Any:
        if not isinstance(item, dict) or set(item) != {"question", "context"}:
            raise InputError('each input must be an object {"question": "...", "context": "..."}')
        question = self.check_text(item["question"], "question")
        context = self.check_text(item["context"], "context")
        limit = self.window(params)
        if params.doc_stride is not None and params.doc_stride >= limit:
            raise InputError(
                f"doc_stride ({params.doc_stride}) must be below max_seq_len ({limit})"
            )
        return {"question": question, "context": context}

    def size(self, item: Any) -> int:
        return len(item["question"]) + len(item["context"])

    def window(self, params: Any) -> int:
        wanted = params.max_seq_len or 384
        return min(wanted, self.max_tokens) if self.max_tokens else wanted

    def encode(self, items: list[dict[str, str]], params: Any) -> Any:
        tokenizer = self.processor
        question_first = tokenizer.padding_side == "right"
        # The pipeline cut each question to max_question_len tokens before pairing.
        questions = [
            self._clip(item["question"].lstrip(), params.max_question_len) for item in items
        ]
        contexts = [item["context"] for item in items]
        first, second = (questions, contexts) if question_first else (contexts, questions)
        max_length = self.window(params)
        return tokenizer(
            first,
            second,
            padding=True,
            truncation="only_second" if question_first else "only_first",
            max_length=max_length,
            stride=min(max_length // 2, 128) if params.doc_stride is None else params.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_tensors="pt",
        )

    def _clip(self, question: str, tokens: int) -> str:
        encoding = self.processor(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        return question if len(offsets) <= tokens else question[: offsets[tokens - 1][1]]

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        import numpy as np

        encoded = self.encode(items, params)
        tokenizer = self.processor
        question_first = tokenizer.padding_side == "right"
        context_id = 1 if question_first else 0
        names = set(tokenizer.model_input_names)
        inputs = {k: v.to(self.backend.device) for k, v in encoded.items() if k in names}
        outputs = self.model(**inputs)
        starts = outputs.start_logits.float().cpu().numpy()
        ends = outputs.end_logits.float().cpu().numpy()
        masks = encoded["attention_mask"].numpy()
        answers: list[list[dict[str, Any]]] = [[] for _ in items]
        null_scores = [1_000_000.0] * len(items)
        for feature, sample in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
            sequence_ids = encoded.sequence_ids(feature)
            allowed = np.array([sid == context_id for sid in sequence_ids]) & (masks[feature] == 1)
            if tokenizer.cls_token_id is not None:  # CLS stays a candidate for "impossible"
                allowed |= encoded["input_ids"][feature].numpy() == tokenizer.cls_token_id
            start = _softmax(np.where(allowed, starts[feature], -10000.0))
            end = _softmax(np.where(allowed, ends[feature], -10000.0))
            if params.handle_impossible_answer:
                null_scores[sample] = min(null_scores[sample], float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            encoding = encoded.encodings[feature]
            for s, e, score in _best_spans(
                start, end, allowed, params.top_k, params.max_answer_len
            ):
                first_char, last_char = _char_span(
                    encoding, s, e, context_id, params.align_to_words
                )
                context = items[sample]["context"]
                answers[sample].append(
                    {
                        "score": score,
                        "start": first_char,
                        "end": last_char,
                        "answer": context[first_char:last_char],
                    }
                )
        results: list[Any] = []
        for sample, found in enumerate(answers):
            if params.handle_impossible_answer:
                found.append({"score": null_scores[sample], "start": 0, "end": 0, "answer": ""})
            ranked = sorted(found, key=lambda answer: answer["score"], reverse=True)
            ranked = ranked[: params.top_k] or [{"score": 0.0, "start": 0, "end": 0, "answer": ""}]
            results.append(ranked[0] if len(ranked) == 1 else ranked)
        return results


def _softmax(values: Any) -> Any:
    import numpy as np

    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def _best_spans(
    start: Any, end: Any, allowed: Any, top_k: int, max_answer_len: int
) -> list[tuple[int, int, float]]:
    """(start token, end token, score) of the best spans, as the pipeline's decode_spans."""
    import numpy as np

    outer = np.outer(start, end)
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:
        order = np.argsort(-flat)
    else:
        order = np.argpartition(-flat, top_k)[:top_k]
        order = order[np.argsort(-flat[order])]
    firsts, lasts = np.unravel_index(order, candidates.shape)
    ok = allowed.copy()
    ok[0] = True  # the pipeline's mask kept index 0 (CLS, scored 0 by now)
    return [
        (int(s), int(e), float(candidates[s, e]))
        for s, e in zip(firsts, lasts, strict=True)
        if ok[s] and ok[e]
    ]


def _char_span(encoding: Any, first: int, last: int, sequence: int, align: bool) -> tuple[int, int]:
    """Character offsets in the context, widened to whole words when `align`."""
    if align:
        try:
            start_word, end_word = encoding.token_to_word(first), encoding.token_to_word(last)
            return (
                encoding.word_to_chars(start_word, sequence_index=sequence)[0],
                encoding.word_to_chars(end_word, sequence_index=sequence)[1],
            )
        except Exception:  # noqa: S110 - tokenizers without words keep token offsets
            pass
    return encoding.offsets[first][0], encoding.offsets[last][1]
