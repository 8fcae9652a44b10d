"""OpenAI-compatible routes, where TEI and TGI offer them: /v1/embeddings for embedding models,
/v1/chat/completions and /v1/completions (streaming too) for causal language models, and
/v1/models. Generation is greedy unless a temperature above 0 is given."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import RUNTIME_VERSION
from .config import RuntimeConfig
from .engine import Engine
from .errors import InputError
from .params import EmbeddingParameters, TextGenerationParameters
from .protocol import InferenceRequest, parse_json
from .responses import JSONResponse
from .streaming import error_event, sse, token_events

Handler = Callable[[Request, Any], Awaitable[Response]]
FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
UNSUPPORTED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "logit_bias",
    "response_format",
)


class _OpenAIBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send fields this server ignores
    model: str | None = None

    def refuse_unsupported(self) -> None:
        extra = self.model_extra or {}
        used = [name for name in UNSUPPORTED if extra.get(name) not in (None, [], {}, "none")]
        if used:
            raise InputError(f"not supported by this server: {', '.join(used)}")


class EmbeddingsBody(_OpenAIBody):
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None


class _GenerationBody(_OpenAIBody):
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    n: Annotated[int, Field(ge=1, le=16)] = 1
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None

    def parameters(self, max_tokens: int | None) -> TextGenerationParameters:
        sampling = bool(self.temperature) or (self.top_p is not None and self.top_p < 1)
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return TextGenerationParameters(
            max_new_tokens=max_tokens,
            do_sample=sampling,
            temperature=self.temperature if sampling and self.temperature else None,
            top_p=self.top_p if sampling else None,
            num_return_sequences=self.n,
            seed=self.seed,
            stop=stop or None,
            return_full_text=False,
        )


class CompletionsBody(_GenerationBody):
    prompt: str | list[str]
    echo: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            parts = []
            for part in self.content:
                if part.get("type") != "text":
                    raise InputError(
                        f"message content of type {part.get('type')!r} is not supported"
                    )
                parts.append(str(part.get("text", "")))
            return "".join(parts)
        return self.content or ""


class ChatBody(_GenerationBody):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


async def _body(request: Request, model: type[_OpenAIBody], runtime: Any) -> Any:
    from .server import read_body

    raw = await read_body(request, runtime.config.limits.max_body_bytes)
    try:
        body = model.model_validate(parse_json(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(problems) from None
    body.refuse_unsupported()
    return body


def _openai_error(exc: InputError) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": str(exc), "type": "invalid_request_error", "code": exc.error_type}},
        exc.status,
    )


def openai_routes(config: RuntimeConfig, prediction: Callable[[Handler], Any]) -> list[Route]:
    """The /v1 routes this task has (none for tasks TEI and TGI give none)."""
    model_id = config.model_id
    created = int(time.time())

    def guarded(handler: Handler) -> Any:
        async def wrapped(request: Request, runtime: Any) -> Response:
            try:
                return await handler(request, runtime)
            except InputError as exc:  # OpenAI clients read {"error": {"message"}}
                if exc.status == 503:
                    raise
                return _openai_error(exc)

        wrapped.__name__ = handler.__name__
        return prediction(wrapped)

    async def models(request: Request) -> Response:
        entry = {"id": model_id, "object": "model", "created": created, "owned_by": "modelport"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def embeddings(request: Request, runtime: Any) -> Response:
        from .server import run_batched

        engine = runtime.ready_engine()
        body = await _body(request, EmbeddingsBody, runtime)
        texts = _texts(body.input, engine)
        params = EmbeddingParameters()
        limit = config.limits.max_inputs_per_request
        if not texts or len(texts) > limit:
            raise InputError(f'"input" must hold 1 to {limit} texts')
        job = InferenceRequest([engine.check(t, params) for t in texts], False, params)
        vectors = await run_batched(runtime, engine, job, engine.predict)
        data = []
        for index, vector in enumerate(vectors):
            vector = _shorten(vector, body.dimensions)
            value: Any = vector
            if body.encoding_format == "base64":
                import numpy as np

                value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(engine.processor(t)["input_ids"]) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": model_id, "usage": usage})

    async def generate(
        runtime: Any, body: _GenerationBody, prompts: list[str], kind: str
    ) -> Response:
        from .server import run_batched

        engine = runtime.ready_engine()
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
        params = body.parameters(max_tokens)
        job = InferenceRequest([engine.check(p, params) for p in prompts], False, params)
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        if body.stream:
            if len(prompts) != 1 or body.n != 1:
                raise InputError("streaming takes one prompt and n = 1")
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = _stream(runtime, engine, job, ident, kind, include_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        results = await run_batched(runtime, engine, job, engine.generate)
        choices: list[dict[str, Any]] = []
        prompt_tokens = completion_tokens = 0
        for prompt, generations in zip(prompts, results, strict=True):
            prompt_tokens += generations[0].prompt_tokens
            for g in generations:
                completion_tokens += g.completion_tokens
                choice: dict[str, Any] = {
                    "index": len(choices),
                    "finish_reason": FINISH[g.finish_reason],
                    "logprobs": None,
                }
                if kind == "chat":
                    choice["message"] = {"role": "assistant", "content": g.text}
                else:
                    echo = getattr(body, "echo", False)
                    choice["text"] = (prompt + g.text) if echo else g.text
                choices.append(choice)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion" if kind == "chat" else "text_completion",
                "created": int(time.time()),
                "model": model_id,
                "system_fingerprint": f"modelport-runtime-{RUNTIME_VERSION}",
                "choices": choices,
                "usage": usage,
            }
        )

    async def chat(request: Request, runtime: Any) -> Response:
        engine = runtime.ready_engine()
        body = await _body(request, ChatBody, runtime)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        return await generate(runtime, body, [engine.chat_prompt(messages)], "chat")

    async def completions(request: Request, runtime: Any) -> Response:
        body = await _body(request, CompletionsBody, runtime)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise InputError('"prompt" must not be an empty list')
        return await generate(runtime, body, prompts, "text")

    routes = [Route("/v1/models", models, methods=["GET"])]
    if config.sentence_transformers:
        routes.append(Route("/v1/embeddings", guarded(embeddings), methods=["POST"]))
    if config.task == "text-generation":
        routes.append(Route("/v1/chat/completions", guarded(chat), methods=["POST"]))
        routes.append(Route("/v1/completions", guarded(completions), methods=["POST"]))
    return routes


def _texts(value: Any, engine: Engine) -> list[str]:
    """Texts from OpenAI's `input`: a string, strings, token ids, or lists of token ids."""
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, int) for v in value):
        return [engine.processor.decode(value)]
    if value and all(isinstance(v, list) for v in value):
        return [engine.processor.decode(ids) for ids in value]
    return list(value)


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """The first `dimensions` values, renormalized (Matryoshka-style), as OpenAI's parameter."""
    if dimensions is None or dimensions == len(vector):
        return vector
    if dimensions > len(vector):
        raise InputError(f"dimensions is {dimensions}; this model's embeddings have {len(vector)}")
    head = vector[:dimensions]
    norm = sum(v * v for v in head) ** 0.5 or 1.0
    return [v / norm for v in head]


