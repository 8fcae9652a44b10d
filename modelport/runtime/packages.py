"""Trim the installed packages of a bundle's image and byte-compile what the server imports.

Run by the Dockerfile's package layer right after `pip install --no-compile`, as a plain
script (it imports nothing from the runtime, which is copied in a later layer):

  python packages.py --trim --served [--keep-torch-headers]
  python packages.py --model-type bert      (a separate small layer per model type)

pip byte-compiles every module it installs, about 200 MB for torch, transformers, sympy,
numpy and networkx, of which the server imports a fraction; without byte code the imports
it does make cost ~14 s more at every start (a non-root server cannot write it). So packages
are installed without it and this script imports what the server imports, writing byte code
for exactly those modules. It also drops parts of torch a server never loads: C++ test
binaries, and the C++ headers unless torch.compile runs (its CPU backend compiles against them).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import shutil
import sys
from pathlib import Path

# What the runtime imports before and while it serves, in any task (module names; a name
# whose package is not installed, such as PIL for text-only bundles, is skipped).
SERVED_MODULES = (
    "torch",
    "numpy",
    "tokenizers",
    "safetensors.torch",
    "huggingface_hub",
    "transformers",
    "transformers.modeling_utils",
    "transformers.modeling_layers",
    "transformers.masking_utils",
    "transformers.generation",
    "transformers.generation.utils",
    "transformers.generation.continuous_batching",
    "transformers.generation.candidate_generator",
    "transformers.tokenization_utils_fast",
    "transformers.tokenization_python",
    "transformers.processing_utils",
    "transformers.feature_extraction_utils",
    "transformers.image_processing_utils",
    "transformers.models.auto",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.feature_extraction_auto",
    "transformers.models.auto.image_processing_auto",
    "transformers.models.auto.processing_auto",
    "transformers.models.auto.video_processing_auto",
    "transformers.pipelines",
    "PIL.Image",
    "pydantic",
    "pydantic.main",
    "pydantic.fields",
    "pydantic.json_schema",
    "pydantic.functional_validators",
    "pydantic._internal._generate_schema",
    "pydantic._internal._model_construction",
    "annotated_types",
    "starlette.applications",
    "starlette.routing",
    "starlette.responses",
    "uvicorn",
    "uvicorn.main",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.loops.uvloop",
    "httptools",
    "uvloop",
    "orjson",
    "prometheus_client",
    "psutil",
    "yaml",
    "tqdm.contrib.logging",
    "onnxruntime",  # the exported levels' runtimes, where installed
    "openvino",
)
# Importing them here must not report usage either (this runs before the image's ENV).
TELEMETRY_OPT_OUTS = ("HF_HUB_DISABLE_TELEMETRY", "ORT_DISABLE_TELEMETRY", "DO_NOT_TRACK")
TORCH_UNUSED_DIRS = ("test", "share")  # C++ test binaries, CMake files
TORCH_KEPT_BINARIES = ("torch_shm_manager",)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def import_all(names: list[str]) -> list[str]:
    """Import each module (writing its byte code); returns the ones that failed."""
    failed = []
    for name in names:
        if not _installed(name):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional module that needs what is not installed
            failed.append(f"{name}: {type(exc).__name__}")
    return failed


def model_modules(model_type: str) -> list[str]:
    """Every module of the model's own transformers package (configuration, modeling,
    tokenization, image processing)."""
    try:
        from transformers.models.auto.configuration_auto import model_type_to_module_name
    except ImportError:
        return []
    package = f"transformers.models.{model_type_to_module_name(model_type)}"
    try:
        found = importlib.import_module(package)
    except ImportError:
        return []
    paths = getattr(found, "__path__", None) or []
    return [package] + [f"{package}.{info.name}" for info in pkgutil.iter_modules(paths)]


def trim_torch(keep_headers: bool) -> int:
    """Remove torch's test binaries (and its headers unless kept); returns bytes freed."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return 0
    root = Path(next(iter(spec.submodule_search_locations)))
    doomed = [root / name for name in TORCH_UNUSED_DIRS]
    if not keep_headers:
        doomed.append(root / "include")
    bin_dir = root / "bin"
    if bin_dir.is_dir():
        doomed += [path for path in bin_dir.iterdir() if path.name not in TORCH_KEPT_BINARIES]
    freed = 0
    for path in doomed:
        if path.is_dir():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.is_file():
            freed += path.stat().st_size
            path.unlink()
    return freed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trim", action="store_true", help="remove torch's test binaries")
    parser.add_argument(
        "--keep-torch-headers",
        action="store_true",
        help="with --trim, keep torch's C++ headers (torch.compile on CPU compiles against them)",
    )
    parser.add_argument(
        "--served", action="store_true", help="byte-compile what the server imports in any task"
    )
    parser.add_argument(
        "--model-type", default="", help="byte-compile the transformers package of this model type"
    )
    args = parser.parse_args(argv)
    sys.dont_write_bytecode = False  # the image sets PYTHONDONTWRITEBYTECODE for the server
    for name in TELEMETRY_OPT_OUTS:
        os.environ.setdefault(name, "1")
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    report = []
    if args.trim:
        freed = trim_torch(args.keep_torch_headers)
        kept = " (headers kept)" if args.keep_torch_headers else ""
        report.append(f"removed {freed / 1e6:.0f} MB of torch's tests and tools{kept}")
    names = list(SERVED_MODULES) if args.served else []
    if args.model_type:
        names += model_modules(args.model_type)
    before = len(sys.modules)
    failed = import_all(names)
    if names:
        report.append(f"byte-compiled {len(sys.modules) - before} imported modules")
    if failed:
        report.append(f"not importable: {', '.join(failed)}")
    print("packages: " + "; ".join(report or ["nothing to do"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
