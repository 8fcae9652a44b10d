"""Sequence-to-sequence generation: summarization, translation, text2text.

Answers as the transformers 4 pipelines of those tasks did ([{"summary_text": ...}] and so
on; transformers 5 dropped them), with the model's task prefix and generation defaults from
config.task_specific_params, greedy unless `do_sample`, and exactly `max_new_tokens` new
tokens at most. InferenceClient's nested `generate_parameters` apply over the top level.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from .config import SEQ2SEQ_OUTPUT_KEYS
from .generation import Generator
from .params import Seq2SeqParameters


class Seq2SeqEngine(Generator):
    tasks: ClassVar[frozenset[str]] = frozenset(SEQ2SEQ_OUTPUT_KEYS)
    Parameters = Seq2SeqParameters

    def load(self) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.processor = AutoTokenizer.from_pretrained(self.path)
        self.model = self.backend.from_pretrained(AutoModelForSeq2SeqLM, self.path)
        self.max_tokens = self.token_limit(self.processor, self.model.config)
        self.task_params = getattr(self.model.config, "task_specific_params", None) or {}
        self.output_key = SEQ2SEQ_OUTPUT_KEYS[self.task]

    def check(self, item: Any, params: Any) -> Any:
        params = params.resolved()
        self.max_new_tokens(params)
        return self.check_text(item, "input", limit_tokens=not params.truncating)

    def task_defaults(self, params: Any) -> tuple[str, dict[str, Any]]:
        """The prefix and generation defaults config.task_specific_params gives this task."""
        key = self.task
        if self.task == "translation":
            keys = [k for k in self.task_params if k.startswith("translation")]
            wanted = f"translation_{params.src_lang}_to_{params.tgt_lang}"
            key = wanted if wanted in keys else (keys[0] if len(keys) == 1 else "")
        defaults = dict(self.task_params.get(key) or {})
        prefix = str(defaults.pop("prefix", "") or "")
        names = (
            "max_length",
            "min_length",
            "num_beams",
            "length_penalty",
            "no_repeat_ngram_size",
            "early_stopping",
        )
        return prefix, {k: defaults[k] for k in names if k in defaults}

    def language_options(self, params: Any) -> dict[str, Any]:
        tokenizer, options = self.processor, {}
        if params.src_lang and hasattr(tokenizer, "src_lang"):
            tokenizer.src_lang = params.src_lang
        if params.tgt_lang:
            token_id = None
            if hasattr(tokenizer, "get_lang_id"):
                with contextlib.suppress(Exception):
                    token_id = tokenizer.get_lang_id(params.tgt_lang)
            if token_id is None:
                token_id = tokenizer.convert_tokens_to_ids(params.tgt_lang)
            if token_id is not None and token_id != tokenizer.unk_token_id:
                options["forced_bos_token_id"] = token_id
        return options

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        params = params.resolved()
        prefix, options = self.task_defaults(params)
        options.update(self.language_options(params))
        asked = self.generate_options(params)
        if "max_new_tokens" in asked or "min_new_tokens" in asked:
            options.pop("max_length", None)
            options.pop("min_length", None)
        options.update(asked)
        batch = self.processor(
            [prefix + text for text in items],
            padding=True,
            return_tensors="pt",
            truncation=True,
            max_length=self.max_tokens,
        ).to(self.backend.device)
        batch.pop("token_type_ids", None)  # encoder-decoder models take none
        with self.seeded(params):
            generated = self.model.generate(**batch, **options)
        clean = params.clean_up_tokenization_spaces
        texts = self.processor.batch_decode(
            generated,
            skip_special_tokens=True,
            clean_up_tokenization_spaces=True if clean is None else clean,
        )
        per_input = options.get("num_return_sequences", 1)
        return [
            [{self.output_key: text.strip()} for text in texts[i * per_input : (i + 1) * per_input]]
            for i in range(len(items))
        ]
