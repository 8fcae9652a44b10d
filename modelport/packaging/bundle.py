"""Render the bundle from model facts and options.

SPEC's five files: Dockerfile, requirements.txt, module.yaml and README.md are rendered from
templates; run_inference.py is `modelport/runtime/run_inference.py` verbatim, and the rest of
the runtime package ships beside it as `modelport_runtime/` (RUNTIME_PACKAGE), also verbatim.

Every value that comes from the model (description, license, tags, labels, even the repo id)
is escaped for the file it lands in by a filter of the Jinja environment: `yaml` (a JSON
scalar or flow collection, which is YAML), `docker` (a double-quoted Dockerfile word),
`comment` (one line), `md` (one line of Markdown text) and `sh` (a shell word). Templates
never place a raw value; the runtime's code ships unchanged and holds no model metadata.
"""

from __future__ import annotations

import html
import json
import math
import re
import shlex
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from modelport import __version__, runtime
from modelport.core.errors import UnsupportedModel
from modelport.core.quantity import format_memory
from modelport.packaging import versions
from modelport.packaging.catalog import GENERATIVE_TASKS, SUPPORTED_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.memory import MemoryEstimate, estimate_memory
from modelport.packaging.options import OPTIMIZATION_LEVELS, GenerateOptions
from modelport.runtime.config import Limits, Optimization, RuntimeConfig
from modelport.runtime.params import parameters_for
from modelport.runtime.weights import ignore_patterns

BUNDLE_FILES = ("Dockerfile", "requirements.txt", "run_inference.py", "module.yaml", "README.md")
# SPEC's five, then the build context's allow-list (not in SPEC; additive, like the runtime).
RENDERED_FILES = ("Dockerfile", "requirements.txt", "module.yaml", "README.md", ".dockerignore")
TEMPLATES = Path(__file__).parent / "templates"
RUNTIME_SOURCE = Path(runtime.__file__).parent
RUNTIME_PACKAGE = "modelport_runtime"
API_VERSION = "modelport/v1"
MANIFEST_VERSION = 1
PORT = 8080
HF_ENDPOINT = "https://huggingface.co"  # the Dockerfile's ARG default
APP_UID = 10001
MiB = 2**20

_CONTEXT = "My name is Sarah and I live in London."
EXAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "text-classification": {"inputs": "I love this!"},
    "token-classification": {"inputs": _CONTEXT},
    "question-answering": {"inputs": {"question": "Where do I live?", "context": _CONTEXT}},
    "fill-mask": {"inputs": "Paris is the [MASK] of France."},
    "feature-extraction": {"inputs": ["The first sentence.", "The second sentence."]},
    "sentence-similarity": {
        "inputs": {
            "source_sentence": "That is a happy person",
            "sentences": ["That is a happy dog", "Today is a sunny day"],
        }
    },
    "text-generation": {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 32}},
    "text2text-generation": {"inputs": "Translate English to German: How old are you?"},
    "summarization": {"inputs": "The tower is 324 metres tall, about the same height as an "
                      "81-storey building, and the tallest structure in Paris."},
    "translation": {"inputs": "How old are you?"},
    "zero-shot-classification": {
        "inputs": "I want to book a flight to Lisbon",
        "parameters": {"candidate_labels": ["travel", "cooking", "sports"]},
    },
    "image-classification": {"inputs": "<base64-encoded image bytes>"},
}  # fmt: skip
# How InferenceClient calls each task (the README's example).
CLIENT_EXAMPLES: dict[str, str] = {
    "text-classification": 'client.text_classification("I love this!")',
    "token-classification": 'client.token_classification("My name is Sarah and I live in London.")',
    "question-answering": (
        'client.question_answering(question="Where do I live?",\n'
        '                          context="My name is Sarah and I live in London.")'
    ),
    "fill-mask": "client.fill_mask({masked!r})",
    "feature-extraction": 'client.feature_extraction(["The first sentence.", "The second."])',
    "sentence-similarity": (
        'client.sentence_similarity("That is a happy person",\n'
        '                           other_sentences=["That is a happy dog", "Today is sunny"])'
    ),
    "text-generation": 'client.text_generation("Once upon a time", max_new_tokens=32)',
    "text2text-generation": 'client.text_generation("How old are you?", max_new_tokens=32)',
    "summarization": 'client.summarization("The tower is 324 metres tall, the tallest in Paris.")',
    "translation": 'client.translation("How old are you?")',
    "zero-shot-classification": (
        'client.zero_shot_classification("I want to book a flight",\n'
        '                                candidate_labels=["travel", "cooking", "sports"])'
    ),
    "image-classification": 'client.image_classification("cat.jpg")',
}
_ANGLE_MASK_MODELS = ("roberta", "xlm-roberta", "camembert", "bart", "longformer", "mpnet")


