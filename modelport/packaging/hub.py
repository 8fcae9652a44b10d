"""Model facts from the Hub, through huggingface_hub only (no other host is contacted).

One `model_info` call pins the revision to a commit and gives the Hub's own facts; then
config.json and README.md are downloaded at that commit (into the hub cache, as
huggingface_hub always does). Hub errors become modelport errors that say what to do;
network trouble becomes `HubUnreachable`, which sends `resolve` to the local cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # huggingface_hub 2.x speaks httpx2, 1.x httpx
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import TransportError

from modelport.core.errors import GatedModel, InvalidModel, ModelNotFound
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import HubUnreachable, ModelFacts, complete
from modelport.packaging.hfcache import hub_cache_dir

TIMEOUT = 10.0  # seconds per Hub call; huggingface_hub's own client has no timeout


def fetch_facts(ref: ModelRef, *, endpoint: str, token: str | None) -> ModelFacts:
    """Facts from the Hub at `endpoint`, pinned to the commit `model_info` names."""
    api = HfApi(endpoint=endpoint, token=token or False)  # False: never a token saved on disk
    with _translated(ref, endpoint, token):
        info = api.model_info(ref.repo_id, revision=ref.revision, timeout=TIMEOUT)
    if not info.sha:
        raise InvalidModel(f"The Hub at {endpoint} gave no commit for model '{ref.repo_id}'.")
    gated = bool(info.gated)
    if gated and not token:
        raise _gated(ref.repo_id, endpoint, token_sent=False)
    files = [s.rfilename for s in info.siblings or []]

    def download(filename: str) -> Path | None:
        if files and filename not in files:
            return None
        with _translated(ref, endpoint, token):
            try:
                path = hf_hub_download(
                    ref.repo_id, filename, revision=info.sha, endpoint=endpoint,
                    token=token or False, cache_dir=hub_cache_dir(), etag_timeout=TIMEOUT,
                )  # fmt: skip
            except RemoteEntryNotFoundError:
                return None
        return Path(path)

    config_path = download("config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path else {}
    except ValueError:  # a broken config.json: no architectures, the card must tell the task
        config = {}
    card_data = info.card_data.to_dict() if info.card_data is not None else {}
    readme = download("README.md")
    card_text = _card_text(readme) if readme else ""
    safetensors = info.safetensors
    facts = ModelFacts(
        repo_id=info.id or ref.repo_id,
        revision=info.sha,
        task="",
        pipeline_tag=info.pipeline_tag,
        library_name=info.library_name,
        tags=list(info.tags or []),
        gated=gated,
        parameters=safetensors.total if safetensors else None,
        dtype=_dominant(safetensors.parameters) if safetensors else None,
        config=config if isinstance(config, dict) else {},
        source="hub",
        files=files,
    )
    return complete(facts, card_data, card_text)


def _card_text(path: Path) -> str:
    return ModelCard(path.read_text(encoding="utf-8-sig"), ignore_metadata_errors=True).text


def _dominant(parameters: dict[str, int] | None) -> str | None:
    return max(parameters.items(), key=lambda kv: kv[1])[0] if parameters else None


def _gated(repo_id: str, endpoint: str, *, token_sent: bool) -> GatedModel:
    page = f"{endpoint}/{repo_id}"
    if token_sent:
        message = (
            f"Model '{repo_id}' is gated and the HF_TOKEN in use has no access to it: accept its "
            f"terms at {page} with the account that owns the token (some models also need the "
            "authors' approval), then try again."
        )
    else:
        message = (
            f"Model '{repo_id}' is gated and no HF_TOKEN is set: accept its terms at {page} "
            "while logged in, then set HF_TOKEN to a read token of that account."
        )
    return GatedModel(message, {"model": repo_id, "url": page})


@contextmanager
def _translated(ref: ModelRef, endpoint: str, token: str | None) -> Iterator[None]:
    """huggingface_hub errors -> modelport errors; network trouble -> HubUnreachable."""
    repo = ref.repo_id
    details: dict[str, Any] = {"model": repo, "endpoint": endpoint}
    try:
        yield
    except GatedRepoError as exc:  # before RepositoryNotFoundError: it is a subclass
        raise _gated(repo, endpoint, token_sent=bool(token)) from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFound(
            f"Revision '{ref.revision}' of model '{repo}' does not exist on the Hub ({endpoint}). "
            "Use an existing branch, tag or commit in the URL (…/tree/<revision>).",
            {**details, "revision": ref.revision},
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFound(
            f"Model '{repo}' was not found on the Hugging Face Hub ({endpoint}). Check the "
            "<org>/<name> spelling; for a private model, set HF_TOKEN to a token with read access.",
            details,
        ) from exc
    except (TransportError, OfflineModeIsEnabled, LocalEntryNotFoundError) as exc:
        raise HubUnreachable(_short(exc)) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500 or status in (408, 429):
            raise HubUnreachable(f"HTTP {status}") from exc
        if status == 401:
            raise InvalidModel(
                f"The Hub ({endpoint}) rejected HF_TOKEN while reading model '{repo}': "
                "set HF_TOKEN to a valid read token, or unset it for public models.",
                details,
            ) from exc
        raise InvalidModel(
            f"The Hub ({endpoint}) refused to describe model '{repo}' (HTTP {status}).", details
        ) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
