"""Model facts: what we know about a Hub model, from the Hub or the local HF cache.

`resolve` asks the Hub through huggingface_hub (`hub.py`) and falls back to the local cache
(`offline.py`) when offline or when the Hub cannot be reached; both end in `complete`, which
decides the task and the description the same way. huggingface_hub is only imported there,
so this module stays light for the API process.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from modelport.core.errors import InvalidModel, UnsupportedModel
from modelport.core.modelref import REPO_ID_RE, REVISION_RE, ModelRef, hub_endpoint
from modelport.packaging.catalog import SUPPORTED_TASKS, normalize_task, task_from_architectures

DESCRIPTION_LIMIT = 300


@dataclass
class ModelFacts:
    repo_id: str
    revision: str  # the pinned commit sha (40 hex)
    task: str  # one of catalog.SUPPORTED_TASKS
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str = ""
    license: str | None = None
    gated: bool = False
    parameters: int | None = None  # total parameter count (safetensors metadata)
    dtype: str | None = None  # dominant stored dtype, e.g. "F32"
    config: dict[str, Any] = field(default_factory=dict)
    architectures: list[str] = field(default_factory=list)
    model_type: str | None = None
    source: Literal["hub", "cache"] = "hub"
    local_path: str | None = None  # snapshot folder when the files are on disk
    files: list[str] = field(default_factory=list)  # repo file paths (Hub siblings / snapshot)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class HubUnreachable(Exception):
    """The Hub could not be asked (network down, timeout, offline mode, 5xx): use the cache."""


def resolve(
    ref: ModelRef,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    offline: bool | None = None,
) -> ModelFacts:
    """Facts for `ref`, pinned to a commit: from the Hub, or from the local cache when offline.

    endpoint defaults to `HF_ENDPOINT`; token to the `HF_TOKEN` setting ("" sends no token);
    offline to `HF_HUB_OFFLINE`, read now. Raises ModelNotFound, GatedModel, UnsupportedModel
    or InvalidModel with a message that names the model and says what to do.
    """
    from modelport.packaging import hub
    from modelport.packaging import offline as cache

    _check(ref)
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    if offline is None:
        offline = offline_from_env()
    if offline:
        reason = "offline mode is on (HF_HUB_OFFLINE=1)" if offline_from_env() else "offline"
        return cache.read_facts(ref, reason=f"the Hub is not asked: {reason}")
    if token is None:
        from modelport.core.settings import get_settings

        token = get_settings().HF_TOKEN
    try:
        return hub.fetch_facts(ref, endpoint=endpoint, token=token or None)
    except HubUnreachable as exc:
        return cache.read_facts(ref, reason=f"the Hub at {endpoint} is unreachable ({exc})")


def _check(ref: ModelRef) -> None:
    """Refs made without parse_model_url still must not reach paths or URLs unvalidated."""
    repo_id = ref.repo_id
    if (
        not REPO_ID_RE.match(repo_id)
        or ".." in repo_id
        or "--" in repo_id
        or repo_id.endswith(".git")
    ):
        raise InvalidModel(f"'{ref.repo_id}' is not a Hub repo id (<org>/<name>).", {})
    if ref.revision is not None and (not REVISION_RE.match(ref.revision) or ".." in ref.revision):
        raise InvalidModel(f"'{ref.revision}' is not a branch, tag or commit.", {})


def offline_from_env() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (huggingface_hub reads them at import)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def complete(facts: ModelFacts, card: dict[str, Any], card_text: str) -> ModelFacts:
    """Fill in what both sources derive alike: architectures, task, license, description."""
    config = facts.config
    facts.architectures = list(config.get("architectures") or [])
    facts.model_type = config.get("model_type")
    facts.license = facts.license or _license(card, facts.tags)
    facts.task = decide_task(
        facts.repo_id, facts.pipeline_tag, facts.library_name, facts.architectures
    )
    facts.description = facts.description or describe(card, card_text)
    return facts


def decide_task(
    repo_id: str, pipeline_tag: str | None, library_name: str | None, architectures: list[str]
) -> str:
    """The card's pipeline_tag; else sentence-transformers' task; else the config's architecture.

    A pipeline_tag that names a task we do not package is final: the architecture is not
    consulted then (a text-to-speech `VitsModel` would otherwise pass for feature-extraction).
    """
    tag = normalize_task(pipeline_tag)
    if tag in SUPPORTED_TASKS:
        return tag
    supported = ", ".join(SUPPORTED_TASKS)
    if tag:
        raise UnsupportedModel(
            f"Model '{repo_id}' is a '{tag}' model, which modelport cannot package. "
            f"Supported tasks: {supported}.",
            {"model": repo_id, "task": tag, "supportedTasks": list(SUPPORTED_TASKS)},
        )
    if library_name == "sentence-transformers":
        return "sentence-similarity"
    task = task_from_architectures(architectures)
    if task is None:
        raise UnsupportedModel(
            f"Cannot tell the task of model '{repo_id}': its model card has no pipeline_tag and "
            f"its config.json names no known architecture ({', '.join(architectures) or 'none'})."
            f" Supported tasks: {supported}.",
            {
                "model": repo_id,
                "architectures": architectures,
                "supportedTasks": list(SUPPORTED_TASKS),
            },
        )
    return task


def _license(card: dict[str, Any], tags: list[str]) -> str | None:
    value = card.get("license")
    if isinstance(value, str) and value:
        return value
    return next((t.removeprefix("license:") for t in tags if t.startswith("license:")), None)


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"<[^>]+>|[*_`]{1,3}")


def describe(card: dict[str, Any], card_text: str) -> str:
    """A short description: the card's `description`, else the first prose paragraph of it."""
    given = card.get("description") or card.get("model_description")
    if isinstance(given, str) and given.strip():
        return _shorten(given)
    paragraph: list[str] = []
    in_code = False
    for line in card_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        if in_code or stripped.startswith(("#", "<!--", "|", ">", "---", "[!")):
            if paragraph:
                break
            continue
        if not stripped:
            if paragraph:
                break
            continue
        text = _MARKUP.sub("", _LINK.sub(r"\1", stripped)).strip()
        if text:
            paragraph.append(text)
    return _shorten(" ".join(paragraph))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= DESCRIPTION_LIMIT:
        return text
    cut = text[: DESCRIPTION_LIMIT - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"