# ---------------------------------------------------------------- escaping filters

_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# Characters PyYAML refuses or folds even inside a double-quoted scalar.
_YAML_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_MD_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def one_line(value: Any, limit: int | None = None) -> str:
    """Text on one line: line breaks become spaces, other control characters go, runs collapse."""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))
    text = re.sub(r"\s+", " ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def yaml_value(value: Any) -> str:
    """A YAML scalar or flow collection: JSON, with what PyYAML would refuse or fold escaped."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return _YAML_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def docker_quote(value: Any, limit: int | None = None) -> str:
    """A double-quoted Dockerfile word (ENV/LABEL) with no newline and no variable expansion.

    Backslashes are dropped rather than escaped: hadolint's parser reads `\\\\"` as an escaped
    quote, so no escaping of them lints clean.
    """
    text = one_line(value, limit).replace("\\", "")
    text = text.replace('"', '\\"').replace("$", "\\$")
    return f'"{text}"'


def md_line_start(text: str) -> str:
    """Escape what would make a line start a list, quote, heading or rule."""
    return "\\" + text if re.match(r"[-=]|\d+[.)]", text) else text


def md_text(value: Any, limit: int = 200) -> str:
    """One line of Markdown that renders as the literal text: no HTML, links or emphasis."""
    text = html.escape(one_line(value, limit), quote=False)
    return md_line_start(_MD_SPECIALS.sub(r"\\\1", text))


def k8s_memory(nbytes: int) -> str:
    """A Kubernetes quantity in whole Mi, rounded up."""
    return f"{math.ceil(nbytes / MiB)}Mi"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - nothing here is HTML; each filter escapes for its file
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        yaml=yaml_value,
        docker=docker_quote,
        comment=one_line,
        md=md_text,
        sh=lambda value: shlex.quote(str(value)),
        memory=format_memory,
        md_code=lambda value: f"`{value}`",
    )
    return env


# ---------------------------------------------------------------- context


def engine_kind(task: str) -> str:
    """How run_inference.py serves a task: pipeline, question-answering, seq2seq or embeddings."""
    how = SUPPORTED_TASKS.get(task)
    if how is None:
        supported = ", ".join(sorted(SUPPORTED_TASKS))
        raise UnsupportedModel(
            f"task {task!r} is not supported; supported tasks: {supported}", {"task": task}
        )
    return {
        "model:AutoModelForQuestionAnswering": "question-answering",
        "model:AutoModelForSeq2SeqLM": "seq2seq",
    }.get(how, how)


def uses_sentence_transformers(facts: ModelFacts) -> bool:
    return facts.library_name == "sentence-transformers" or "sentence-transformers" in (
        facts.tags or []
    )


def runtime_loader(facts: ModelFacts) -> str:
    """module.yaml's model.loader: how the runtime loads this model."""
    kind = engine_kind(facts.task)
    if kind == "embeddings" and uses_sentence_transformers(facts):
        return "sentence-transformers"
    return SUPPORTED_TASKS[facts.task]


def runtime_config(facts: ModelFacts, options: GenerateOptions) -> RuntimeConfig:
    """What the bundle's runtime reads from module.yaml (the benchmark loads the model so)."""
    settings = options.optimization()
    return RuntimeConfig(
        model_id=facts.repo_id,
        revision=facts.revision,
        task=facts.task,
        loader=runtime_loader(facts),
        optimization_level=options.optimization_level,
        optimization=Optimization(**settings.to_dict()),
        max_batch_size=options.batch_size,
        max_delay_ms=options.max_delay_ms,
        port=PORT,
    )


def image_name(repo_id: str) -> str:
    """A DNS-1123 label (also a valid image name) derived from the repo id."""
    name = re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")
    return name[:63].rstrip("-") or "model"


def _labels(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        return []
    return [str(label)[:100] for label in list(id2label.values())[:50]]


def _example_body(facts: ModelFacts) -> dict[str, Any]:
    body = json.loads(json.dumps(EXAMPLE_BODIES[facts.task]))
    if facts.task == "fill-mask" and (facts.model_type or "").startswith(_ANGLE_MASK_MODELS):
        body["inputs"] = body["inputs"].replace("[MASK]", "<mask>")
    return body


def bundle_context(facts: ModelFacts, options: GenerateOptions) -> dict[str, Any]:
    kind = engine_kind(facts.task)
    settings = options.optimization()
    sentence_transformers = kind == "embeddings" and uses_sentence_transformers(facts)
    estimate: MemoryEstimate = estimate_memory(facts, options)
    memory_request = options.memory or k8s_memory(estimate.recommended_bytes)
    memory_bytes = options.memory_bytes or estimate.recommended_bytes
    body = _example_body(facts)
    inputs = body["inputs"]
    example_input = inputs if isinstance(inputs, str) else json.dumps(inputs)
    if facts.task == "image-classification":
        example_input = "cat.jpg"
    return {
        "facts": facts,
        "options": options,
        "model_id": facts.repo_id,
        "revision": facts.revision,
        "task": facts.task,
        "kind": kind,
        "generates": facts.task in GENERATIVE_TASKS,
        "sentence_transformers": sentence_transformers,
        "runtime_files": list(runtime_sources()),
        "runtime_package": RUNTIME_PACKAGE,
        "loader": runtime_loader(facts),
        "level": options.optimization_level,
        "level_description": OPTIMIZATION_LEVELS[options.optimization_level],
        "settings": settings.to_dict(),
        "batch_size": options.batch_size,
        "max_delay_ms": options.max_delay_ms,
        "port": PORT,
        "uid": APP_UID,
        "limits": Limits(),
        "parameter_names": sorted(
            parameters_for(facts.task, sentence_transformers=sentence_transformers).model_fields
        ),
        "requirements": versions.requirements(
            facts.task, gpu=options.gpu, backend=settings.backend
        ),
        "python_version": versions.PYTHON_VERSION,
        "base_image": versions.CUDA_IMAGE if options.gpu else versions.PYTHON_IMAGE,
        "base_image_tag": versions.CUDA_IMAGE_TAG if options.gpu else versions.PYTHON_IMAGE_TAG,
        "cuda_python_version": versions.CUDA_PYTHON_VERSION,
        "cuda_driver_min": versions.CUDA_DRIVER_MIN,
        "cuda_version": versions.CUDA_VERSION,
        "compiles": settings.compile,
        "hf_endpoint": HF_ENDPOINT,
        "download_excludes": ignore_patterns(facts.files),
        "measured": None if options.gpu else measured_image(facts),
        "torch_version": versions.torch_pin(options.gpu),
        "torch_index_url": versions.TORCH_CPU_INDEX_URL,
        "api_version": API_VERSION,
        "manifest_version": MANIFEST_VERSION,
        "generator": f"modelport {__version__}",
        "image_name": image_name(facts.repo_id),
        "image_title": f"modelport: {facts.repo_id}",
        "description": (facts.description or "")[:1000],
        "tags": [str(tag)[:100] for tag in (facts.tags or [])[:50]],
        "labels": _labels(facts.config or {}),
        "estimate": estimate,
        "memory_request": memory_request,
        "memory_limit": memory_request,
        "docker_memory": f"{math.ceil(memory_bytes / MiB)}m",
        "cpu_request": "2" if options.gpu else "1",
        "cpu_limit": "4" if options.gpu else "2",
        "gpu_count": 1 if options.gpu else 0,
        "example_body": json.dumps(body),
        "client_example": CLIENT_EXAMPLES[facts.task].format(masked=body["inputs"]),
        "openai_routes": sentence_transformers or facts.task == "text-generation",
        "example_input": example_input,
    }


@cache
def _measurements() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "measured_images.json").read_text())


