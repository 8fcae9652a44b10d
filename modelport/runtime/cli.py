"""The command line of run_inference.py: serve, one-shot --input, --download, --self-check."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import ConfigError, RuntimeConfig, load_manifest, thread_count
from .errors import InputError
from .weights import download, model_path

log = logging.getLogger("run_inference")
USAGE = """\
  python run_inference.py --serve                   serve HTTP (module.yaml says what and where)
  python run_inference.py --input 'some text'       print the prediction as JSON
  python run_inference.py --download                fetch the pinned weights into the HF cache
  python run_inference.py --self-check              quality gate vs float32 (exit 1: failed)
"""


def quiet_libraries() -> None:
    """No telemetry, progress bars or tokenizer fork warnings, before any of them is imported."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from .openvino_backend import block_telemetry

    block_telemetry()  # OpenVINO's converter would load openvino-telemetry on import


def parse_args(argv: list[str] | None, home: Path) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description="Serve one Hugging Face model (a modelport bundle).",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", action="store_true", help="serve HTTP until SIGTERM")
    mode.add_argument("--input", help="text, or JSON: an input, a list, or a whole request body")
    mode.add_argument("--download", action="store_true", help="download the pinned weights")
    mode.add_argument(
        "--self-check",
        action="store_true",
        help="agreement of the configured model with the float32 reference",
    )
    parser.add_argument("--parameters", help="JSON object of parameters for --input")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=Path(env("MODULE_YAML") or home / "module.yaml"),
        help="the bundle's module.yaml (default: beside run_inference.py)",
    )
    parser.add_argument("--model-path", default=None, help="a local model folder (env MODEL_PATH)")
    parser.add_argument("--host", default=None, help="bind address (env HOST; default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (env PORT; module.yaml)")
    parser.add_argument("--batch-size", type=int, default=None, help="env MAX_BATCH_SIZE")
    parser.add_argument("--max-delay-ms", type=float, default=None, help="env MAX_BATCH_DELAY_MS")
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> RuntimeConfig:
    config = load_manifest(args.manifest).with_env(os.environ)
    changes = {
        name: value
        for name, value in (
            ("model_path", args.model_path),
            ("host", args.host),
            ("port", args.port),
            ("max_batch_size", args.batch_size),
            ("max_delay_ms", args.max_delay_ms),
        )
        if value is not None
    }
    drain = os.environ.get("DRAIN_TIMEOUT_SECONDS", "").strip()
    if drain:
        try:
            changes["limits"] = replace(config.limits, drain_timeout_s=float(drain))
        except ValueError:
            raise ConfigError(f"DRAIN_TIMEOUT_SECONDS={drain!r} is not a number") from None
    config = replace(config, **changes)
    config.check()
    return config


def loader(config: RuntimeConfig) -> Any:
    from .backend import set_threads
    from .engine import load_engine

    def load() -> Any:
        threads = thread_count(os.environ)
        set_threads(threads)
        engine = load_engine(config, model_path(config))
        engine.backend.applied["threads"] = threads
        return engine

    return load


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    text = args.input
    if os.path.isfile(text):  # a local file: an image, or a text to read
        raw = Path(text).read_bytes()
        try:
            value: Any = raw.decode()
        except UnicodeDecodeError:
            value = raw
    else:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if not isinstance(value, (dict, list)):
            value = text
    body = value if isinstance(value, dict) and "inputs" in value else {"inputs": value}
    if args.parameters is not None:
        try:
            body["parameters"] = json.loads(args.parameters)
        except ValueError as exc:
            raise InputError(f"--parameters is not valid JSON: {exc}", 400) from None
    return body


def one_shot(config: RuntimeConfig, args: argparse.Namespace) -> int:
    from .protocol import parse_request

    engine = loader(config)()
    job = parse_request(request_body(args), engine)
    outputs: list[Any] = []
    size = config.max_batch_size
    with engine.backend.running():
        for start in range(0, len(job.items), size):
            outputs += engine.predict(job.items[start : start + size], job.params)
    print(json.dumps(engine.shape(outputs, job.single, job.params), ensure_ascii=False))
    return 0


def self_check(config: RuntimeConfig) -> int:
    from .engine import self_check as check

    engine = loader(config)()
    found = check(engine)
    print(json.dumps(found.to_dict()))
    return 0 if found.passed else 1


def main(argv: list[str] | None = None, home: Path | None = None) -> int:
    quiet_libraries()
    args = parse_args(argv, home or Path.cwd())
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = configure(args)
        if args.download:
            download(config)
            return 0
        if args.serve:
            from .server import serve

            return serve(config, loader(config))
        if args.self_check:
            return self_check(config)
        return one_shot(config, args)
    except ConfigError as exc:
        print(f"run_inference.py: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(json.dumps({"error": str(exc), "error_type": exc.error_type}), file=sys.stderr)
        return 2
