"""What to serve and how: read from module.yaml and the environment at start-up.

module.yaml (beside run_inference.py, or MODULE_YAML) says the model, revision, task, loader,
batching, port, optimization settings and request limits; the environment may override the
deployment knobs (MODEL_ID, MODEL_REVISION, MODEL_PATH, MAX_BATCH_SIZE, MAX_BATCH_DELAY_MS,
PORT, HOST, LOG_LEVEL). Torch threads follow OMP_NUM_THREADS when set, else the container's
CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), else the CPUs this process may use.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SEQ2SEQ_OUTPUT_KEYS = {
    "text2text-generation": "generated_text",
    "summarization": "summary_text",
    "translation": "translation_text",
}
CGROUP = Path("/sys/fs/cgroup")


class ConfigError(ValueError):
    """module.yaml or the environment does not describe a servable model."""


@dataclass(frozen=True)
class Optimization:
    """What an optimization level means on one device (see module.yaml `optimization`)."""

    device: str = "cpu"
    dtype: str = "float32"
    attention: str = "sdpa"
    inference_mode: bool = True
    quantization: str = "none"
    compile: bool = False
    backend: str = "torch"  # or "onnxruntime" (onnx_backend.py), "openvino" (openvino_backend.py)

    @classmethod
    def from_manifest(cls, settings: Mapping[str, Any]) -> Optimization:
        return cls(
            device=str(settings.get("device", "cpu")),
            dtype=str(settings.get("dtype", "float32")),
            attention=str(settings.get("attention", "sdpa")),
            inference_mode=bool(settings.get("inferenceMode", True)),
            quantization=str(settings.get("quantization", "none")),
            compile=bool(settings.get("compile", False)),
            backend=str(settings.get("backend", "torch")),
        )


@dataclass(frozen=True)
class Limits:
    """Request limits: anything beyond them is a 413 or 422 naming the limit."""

    max_body_bytes: int = 16 * 2**20
    max_inputs_per_request: int = 256
    max_text_chars: int = 100_000
    max_new_tokens: int = 512
    default_max_new_tokens: int = 64
    max_queued_inputs: int = 4096
    request_timeout_s: float = 300.0
    drain_timeout_s: float = 30.0

    @classmethod
    def from_manifest(cls, limits: Mapping[str, Any]) -> Limits:
        names = {
            "maxBodyBytes": "max_body_bytes",
            "maxInputsPerRequest": "max_inputs_per_request",
            "maxTextChars": "max_text_chars",
            "maxNewTokens": "max_new_tokens",
            "defaultMaxNewTokens": "default_max_new_tokens",
            "maxQueuedInputs": "max_queued_inputs",
            "requestTimeoutSeconds": "request_timeout_s",
            "drainTimeoutSeconds": "drain_timeout_s",
        }
        values = {names[k]: v for k, v in limits.items() if k in names}
        return cls(**values)


@dataclass(frozen=True)
class RuntimeConfig:
    model_id: str
    revision: str
    task: str
    loader: str = "pipeline"
    optimization_level: str = "standard"
    optimization: Optimization = field(default_factory=Optimization)
    max_batch_size: int = 8
    max_delay_ms: float = 5.0
    host: str = "0.0.0.0"  # noqa: S104 - a container's server listens on every interface
    port: int = 8080
    model_path: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def sentence_transformers(self) -> bool:
        return self.loader == "sentence-transformers"

    def with_env(self, env: Mapping[str, str]) -> RuntimeConfig:
        """This configuration with the deployment knobs the environment sets."""
        changes: dict[str, Any] = {}
        for var, name, kind in (
            ("MODEL_ID", "model_id", str),
            ("MODEL_REVISION", "revision", str),
            ("MODEL_PATH", "model_path", str),
            ("MAX_BATCH_SIZE", "max_batch_size", int),
            ("MAX_BATCH_DELAY_MS", "max_delay_ms", float),
            ("PORT", "port", int),
            ("HOST", "host", str),
        ):
            value = env.get(var, "").strip()
            if value:
                try:
                    changes[name] = kind(value)
                except ValueError:
                    raise ConfigError(f"{var}={value!r} is not a valid {kind.__name__}") from None
        config = replace(self, **changes)
        config.check()
        return config

    def check(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"the batch size must be at least 1, not {self.max_batch_size}")
        if not (math.isfinite(self.max_delay_ms) and self.max_delay_ms >= 0):
            raise ConfigError(f"the batch delay must be 0 ms or more, not {self.max_delay_ms}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"the port must be from 1 to 65535, not {self.port}")


def load_manifest(path: Path) -> RuntimeConfig:
    """The configuration module.yaml describes (no environment applied)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        model = data["model"]
        batching = data.get("batching") or {}
        ports = data.get("ports") or [{}]
        optimization = data.get("optimization") or {}
        return RuntimeConfig(
            model_id=str(model["id"]),
            revision=str(model["revision"]),
            task=str(model["task"]),
            loader=str(model.get("loader", "pipeline")),
            optimization_level=str(optimization.get("level", "standard")),
            optimization=Optimization.from_manifest(optimization.get("settings") or {}),
            max_batch_size=int(batching.get("maxBatchSize", 8)),
            max_delay_ms=float(batching.get("maxDelayMs", 5)),
            port=int(ports[0].get("containerPort", 8080)),
            limits=Limits.from_manifest(data.get("limits") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a modelport manifest: {exc!r}") from None


def cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs the container's cgroup allows (quota / period), or None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def thread_count(env: Mapping[str, str], root: Path = CGROUP) -> int:
    """Torch intra-op threads: OMP_NUM_THREADS, else min(CPU quota rounded up, usable CPUs)."""
    value = env.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is not None:
        usable = min(usable, max(1, math.ceil(quota)))
    return max(1, usable)