def measured_image(facts: ModelFacts) -> dict[str, Any] | None:
    """What tests/containers measured for this task family's CPU image (size, cold start)."""
    data = _measurements()
    if facts.repo_id in data["models"]:
        entry = data["models"][facts.repo_id]
        what = "this model's image"
    elif facts.task in data["tasks"]:
        entry = data["tasks"][facts.task]
        what = f"the image of a tiny {facts.task} test model"
    else:
        return None
    return {"where": data["where"], "what": what, **entry}


@cache
def runtime_sources() -> dict[str, str]:
    """The runtime's files as the bundle ships them: run_inference.py and the package beside it."""
    entry = RUNTIME_SOURCE / "run_inference.py"
    files = {entry.name: entry.read_text(encoding="utf-8")}
    for path in sorted(RUNTIME_SOURCE.glob("*.py")):
        if path != entry:
            files[f"{RUNTIME_PACKAGE}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def render_bundle(
    facts: ModelFacts, options: GenerateOptions, benchmark: dict[str, Any] | None = None
) -> dict[str, str]:
    """SPEC's five files first, then the runtime package's files, keyed by relative path.
    `benchmark`: the provenance of options taken from a benchmark (generate's fromBenchmark)."""
    context = {**bundle_context(facts, options), "benchmark": benchmark}
    env = environment()
    rendered = {name: env.get_template(f"{name}.j2").render(context) for name in RENDERED_FILES}
    sources = runtime_sources()
    files = {name: rendered.get(name) or sources[name] for name in BUNDLE_FILES}
    files.update((name, text) for name, text in rendered.items() if name not in files)
    files.update((name, text) for name, text in sources.items() if name not in files)
    return files
