"""Sentence embeddings: sentence-transformers models (pooled, as HF Inference and TEI serve
them), or masked mean pooling over a transformers model for sentence-similarity without one.

Inputs are texts, or for sentence-similarity {"source_sentence", "sentences"}, answered with
one similarity score per sentence (the model's similarity function, cosine by default).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .engine import Engine
from .errors import InputError
from .params import EmbeddingParameters


class EmbeddingEngine(Engine):
    tasks: ClassVar[frozenset[str]] = frozenset({"feature-extraction", "sentence-similarity"})
    Parameters = EmbeddingParameters

    def load(self) -> None:
        backend = self.backend
        if self.config.sentence_transformers:
            from sentence_transformers import SentenceTransformer

            self.model = backend.load(
                lambda **kw: SentenceTransformer(
                    self.path,
                    device=backend.device,
                    local_files_only=True,
                    model_kwargs={"dtype": backend.dtype, **kw},
                )
            )
            backend.optimize(self.model)
            self.processor = self.model.tokenizer
            self.max_tokens = self.model.max_seq_length or self.token_limit(self.processor)
        else:
            from transformers import AutoModel, AutoTokenizer

            self.processor = AutoTokenizer.from_pretrained(self.path)
            self.model = backend.from_pretrained(AutoModel, self.path)
            self.max_tokens = self.token_limit(self.processor, self.model.config)

    # ------------------------------------------------------------ inputs

    def check(self, item: Any, params: Any) -> Any:
        limit = self.config.limits.max_inputs_per_request
        limit_tokens = not params.truncating
        if isinstance(item, dict):
            if self.task != "sentence-similarity" or set(item) != {"source_sentence", "sentences"}:
                raise InputError(
                    "an input is a string (or, for sentence-similarity, "
                    '{"source_sentence": "...", "sentences": ["...", ...]})'
                )
            self.check_text(item["source_sentence"], "source_sentence", limit_tokens=limit_tokens)
            sentences = item["sentences"]
            if not isinstance(sentences, list) or not 0 < len(sentences) <= limit:
                raise InputError(f'"sentences" must be a list of 1 to {limit} strings', 422)
            for sentence in sentences:
                self.check_text(sentence, "each sentence", limit_tokens=limit_tokens)
            return item
        return self.check_text(item, "input", limit_tokens=limit_tokens)

    def size(self, item: Any) -> int:
        if isinstance(item, dict):
            return sum(len(s) for s in [item["source_sentence"], *item["sentences"]])
        return len(item)

    def check_params(self, params: Any) -> None:
        prompts = getattr(self.model, "prompts", None) or {}
        if params.prompt_name is not None and params.prompt_name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise InputError(
                f"unknown prompt_name {params.prompt_name!r} (this model has: {known})"
            )

    # ------------------------------------------------------------ predict

    def encode(self, texts: list[str], params: Any) -> Any:
        """Pooled vectors for texts, as a float32 CPU tensor."""
        import torch

        direction = (params.truncation_direction or "right").lower()
        tokenizer = self.processor
        previous, tokenizer.truncation_side = tokenizer.truncation_side, direction
        try:
            if self.config.sentence_transformers:
                vectors = self.model.encode(
                    texts,
                    batch_size=max(1, len(texts)),
                    convert_to_tensor=True,
                    normalize_embeddings=bool(params.normalize),
                    prompt_name=params.prompt_name,
                    show_progress_bar=False,
                )
                return vectors.float().cpu()
            batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        finally:
            tokenizer.truncation_side = previous
        batch = batch.to(self.backend.device)
        names = set(tokenizer.model_input_names)
        hidden = self.model(**{k: v for k, v in batch.items() if k in names}).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        vectors = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu()
        if params.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def similarity(self, vectors: Any) -> Any:
        import torch

        if self.config.sentence_transformers:
            return self.model.similarity(vectors[:1], vectors[1:])[0]
        unit = torch.nn.functional.normalize(vectors, dim=-1)
        return unit[1:] @ unit[0]

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        self.check_params(params)
        texts: list[str] = []
        spans = []
        for item in items:
            start = len(texts)
            if isinstance(item, dict):
                texts += [item["source_sentence"], *item["sentences"]]
            else:
                texts.append(item)
            spans.append((start, len(texts)))
        vectors = self.encode(texts, params)
        results: list[Any] = []
        for item, (start, end) in zip(items, spans, strict=True):
            if isinstance(item, dict):
                results.append(self.similarity(vectors[start:end]).tolist())
            else:
                results.append(vectors[start].tolist())
        return results

    def vectors(self, items: list[Any]) -> list[list[float]]:
        return self.encode(list(items), self.Parameters()).tolist()
