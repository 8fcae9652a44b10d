"""Text generation with causal language models (seq2seq.py has the encoder-decoder ones).

Greedy unless `do_sample` is asked, whatever the model's generation_config says. A prompt
that leaves no room for `max_new_tokens` in the context is refused (422, naming the numbers)
unless `truncation` (or TGI's `truncate`) is set, which keeps its end. Answers are the
text-generation pipeline's ([{"generated_text": prompt + continuation}], or the continuation
alone with return_full_text false), with TGI's `details` when asked; tokens can stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .engine import Engine
from .errors import InputError
from .params import TextGenerationParameters

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Generation:
    """One generated sequence, with what the TGI and OpenAI answers need."""

    text: str  # the new text only
    prompt: str
    prompt_tokens: int
    finish_reason: str  # "length", "eos_token" or "stop_sequence"
    tokens: list[dict[str, Any]] = field(default_factory=list)  # TGI details, when asked

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


class Generator(Engine):
    """What causal and seq2seq engines share: limits, generate options, seeds."""

    def max_new_tokens(self, params: Any) -> int | None:
        asked = params.max_new_tokens
        cap = self.config.limits.max_new_tokens
        if asked is not None and asked > cap:
            raise InputError(f"max_new_tokens is {asked}; this server allows at most {cap}")
        return asked

    def generate_options(self, params: Any) -> dict[str, Any]:
        options = params.generate_kwargs()
        options["do_sample"] = bool(params.do_sample)  # greedy unless asked, whatever the config
        if options["do_sample"]:
            options.setdefault("top_k", 0 if params.top_k is None else params.top_k)
        if (
            options.get("num_return_sequences", 1) > options.get("num_beams", 1)
            and not params.do_sample
        ):
            options["num_beams"] = options["num_return_sequences"]
        if options.get("min_new_tokens", 0) > options.get("max_new_tokens", 1 << 30):
            raise InputError("min_new_tokens must not exceed max_new_tokens")
        tokenizer = self.processor
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        options["pad_token_id"] = pad
        return options

    @contextlib.contextmanager
    def seeded(self, params: Any) -> Any:
        import torch

        if params.seed is None or not params.do_sample:
            yield
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            yield

    def count(self, text: str) -> int:
        return len(self.processor(text, add_special_tokens=True)["input_ids"])


class CausalEngine(Generator):
    tasks: ClassVar[frozenset[str]] = frozenset({"text-generation"})
    Parameters = TextGenerationParameters

    def load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.processor = tokenizer = AutoTokenizer.from_pretrained(self.path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = self.backend.from_pretrained(AutoModelForCausalLM, self.path)
        self.max_tokens = self.token_limit(tokenizer, self.model.config)

    @property
    def default_new_tokens(self) -> int:
        return self.config.limits.default_max_new_tokens

    def check(self, item: Any, params: Any) -> Any:
        text = self.check_text(item, "input")
        new = self.max_new_tokens(params) or self.default_new_tokens
        if self.max_tokens and new >= self.max_tokens:
            raise InputError(
                f"max_new_tokens is {new}; this model's context is {self.max_tokens} tokens"
            )
        if self.max_tokens and not (params.truncation or params.truncate):
            length = self.count(text)
            if length + new > self.max_tokens:
                raise InputError(
                    f"the prompt is {length} tokens and max_new_tokens is {new}, but this model's "
                    f"context is {self.max_tokens} tokens: shorten the prompt, lower "
                    'max_new_tokens, or set "truncation": true to keep the end of the prompt'
                )
        return text

    def prompt_room(self, params: Any) -> int | None:
        """How many prompt tokens are kept when truncating (None: no truncation)."""
        new = params.max_new_tokens or self.default_new_tokens
        room = self.max_tokens - new if self.max_tokens else None
        if params.truncate:
            room = min(room, params.truncate) if room else params.truncate
        elif not params.truncation:
            return None
        return room

    def encode(self, prompts: list[str], params: Any) -> Any:
        tokenizer = self.processor
        room = self.prompt_room(params)
        previous, tokenizer.truncation_side = tokenizer.truncation_side, "left"
        try:
            return tokenizer(
                prompts,
                padding=True,
                return_tensors="pt",
                truncation=room is not None,
                max_length=room,
            ).to(self.backend.device)
        finally:
            tokenizer.truncation_side = previous

    def generate(
        self, prompts: list[str], params: Any, streamer: Any = None
    ) -> list[list[Generation]]:
        """num_return_sequences generations per prompt."""
        import torch

        tokenizer = self.processor
        options = self.generate_options(params)
        options.setdefault("max_new_tokens", self.default_new_tokens)
        if params.stops:
            options.update(stop_strings=params.stops, tokenizer=tokenizer)
        batch = self.encode(prompts, params)
        with self.seeded(params):
            out = self.model.generate(
                **batch,
                **options,
                streamer=streamer,
                return_dict_in_generate=True,
                output_scores=params.details,
            )
        width = batch["input_ids"].shape[1]
        new_ids = out.sequences[:, width:]
        per_prompt = options.get("num_return_sequences", 1)
        logprobs = None
        if params.details and out.scores:
            scores = torch.stack(out.scores, dim=1).float().log_softmax(-1)
            logprobs = scores.gather(-1, new_ids[:, : scores.shape[1], None]).squeeze(-1)
        results: list[list[Generation]] = []
        for row, ids in enumerate(new_ids.tolist()):
            prompt_index = row // per_prompt
            if row % per_prompt == 0:
                results.append([])
            prompt_ids = batch["input_ids"][row // per_prompt]
            prompt_len = int(batch["attention_mask"][row // per_prompt].sum())
            ids = _strip_padding(ids, tokenizer.pad_token_id, tokenizer.eos_token_id)
            generation = self._describe(prompts[prompt_index], prompt_ids, ids, params, prompt_len)
            if logprobs is not None:
                for i, token in enumerate(generation.tokens):
                    token["logprob"] = float(logprobs[row, i])
            results[-1].append(generation)
        return results

    def _describe(
        self, prompt: str, prompt_ids: Any, ids: list[int], params: Any, prompt_len: int
    ) -> Generation:
        tokenizer = self.processor
        # As the pipeline: decode prompt + continuation, cut the decoded prompt's length.
        prompt_ids = prompt_ids[-prompt_len:].tolist() if prompt_len else []
        decoded_prompt = tokenizer.decode(prompt_ids, skip_special_tokens=True)
        full = tokenizer.decode(prompt_ids + ids, skip_special_tokens=True)
        text = full[len(decoded_prompt) :]
        special = set(tokenizer.all_special_ids)
        tokens = [
            {"id": i, "text": tokenizer.decode([i]), "logprob": None, "special": i in special}
            for i in ids
        ]
        if ids and ids[-1] == tokenizer.eos_token_id:
            reason = "eos_token"
        elif params.stops and any(text.endswith(stop) for stop in params.stops):
            reason = "stop_sequence"
        else:
            reason = "length"
        return Generation(text, prompt, prompt_len, reason, tokens)

    def predict(self, items: list[Any], params: Any) -> list[Any]:
        full_text = params.return_full_text is not False
        results = []
        for generations in self.generate(items, params):
            outputs = []
            for g in generations:
                output: dict[str, Any] = {
                    "generated_text": (g.prompt + g.text) if full_text else g.text
                }
                if params.details:
                    output["details"] = {
                        "finish_reason": g.finish_reason,
                        "generated_tokens": g.completion_tokens,
                        "seed": params.seed,
                        "prefill": [],
                        "tokens": g.tokens,
                    }
                outputs.append(output)
            results.append(outputs)
        return results

    def stream(self, prompt: str, params: Any, emit: Emit) -> Generation:
        """Generate for one prompt, calling emit(token) as each token is ready (model thread)."""
        streamer = _TokenStreamer(self.processor, emit)
        generation = self.generate([prompt], params, streamer=streamer)[0][0]
        return generation

    def chat_prompt(self, messages: list[dict[str, Any]]) -> str:
        tokenizer = self.processor
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(
                "this model has no chat template: use /v1/completions or POST / with a prompt"
            )
        try:
            return str(
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        except Exception as exc:  # the template's own checks (roles, alternation) speak here
            raise InputError(f"the chat template refused these messages: {exc}") from None


def _strip_padding(ids: list[int], pad: int | None, eos: int | None) -> list[int]:
    """A finished row is padded to the batch's longest: keep up to its first end token."""
    if eos is not None and eos in ids:
        return ids[: ids.index(eos) + 1]
    if pad is not None and pad != eos:
        while ids and ids[-1] == pad:
            ids = ids[:-1]
    return ids


class _TokenStreamer:
    """A transformers streamer: each new token's id and text go to `emit` as it is generated."""

    def __init__(self, tokenizer: Any, emit: Emit) -> None:
        self.tokenizer, self.emit = tokenizer, emit
        self.prompt_seen = False
        self.ids: list[int] = []
        self.text = ""
        self.special = set(tokenizer.all_special_ids)

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.ids.append(token)
            text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            piece, self.text = text[len(self.text) :], text
            self.emit(
                {"id": token, "text": piece, "logprob": None, "special": token in self.special}
            )

    def end(self) -> None:
        pass
