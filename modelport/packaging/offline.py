"""Model facts from the local Hugging Face cache, with no network at all.

The cache folder is read as huggingface_hub lays it out (`refs/<branch>` -> commit,
`snapshots/<commit>/...`). Facts come from config.json, the model card's YAML front matter
and the safetensors headers (8-byte little-endian length, then a JSON header of shapes).
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from modelport.core.errors import ModelNotFound
from modelport.core.modelref import COMMIT_RE, ModelRef
from modelport.packaging.facts import ModelFacts, complete
from modelport.packaging.hfcache import hub_cache_dir, repo_folder

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_facts(ref: ModelRef, *, reason: str) -> ModelFacts:
    """Facts for `ref` from the cache; `reason` says why the Hub was not asked (for errors)."""
    cache = hub_cache_dir()
    storage = repo_folder(ref.repo_id, cache)
    # the answer names the cache by its variables, never by its path on the server (logged)
    if not (storage / "snapshots").is_dir():
        log.info("%s is not in the Hugging Face cache at %s", ref.repo_id, cache)
        raise ModelNotFound(
            f"Model '{ref.repo_id}' is not in the platform's Hugging Face cache, and "
            f"{reason}. Download it once with Hub access (e.g. `hf download {ref.repo_id}`), "
            "or point HF_HOME / HF_HUB_CACHE at a cache that holds it.",
            {"model": ref.repo_id},
        )
    commit = _commit_for(storage, ref.revision_or_default)
    snapshot = storage / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        cached = sorted(_cached_revisions(storage))
        log.info("%s@%s is not in %s", ref.repo_id, ref.revision_or_default, storage)
        raise ModelNotFound(
            f"Revision '{ref.revision_or_default}' of model '{ref.repo_id}' is not in the "
            f"platform's Hugging Face cache, and {reason}. Cached revisions: "
            f"{', '.join(cached) or 'none'}. Download that revision with Hub access, or use one "
            "of the cached ones.",
            {"model": ref.repo_id, "revision": ref.revision_or_default, "cached": cached},
        )

    files = _list_files(snapshot)
    config = _read_json(snapshot / "config.json")
    card, card_text = _read_card(snapshot / "README.md")
    parameters, dtype = count_parameters(snapshot, files)
    library = card.get("library_name") or (
        "sentence-transformers"
        if "modules.json" in files
        else "transformers"
        if "config.json" in files
        else None
    )
    facts = ModelFacts(
        repo_id=ref.repo_id,
        revision=commit,
        task="",
        pipeline_tag=card.get("pipeline_tag"),
        library_name=library,
        tags=[str(t) for t in card.get("tags") or []],
        gated=any(str(k).startswith("extra_gated") for k in card),
        parameters=parameters,
        dtype=dtype,
        config=config,
        source="cache",
        local_path=str(snapshot),
        files=files,
    )
    return complete(facts, card, card_text)


def _commit_for(storage: Path, revision: str) -> str | None:
    """A commit sha cached as a snapshot, a branch/tag name in refs/, or a unique sha prefix."""
    snapshots = storage / "snapshots"
    if COMMIT_RE.match(revision) and (snapshots / revision).is_dir():
        return revision
    ref_file = storage / "refs" / revision
    if "/" not in revision and ".." not in revision and ref_file.is_file():
        commit = ref_file.read_text().strip()
        return commit if COMMIT_RE.match(commit) else None
    if 7 <= len(revision) < 40 and all(c in "0123456789abcdef" for c in revision):
        matches = [p.name for p in snapshots.iterdir() if p.name.startswith(revision)]
        if len(matches) == 1:
            return matches[0]
    return None


def _cached_revisions(storage: Path) -> list[str]:
    refs = storage / "refs"
    names = (
        [p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file()]
        if refs.is_dir()
        else []
    )
    return names + [p.name for p in (storage / "snapshots").iterdir() if p.is_dir()]


def _list_files(snapshot: Path) -> list[str]:
    found = []
    for root, _dirs, names in os.walk(snapshot):
        found += [Path(root, n).relative_to(snapshot).as_posix() for n in names]
    return sorted(f for f in found if (snapshot / f).is_file())  # drops dangling links


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_card(path: Path) -> tuple[dict[str, Any], str]:
    if not path.is_file():
        return {}, ""
    from huggingface_hub import ModelCard

    card = ModelCard(path.read_text(encoding="utf-8-sig"), ignore_metadata_errors=True)
    return card.data.to_dict(), card.text


def count_parameters(snapshot: Path, files: list[str]) -> tuple[int | None, str | None]:
    """Total parameters and dominant dtype from the top-level safetensors files' headers."""
    index = _read_json(snapshot / "model.safetensors.index.json")
    weight_map = index.get("weight_map")
    shards = (
        sorted(set(weight_map.values()))
        if isinstance(weight_map, dict)
        else [f for f in files if "/" not in f and f.endswith(".safetensors")]
    )
    by_dtype: Counter[str] = Counter()
    for shard in shards:
        header = read_safetensors_header(snapshot / shard)
        for name, tensor in header.items():
            if name != "__metadata__" and isinstance(tensor, dict):
                by_dtype[str(tensor.get("dtype"))] += prod(tensor.get("shape") or [])
    if not by_dtype:
        return None, None
    return sum(by_dtype.values()), by_dtype.most_common(1)[0][0]


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file ({} if the file is missing or malformed)."""
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                return {}
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    return header if isinstance(header, dict) else {}
