"""Sentence embeddings: sentence-transformers models (pooled, as HF Inference and TEI serve
them, by sentence.py's reading of modules.json), or masked mean pooling over a transformers
model for sentence-similarity without one.

Inputs are texts, or for sentence-similarity {"source_sentence", "sentences"}, answered with
one similarity score per sentence (the model's similarity function, cosine by default).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .engine import Engine
from .errors import InputError
from .params import EmbeddingParameters
from .sentence import SentenceConfig, load_dense, pool, similarity


class EmbeddingEngine(Engine):
    tasks: ClassVar[frozenset[str]] = frozenset({"feature-extraction", "sentence-similarity"})
    Parameters = EmbeddingParameters

    def load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        backend = self.backend
        self.sentence: SentenceConfig | None = None
        folder = self.path
        if self.config.sentence_transformers:
            self.sentence = SentenceConfig.read(self.path)
            folder = self.sentence.transformer_path
        self.processor = AutoTokenizer.from_pretrained(folder)
        self.model = backend.from_pretrained(AutoModel, folder)
        self.dense = [
            backend.optimize(load_dense(path, backend.dtype, backend.device))
            for path in (self.sentence.dense if self.sentence else [])
        ]
        limits = (
            self.token_limit(self.processor, self.model.config),
            self.sentence.max_seq_length if self.sentence else None,
        )
        self.max_tokens = min((n for n in limits if n), default=None)

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
        prompts = self.sentence.prompts if self.sentence else {}
        if params.prompt_name is not None and params.prompt_name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise InputError(
                f"unknown prompt_name {params.prompt_name!r} (this model has: {known})"
            )

    # ------------------------------------------------------------ predict

    def encode(self, texts: list[str], params: Any) -> Any:
        """Pooled vectors for texts, as a float32 CPU tensor."""
        import torch

        sentence = self.sentence
        prompt, skip = "", 0
        if sentence is not None:
            name = params.prompt_name or sentence.default_prompt_name
            prompt = sentence.prompts.get(name, "") if name else ""
            if sentence.do_lower_case:
                texts = [text.lower() for text in texts]
            texts = [prompt + text for text in texts]
            if prompt and not sentence.include_prompt:
                skip = self.prompt_length(prompt)
        direction = (params.truncation_direction or "right").lower()
        tokenizer = self.processor
        previous, tokenizer.truncation_side = tokenizer.truncation_side, direction
        try:
            batch = tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                              return_tensors="pt")  # fmt: skip
        finally:
            tokenizer.truncation_side = previous
        vectors = self.embed(batch.to(self.backend.device), skip_tokens=skip).float().cpu()
        if params.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def embed(self, batch: Any, skip_tokens: int = 0) -> Any:
        """Pooled vectors of a tokenized batch on the device (what the benchmark times): the
        model's forward, pooling (leaving out the first `skip_tokens`), Dense and Normalize."""
        import torch

        sentence = self.sentence
        names = set(self.processor.model_input_names)
        hidden = self.model(**{k: v for k, v in batch.items() if k in names}).last_hidden_state
        mask = batch["attention_mask"]
        if sentence is None:
            return pool(hidden, mask, ["mean_tokens"])
        if skip_tokens:
            mask = mask.clone()
            mask[:, :skip_tokens] = 0
        vectors = pool(hidden, mask, sentence.pooling)
        for layer in self.dense:
            vectors = layer(vectors)
        if sentence.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def prompt_length(self, prompt: str) -> int:
        """Tokens of the prompt at the start of an input (its trailing special token not)."""
        ids = self.processor(prompt)["input_ids"]
        special = set(self.processor.all_special_ids)
        return len(ids) - 1 if ids and ids[-1] in special else len(ids)

    def similarity(self, vectors: Any) -> Any:
        name = self.sentence.similarity if self.sentence else "cosine"
        return similarity(name, vectors[0], vectors[1:])

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
