"""The LitServe side of bench/bundle_server.py: LitServe serving the bundle's own engine.

    .venv/bin/python bench/_litserve_app.py --bundle DIR --model DIR --port N
        [--threads 2] [--max-batch 8] [--batch-timeout 0.005] [--fast-queue]

`POST /` takes `{"inputs": "<sentence>"}` and answers the embedding (a JSON list of floats),
as the bundle's server does for a single input; `GET /health` answers 200 once the inference
worker has loaded the model. LitServe's own batching: up to --max-batch requests that arrive
within --batch-timeout seconds go to one `predict`. Listens on 127.0.0.1 only.

LitServe's processes: this one (the LitServer, waiting), a multiprocessing Manager holding the
queues, one inference worker (spawned, loads the engine) and one uvicorn API server (forked).
A request goes API server -> Manager queue -> worker -> Manager queue -> API server (with
--fast-queue the responses go over ZeroMQ IPC sockets instead). Start this in its own process
group and stop the group: SIGTERM kills this process at once and leaves the others orphaned.

No `from __future__ import annotations` here: LitServe builds its FastAPI route from the
annotations of decode_request and encode_response, at runtime, in its own module's namespace.
"""

import argparse
import os
from pathlib import Path
from typing import Any

# FastAPI >= 0.16x carries OpenTelemetry hooks: keep them off whatever the environment says
# (only the no-op API is installed, so nothing could export anyway). LitServe itself sends
# nothing anywhere; these are set before fastapi is imported.
os.environ["OTEL_SDK_DISABLED"] = "true"
os.environ["FASTAPI_OTEL_AUTO_CONFIGURE"] = "false"
for _signal in ("TRACES", "METRICS", "LOGS"):
    os.environ[f"OTEL_{_signal}_EXPORTER"] = "none"

import litserve as ls  # noqa: E402  (after the environment above)
from fastapi import HTTPException  # noqa: E402

HOST = "127.0.0.1"


class EngineAPI(ls.LitAPI):
    """modelport's engine for the bundle in `bundle` (its module.yaml), loaded from `model`."""

    def __init__(
        self, bundle: str, model: str, threads: int, max_batch: int, batch_timeout: float
    ) -> None:
        super().__init__(max_batch_size=max_batch, batch_timeout=batch_timeout, api_path="/")
        self.bundle, self.model, self.threads = bundle, model, threads
        self.engine: Any = None
        self.params: Any = None

    def setup(self, device: str) -> None:
        # In the inference worker (a spawned process): torch is imported here only.
        from modelport.runtime.backend import set_threads
        from modelport.runtime.config import load_manifest
        from modelport.runtime.engine import load_engine

        set_threads(self.threads)
        config = load_manifest(Path(self.bundle) / "module.yaml").with_env({})
        self.engine = load_engine(config, self.model)
        self.params = self.engine.Parameters()

    def decode_request(self, request: dict[str, Any]) -> str:
        from modelport.runtime.errors import InputError

        try:
            text: str = self.engine.check(request.get("inputs"), self.params)
        except InputError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return text

    def predict(self, x: list[str]) -> list[list[float]]:
        with self.engine.backend.running():
            outputs: list[list[float]] = self.engine.predict(x, self.params)
        return outputs

    def encode_response(self, output: list[float]) -> list[float]:
        return output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True, help="the bundle folder (module.yaml)")
    parser.add_argument("--model", required=True, help="the model folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ for the responses")
    args = parser.parse_args()
    api = EngineAPI(args.bundle, args.model, args.threads, args.max_batch, args.batch_timeout)
    server = ls.LitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=1,
        timeout=60,
        fast_queue=args.fast_queue,
    )
    # One API server process, as the bundle runs one uvicorn; the same uvicorn settings as
    # the bundle's server (modelport/runtime/server.py): no access log, backlog, keep-alive.
    server.run(
        host=HOST,
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
        access_log=False,
        backlog=2048,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
