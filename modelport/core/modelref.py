"""Parse the model references users hand us into a Hub repo id and optional revision.

Accepted: `https://huggingface.co/org/name`, `https://huggingface.co/org/name/tree/<rev>`,
`hf://org/name@rev`, `org/name` (and `org/name@rev`). The host must be the Hub endpoint
(`HF_ENDPOINT`); nothing else is ever fetched for a model URL.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from modelport.core.errors import InvalidModel

MAX_REF_LENGTH = 300
# Hub rules: alphanumerics, '-', '_', '.', no leading/trailing '.', no '--' or '..'.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID_RE = re.compile(rf"^(?:{_PART}/)?{_PART}\Z")
# Branch/tag names or commit shas; no shell, path or URL metacharacters.
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}\Z")

ACCEPTED = (
    "Accepted forms: https://huggingface.co/<org>/<name>, "
    "https://huggingface.co/<org>/<name>/tree/<revision>, hf://<org>/<name>@<revision>, "
    "or <org>/<name>."
)


@dataclass(frozen=True)
class ModelRef:
    repo_id: str
    revision: str | None = None

    @property
    def revision_or_default(self) -> str:
        return self.revision or "main"

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _fail(reason: str, text: str) -> InvalidModel:
    shown = text if len(text) <= 120 else text[:117] + "..."
    return InvalidModel(f"{reason}. {ACCEPTED}", {"modelUrl": shown})


def parse_model_url(text: object) -> ModelRef:
    """Turn a user's model reference into a `ModelRef`, or raise `InvalidModel` saying why."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidModel(f"modelUrl must be a non-empty string. {ACCEPTED}", {})
    if len(text) > MAX_REF_LENGTH:
        raise _fail(f"modelUrl is longer than {MAX_REF_LENGTH} characters", text)
    raw = text.strip()
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in raw):
        raise _fail("modelUrl contains whitespace or control characters", raw)

    if raw.startswith("hf://"):
        path = raw[len("hf://") :]
        return _from_path_with_at(path, raw)
    if "://" in raw:
        return _from_url(raw)
    return _from_path_with_at(raw, raw)


def _from_path_with_at(path: str, raw: str) -> ModelRef:
    repo_id, sep, revision = path.partition("@")
    if sep and not revision:
        raise _fail("revision after '@' is empty", raw)
    return _checked(repo_id, revision or None, raw)


def _from_url(raw: str) -> ModelRef:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise _fail("modelUrl is not a valid URL", raw) from exc
    endpoint = urlsplit(hub_endpoint())
    if parts.scheme not in ("https", "http") or parts.scheme != endpoint.scheme:
        raise _fail(f"only {endpoint.scheme}:// URLs of the Hugging Face Hub are accepted", raw)
    if parts.username or parts.password or "@" in parts.netloc:
        raise _fail("credentials in the URL are not accepted", raw)
    host = (parts.hostname or "").lower()
    default_port = {"https": 443, "http": 80}[parts.scheme]
    if host not in {endpoint.hostname, f"www.{endpoint.hostname}"} or (port or default_port) != (
        endpoint.port or default_port
    ):
        raise _fail(f"host {host or '(none)'!r} is not the Hugging Face Hub", raw)
    if parts.query or parts.fragment:
        raise _fail("query strings and fragments are not accepted", raw)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if segments[:1] in (["datasets"], ["spaces"]):
        raise _fail("datasets and spaces are not models", raw)
    revision = None
    if len(segments) >= 4 and segments[2] == "tree":
        revision = "/".join(segments[3:])
        segments = segments[:2]
    elif len(segments) > 2:
        raise _fail("the URL path must be /<org>/<name> or /<org>/<name>/tree/<revision>", raw)
    return _checked("/".join(segments), revision, raw)


def _checked(repo_id: str, revision: str | None, raw: str) -> ModelRef:
    if not repo_id or not REPO_ID_RE.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise _fail("the repo id must look like <org>/<name> (letters, digits, '-', '_', '.')", raw)
    # The Hub's own rules (huggingface_hub validate_repo_id) and its reserved namespaces.
    if repo_id.endswith(".git"):
        raise _fail("the repo id cannot end in '.git'", raw)
    if repo_id.split("/")[0] in ("datasets", "spaces") and "/" in repo_id:
        raise _fail("datasets and spaces are not models", raw)
    if revision is not None and (not REVISION_RE.match(revision) or ".." in revision):
        raise _fail(
            "the revision must be a branch, tag or commit (letters, digits, '-', '_', '.')", raw
        )
    return ModelRef(repo_id=repo_id, revision=revision)
