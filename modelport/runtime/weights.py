"""The pinned weights: found in MODEL_PATH or the Hugging Face cache, downloaded unless offline."""

from __future__ import annotations

import logging
import os
import re

from .config import ConfigError, RuntimeConfig

log = logging.getLogger("run_inference")
OFF_VALUES = ("", "0", "false", "no", "off")
# Formats run_inference.py never loads; skipped when downloading.
IGNORED_PATTERNS = [
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "coreml/*",
    "*.gguf",
    "tf_model*",
    "flax_model*",
    "rust_model*",
]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in OFF_VALUES


def ignore_patterns(files: list[str]) -> list[str]:
    """What not to download of a repo holding `files`: formats the runtime never loads, and
    .bin/.pt duplicates of safetensors weights in the same folder. The Dockerfile's
    `hf download --exclude` list is rendered from this too."""
    ignore = list(IGNORED_PATTERNS)
    with_safetensors = {os.path.dirname(f) for f in files if f.endswith(".safetensors")}
    for name in files:
        if name.endswith((".bin", ".pt", ".pth")) and os.path.dirname(name) in with_safetensors:
            ignore.append(re.sub(r"([*?\[])", r"[\1]", name))
    return ignore


def download(config: RuntimeConfig) -> str:
    """Fetch the pinned revision into the HF cache; a token comes from HF_TOKEN(_PATH)."""
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(config.model_id, revision=config.revision)
    ignore = ignore_patterns(files)
    path = snapshot_download(config.model_id, revision=config.revision, ignore_patterns=ignore)
    log.info("downloaded %s@%s to %s", config.model_id, config.revision, path)
    return str(path)


def model_path(config: RuntimeConfig) -> str:
    """The model folder: MODEL_PATH, else the pinned revision in the HF cache, downloaded
    unless offline. The bundle and the benchmark worker both find weights this way."""
    if config.model_path:
        if not os.path.isdir(config.model_path):
            raise ConfigError(f"the model path {config.model_path!r} is not a directory")
        return config.model_path
    from huggingface_hub import snapshot_download

    try:
        return str(
            snapshot_download(config.model_id, revision=config.revision, local_files_only=True)
        )
    except Exception as exc:
        if offline():
            raise ConfigError(
                f"{config.model_id}@{config.revision} is not in the Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and HF_HUB_OFFLINE is "
                f"set (a bundle fetches it with `python run_inference.py --download`; "
                f"{type(exc).__name__})"
            ) from None
    return download(config)
