"""Render the five bundle files from model facts and options.

Every value that comes from the model (description, license, tags, labels, even the repo id)
is escaped for the file it lands in by a filter of the Jinja environment: `py` (Python literal),
`yaml` (a JSON scalar or flow collection, which is YAML), `docker` (a double-quoted Dockerfile
word), `comment` (one line), `md` (one line of Markdown text) and `sh` (a shell word).
Templates never place a raw value.
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

from modelport import __version__
from modelport.core.errors import UnsupportedModel
from modelport.core.quantity import format_memory
from modelport.packaging import versions
from modelport.packaging.catalog import GENERATIVE_TASKS, SUPPORTED_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.memory import MemoryEstimate, estimate_memory
from modelport.packaging.options import OPTIMIZATION_LEVELS, GenerateOptions

BUNDLE_FILES = ("Dockerfile", "requirements.txt", "run_inference.py", "module.yaml", "README.md")
TEMPLATES = Path(__file__).parent / "templates"
API_VERSION = "modelport/v1"
MANIFEST_VERSION = 1
PORT = 8080
APP_UID = 10001
MAX_NEW_TOKENS_CAP = 512
DEFAULT_MAX_NEW_TOKENS = 64
MiB = 2**20

SEQ2SEQ_OUTPUT_KEYS = {
    "text2text-generation": "generated_text",
    "summarization": "summary_text",
    "translation": "translation_text",
}
_GENERATE_PARAMETERS = [
    "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p",
    "repetition_penalty", "no_repeat_ngram_size", "num_beams", "num_return_sequences",
]  # fmt: skip
# The parameters run_inference.py accepts per task (it rejects any other with 400).
TASK_PARAMETERS: dict[str, list[str]] = {
    "text-classification": ["top_k", "function_to_apply"],
    "token-classification": ["aggregation_strategy", "ignore_labels"],
    "fill-mask": ["top_k", "targets"],
    "zero-shot-classification": ["candidate_labels", "multi_label", "hypothesis_template"],
    "image-classification": ["top_k", "function_to_apply"],
    "question-answering": ["max_answer_len"],
    "feature-extraction": ["normalize"],
    "sentence-similarity": ["normalize"],
    "text-generation": [*_GENERATE_PARAMETERS, "return_full_text"],
    "text2text-generation": [*_GENERATE_PARAMETERS, "length_penalty", "early_stopping"],
    "summarization": [*_GENERATE_PARAMETERS, "length_penalty", "early_stopping"],
    "translation": [
        *_GENERATE_PARAMETERS, "length_penalty", "early_stopping", "src_lang", "tgt_lang",
    ],
}  # fmt: skip
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


def py_literal(value: Any) -> str:
    """A Python literal that evaluates to value (str, int, float, bool, None, list, dict)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite float in generated code")
        return repr(float(value))
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as a Python literal")


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
        py=py_literal,
        yaml=yaml_value,
        docker=docker_quote,
        comment=one_line,
        md=md_text,
        sh=lambda value: shlex.quote(str(value)),
        memory=format_memory,
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
        "output_key": SEQ2SEQ_OUTPUT_KEYS.get(facts.task),
        "sentence_transformers": sentence_transformers,
        "loader": "sentence-transformers" if sentence_transformers else SUPPORTED_TASKS[facts.task],
        "level": options.optimization_level,
        "level_description": OPTIMIZATION_LEVELS[options.optimization_level],
        "settings": settings.to_dict(),
        "batch_size": options.batch_size,
        "max_delay_ms": options.max_delay_ms,
        "port": PORT,
        "uid": APP_UID,
        "max_new_tokens_cap": MAX_NEW_TOKENS_CAP,
        "default_max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
        "parameter_names": TASK_PARAMETERS[facts.task],
        "requirements": versions.requirements(
            facts.task, gpu=options.gpu, sentence_transformers=sentence_transformers
        ),
        "python_version": versions.PYTHON_VERSION,
        "base_image": versions.PYTHON_IMAGE,
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
        "example_input": example_input,
    }


def render_bundle(facts: ModelFacts, options: GenerateOptions) -> dict[str, str]:
    """The five bundle files, keyed by file name."""
    context = bundle_context(facts, options)
    env = environment()
    return {name: env.get_template(f"{name}.j2").render(context) for name in BUNDLE_FILES}
