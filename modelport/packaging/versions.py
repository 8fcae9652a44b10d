"""Pinned versions a bundle names: the ones installed and tested here, and the base images.

Bundles pin the direct runtime dependencies of run_inference.py; pip resolves the rest within
what these pins allow. The versions equal the ones this project's own environment runs, so
the bundle's code is tested against exactly what its requirements.txt installs.
"""

from __future__ import annotations

PYTHON_VERSION = "3.11"
# Base images, pinned by digest (the tag beside it says what the digest was taken for). The
# Dockerfile takes them as the default of ARG BASE_IMAGE, so a mirror or a newer patch release
# needs only `--build-arg BASE_IMAGE=...`. No registry is reachable where modelport is
# developed: the digests come from public Dockerfiles pinning these tags, not from a pull here.
# CPU: Debian-slim CPython, the same CPython minor as modelport's own environment.
PYTHON_IMAGE_TAG = "docker.io/library/python:3.11.7-slim-bookworm"
PYTHON_IMAGE_DIGEST = "sha256:d11b9bd5e49ea7401753d78f4d3b56f3aec952b85b49bcae88981f0452818e0b"
PYTHON_IMAGE = f"{PYTHON_IMAGE_TAG}@{PYTHON_IMAGE_DIGEST}"
# GPU: NVIDIA's CUDA base (cudart and the driver compatibility check NVIDIA_REQUIRE_CUDA, no
# libraries beyond it): torch's PyPI wheel brings its own CUDA 13.0 user-space as nvidia-*
# wheels, so a -runtime- image would only add a second copy of cuBLAS and friends. Its Python
# is Ubuntu 24.04's (3.12), in a virtualenv.
CUDA_VERSION = "13.0"
CUDA_DRIVER_MIN = "580"  # CUDA 13.0 needs an R580 or newer driver on the host
CUDA_IMAGE_TAG = "docker.io/nvidia/cuda:13.0.2-base-ubuntu24.04"
CUDA_IMAGE_DIGEST = "sha256:2ab6381d970b211fb93853796dc6707eb8a72575a375c422b17cf4d8b2641701"
CUDA_IMAGE = f"{CUDA_IMAGE_TAG}@{CUDA_IMAGE_DIGEST}"
CUDA_PYTHON_VERSION = "3.12"

TORCH_VERSION = "2.13.0"
# CPU bundles take torch's CPU-only wheel (about 200 MB instead of several GB of CUDA
# libraries) from PyTorch's own index (ARG TORCH_INDEX_URL); GPU bundles take the default PyPI
# wheel (CUDA 13.0), which brings its CUDA runtime as nvidia-* wheels, so the CUDA user-space
# always matches the torch pin and the host needs only a driver (CUDA_DRIVER_MIN or newer).
TORCH_CPU_LOCAL = "cpu"
TORCH_CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"

# Direct runtime dependencies of every run_inference.py (distribution name -> version).
RUNTIME_PINS: dict[str, str] = {
    "transformers": "5.24.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
    "huggingface_hub": "2.4.0",
    "numpy": "2.4.6",
    "prometheus_client": "0.26.0",
    "pydantic": "2.14.4",
    "pyyaml": "6.0.4",
    "orjson": "3.13.0",
    "starlette": "1.10.0",
    "uvicorn": "0.54.0",
    "httptools": "0.9.0",
    "uvloop": "0.23.0",
}

# The exported levels: the exporter (torch.onnx with onnxscript), then ONNX Runtime or OpenVINO.
ONNX_EXPORT_PINS: dict[str, str] = {"onnx": "1.23.2", "onnxscript": "0.7.2"}
BACKEND_PINS: dict[str, dict[str, str]] = {
    "onnxruntime": {**ONNX_EXPORT_PINS, "onnxruntime": "1.32.0"},
    # its wheel depends on openvino-telemetry: the Dockerfile uninstalls it after installing
    "openvino": {**ONNX_EXPORT_PINS, "openvino": "2026.4.1"},
}
TELEMETRY_PACKAGES = ("openvino-telemetry",)  # pulled in by a pin above; removed after install
PILLOW_PIN = ("pillow", "13.0.0")
# Seq2seq checkpoints such as Helsinki-NLP/opus-mt-* ship only a SentencePiece model and no
# tokenizer.json; their slow tokenizer needs this. Not installed in modelport's own
# environment (the test models have fast tokenizers): the one pin not exercised by tests.
SENTENCEPIECE_PIN = ("sentencepiece", "0.2.3")
UNTESTED_PINS = frozenset({SENTENCEPIECE_PIN[0]})

_SEQ2SEQ_TASKS = frozenset({"text2text-generation", "summarization", "translation"})
_IMAGE_TASKS = frozenset({"image-classification"})


def torch_pin(gpu: bool) -> str:
    """The torch version string for requirements.txt (CPU builds carry the +cpu local tag)."""
    return TORCH_VERSION if gpu else f"{TORCH_VERSION}+{TORCH_CPU_LOCAL}"


def task_extras(task: str) -> list[tuple[str, str]]:
    """Extra (name, version) pins a task needs beyond the common runtime. sentence-transformers
    models need none: the runtime reads their modules.json itself (runtime/sentence.py)."""
    extras: list[tuple[str, str]] = []
    if task in _IMAGE_TASKS:
        extras.append(PILLOW_PIN)
    if task in _SEQ2SEQ_TASKS:
        extras.append(SENTENCEPIECE_PIN)
    return extras


def requirements(task: str, *, gpu: bool, backend: str = "torch") -> list[tuple[str, str]]:
    """Every (name, version) a bundle pins, sorted by name (torch included: it loads the
    weights, and exports them for ONNX Runtime)."""
    pins = {"torch": torch_pin(gpu), **RUNTIME_PINS}
    pins.update(task_extras(task))
    pins.update(BACKEND_PINS.get(backend, {}))
    return sorted(pins.items(), key=lambda item: item[0].lower())
