"""The tasks modelport can package, and how a model's task is recognised."""

from __future__ import annotations

# task -> how run_inference.py serves it ("pipeline" tasks use transformers.pipeline; the
# others use model classes directly because transformers 5 dropped their pipelines).
SUPPORTED_TASKS: dict[str, str] = {
    "text-classification": "pipeline",
    "token-classification": "pipeline",
    "question-answering": "model:AutoModelForQuestionAnswering",
    "fill-mask": "pipeline",
    "feature-extraction": "embeddings",
    "sentence-similarity": "embeddings",
    "text-generation": "pipeline",
    "text2text-generation": "model:AutoModelForSeq2SeqLM",
    "summarization": "model:AutoModelForSeq2SeqLM",
    "translation": "model:AutoModelForSeq2SeqLM",
    "zero-shot-classification": "pipeline",
    "image-classification": "pipeline",
}

# Tasks whose models generate tokens (output length is a parameter; timed per token).
GENERATIVE_TASKS = frozenset(
    {"text-generation", "text2text-generation", "summarization", "translation"}
)

# The transformers Auto class that loads each task's model (bundle and benchmark alike).
AUTO_CLASSES: dict[str, str] = {
    "text-classification": "AutoModelForSequenceClassification",
    "zero-shot-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "fill-mask": "AutoModelForMaskedLM",
    "feature-extraction": "AutoModel",
    "sentence-similarity": "AutoModel",
    "text-generation": "AutoModelForCausalLM",
    "text2text-generation": "AutoModelForSeq2SeqLM",
    "summarization": "AutoModelForSeq2SeqLM",
    "translation": "AutoModelForSeq2SeqLM",
    "image-classification": "AutoModelForImageClassification",
}

# Hub pipeline tags that are the same task under another name.
TASK_ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
}

# Architecture suffix -> task, for models whose card has no pipeline_tag.
ARCHITECTURE_SUFFIXES: list[tuple[str, str]] = [
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
    ("Model", "feature-extraction"),
]


def task_from_architectures(architectures: list[str]) -> str | None:
    for arch in architectures or []:
        for suffix, task in ARCHITECTURE_SUFFIXES:
            if arch.endswith(suffix):
                return task
    return None


def normalize_task(tag: str | None) -> str | None:
    if not tag:
        return None
    return TASK_ALIASES.get(tag, tag)
