"""The HTTP server: Starlette routes on uvicorn, the model loaded in the background.

Routes: POST / and /predict (the Hugging Face Inference API), the OpenAI-compatible /v1
routes where the task has them (openai_routes.py), GET /health (liveness: 200 while the
process runs), /ready (readiness: 503 while loading or draining), /info, /metrics and
/openapi.json. SIGTERM drains: readiness and new predictions answer 503, requests in flight
finish, then the process exits, within the drain timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import RUNTIME_VERSION
from .batching import Batcher
from .config import RuntimeConfig
from .engine import Engine
from .errors import Busy, InputError, TooLarge
from .metrics import Metrics
from .openapi import openapi_document
from .protocol import InferenceRequest, parse_json, parse_request
from .responses import JSONResponse

log = logging.getLogger("run_inference")
Loader = Callable[[], Engine]
BINARY_TYPES = ("image/", "application/octet-stream")


class Runtime:
    """What the routes share: configuration, the engine once loaded, batcher, metrics, state."""

    def __init__(self, config: RuntimeConfig, loader: Loader) -> None:
        self.config, self.loader = config, loader
        self.engine: Engine | None = None
        self.error: str | None = None
        self.draining = False
        self.in_flight = 0
        self.metrics = Metrics(
            config.model_id,
            config.revision,
            config.task,
            config.max_batch_size,
            device=config.optimization.device,
            optimization_level=config.optimization_level,
        )
        limits = config.limits
        self.batcher = Batcher(
            self._run,
            max_batch=config.max_batch_size,
            max_delay_s=config.max_delay_ms / 1000,
            max_queued=limits.max_queued_inputs,
            observe=self.metrics.observe_batch,
            on_depth=self.metrics.queue_depth.set,
        )

    def _run(self, items: list[Any], job: tuple[Callable[..., Any], Any]) -> Any:
        """One batch on the model thread: job is (engine method, parameters)."""
        method, params = job
        assert self.engine is not None
        with self.engine.backend.running():
            return method(items, params)

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        if self.draining:
            return "draining"
        return "ready" if self.engine is not None else "loading"

    def ready_engine(self) -> Engine:
        if self.draining:
            raise Busy("the server is shutting down: send the request to another replica")
        if self.engine is None:
            raise Busy("the model is still loading: retry when GET /ready answers 200")
        return self.engine

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.engine = await loop.run_in_executor(self.batcher.executor, self.loader)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load the model")
            return
        log.info("ready: POST / (or /predict), GET /health /ready /metrics /openapi.json")

    async def drain(self, timeout_s: float) -> None:
        """Stop taking predictions; return once none is in flight or queued, or at the timeout.
        Admission is decided once, when a request arrives (ready_engine): one admitted before
        the drain still queues its inputs after it (an image body may take a while to decode)."""
        self.draining = True
        log.info("draining: %d request(s) in flight", self.in_flight)
        deadline = time.monotonic() + timeout_s
        while (self.in_flight or self.batcher.depth) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.in_flight:
            log.warning("drain timeout: %d request(s) still in flight", self.in_flight)

    def info(self) -> dict[str, Any]:
        config = self.config
        return {
            "status": self.status,
            "model": config.model_id,
            "revision": config.revision,
            "task": config.task,
            "optimizationLevel": config.optimization_level,
            "maxBatchSize": config.max_batch_size,
            "maxDelayMs": config.max_delay_ms,
            "runtime": dict(self.engine.backend.applied) if self.engine else {},
            "runtimeVersion": RUNTIME_VERSION,
            **({"error": self.error} if self.error else {}),
        }


def error_response(exc: InputError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if exc.status == 503:
        headers.setdefault("Retry-After", "1")
    return JSONResponse({"error": str(exc), "error_type": exc.error_type}, exc.status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"the body must be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def prediction(
    handler: Callable[[Request, Runtime], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Count, time and guard a prediction route: every InputError becomes its 4xx/503 JSON."""

    async def route(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        began = time.perf_counter()
        runtime.in_flight += 1
        runtime.metrics.in_flight.inc()
        status = 500
        try:
            response = await handler(request, runtime)
            status = response.status_code
            return response
        except InputError as exc:
            status = exc.status
            return error_response(exc)
        except TimeoutError:
            status = 504
            limit = runtime.config.limits.request_timeout_s
            return JSONResponse(
                {"error": f"no result within {limit:.0f}s", "error_type": "timeout"}, 504
            )
        except Exception:
            log.exception("prediction failed")
            return JSONResponse(
                {"error": "prediction failed; see the server log", "error_type": "generation"}, 500
            )
        finally:
            runtime.in_flight -= 1
            runtime.metrics.in_flight.dec()
            runtime.metrics.observe_request(status, time.perf_counter() - began)

    return route


async def parse_inference(request: Request, runtime: Runtime) -> tuple[Engine, InferenceRequest]:
    engine = runtime.ready_engine()
    raw = await read_body(request, runtime.config.limits.max_body_bytes)
    ctype = request.headers.get("content-type", "").lower()
    image_task = engine.task == "image-classification"
    binary = ctype.startswith(BINARY_TYPES) or (
        image_task and "json" not in ctype and not raw.lstrip().startswith(b"{")
    )
    if binary:
        if not image_task:
            raise InputError(f"{engine.task} takes a JSON body, not {ctype or 'raw bytes'}", 415)
        body: Any = {"inputs": raw}
    else:
        body = parse_json(raw)
    if image_task:  # decoding an image is worth a thread, off the event loop
        return engine, await run_in_threadpool(parse_request, body, engine)
    return engine, parse_request(body, engine)


async def run_batched(
    runtime: Runtime, engine: Engine, job: InferenceRequest, method: Callable[..., Any]
) -> list[Any]:
    key = (method.__name__, job.params.model_dump_json())
    sizes = [engine.size(item) for item in job.items]
    submit = runtime.batcher.submit(job.items, sizes, (method, job.params), key)
    return await asyncio.wait_for(submit, runtime.config.limits.request_timeout_s)


@prediction
async def infer(request: Request, runtime: Runtime) -> Response:
    engine, job = await parse_inference(request, runtime)
    if job.stream:
        from .streaming import tgi_stream

        return StreamingResponse(tgi_stream(runtime, engine, job), media_type="text/event-stream")
    outputs = await run_batched(runtime, engine, job, engine.predict)
    return JSONResponse(engine.shape(outputs, job.single, job.params))


async def health(request: Request) -> Response:
    return JSONResponse(request.app.state.runtime.info())


async def ready(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if runtime.status == "ready":
        return JSONResponse({"status": "ready"})
    message = {
        "loading": "the model is loading",
        "draining": "the server is shutting down",
        "failed": f"the model failed to load: {runtime.error}",
    }[runtime.status]
    return error_response(Busy(message))


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.state.runtime.config))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no such endpoint: {request.method} {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message, "error_type": "not_found"}, exc.status_code, exc.headers)