async def _stream(
    runtime: Any, engine: Any, job: InferenceRequest, ident: str, kind: str, include_usage: bool
) -> AsyncIterator[bytes]:
    created, model = int(time.time()), runtime.config.model_id
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(delta: dict[str, Any] | str | None, finish: str | None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if kind == "chat":
            choice["delta"] = delta if isinstance(delta, dict) else {}
        else:
            choice["text"] = delta if isinstance(delta, str) else ""
        return sse(
            {
                "id": ident,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    try:
        if kind == "chat":
            yield chunk({"role": "assistant", "content": ""}, None)
        async for token, generation in token_events(runtime, engine, job.items[0], job.params):
            if token is not None and token["text"]:
                yield chunk({"content": token["text"]} if kind == "chat" else token["text"], None)
            elif generation is not None:
                yield chunk({} if kind == "chat" else "", FINISH[generation.finish_reason])
                if include_usage:
                    total = generation.prompt_tokens + generation.completion_tokens
                    usage = {
                        "prompt_tokens": generation.prompt_tokens,
                        "completion_tokens": generation.completion_tokens,
                        "total_tokens": total,
                    }
                    yield sse(
                        {
                            "id": ident,
                            "object": obj,
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
        yield sse("[DONE]")
    except Exception as exc:
        yield error_event(exc)