def create_app(runtime: Runtime, *, load: bool = True) -> Starlette:
    from .openai_routes import openai_routes

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.batcher.start()
        loading = asyncio.create_task(runtime.load()) if load else None
        app.state.loading = loading
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                loading.cancel()
            await runtime.batcher.stop()

    routes = [
        Route("/", infer, methods=["POST"]),
        Route("/predict", infer, methods=["POST"]),
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/ready", ready, methods=["GET", "HEAD"]),
        Route("/info", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *openai_routes(runtime.config, prediction),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.runtime = runtime
    return app


def serve(config: RuntimeConfig, loader: Loader) -> int:
    """Run until SIGTERM/SIGINT (drained) or a failed load; the exit status."""
    runtime = Runtime(config, loader)
    server = DrainingServer(
        uvicorn.Config(
            create_app(runtime),
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.limits.drain_timeout_s) + 1,
            backlog=2048,
            timeout_keep_alive=75,
        ),
        runtime,
    )
    log.info("listening on http://%s:%d (loading the model)", config.host, config.port)
    server.run()
    log.info("stopped")
    return 1 if runtime.error else 0


class DrainingServer(uvicorn.Server):
    """uvicorn's Server whose first SIGTERM/SIGINT drains before it stops (a second one stops
    at once); it also stops when the model fails to load."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Future[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.runtime.draining or self.should_exit or self._loop is None:
            super().handle_exit(sig, frame)
            return
        log.info("received %s: draining", signal.Signals(sig).name)
        self.runtime.draining = True
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        async def drain() -> None:
            await self.runtime.drain(self.runtime.config.limits.drain_timeout_s)
            self.should_exit = True

        self._drain = asyncio.ensure_future(drain())

    async def on_tick(self, counter: int) -> bool:
        if self.runtime.error:
            self.should_exit = True
        return await super().on_tick(counter)
