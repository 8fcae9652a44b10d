"""Put a folder of model files into the Hugging Face hub cache, exactly as a download would.

Layout (huggingface_hub's): `<cache>/models--org--name/blobs/<hash>`,
`snapshots/<commit>/<path>` as relative symlinks to the blobs, `refs/<ref>` holding the commit,
and `trees/<commit>.json`, the file listing huggingface_hub uses to tell a snapshot is complete.
Blobs are named as the Hub names them: the sha256 for LFS files (weights), the git blob sha1
for the rest. Only the standard library is used, so the API process can import this cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelport.core.modelref import COMMIT_RE, REPO_ID_RE

# Extensions the Hub's default .gitattributes stores through LFS; bigger files go there too.
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".model",
    ".ot", ".tflite", ".npy", ".npz", ".pkl", ".gguf", ".zip", ".gz", ".tar", ".arrow",
)  # fmt: skip
LFS_MIN_SIZE = 10 * 1024 * 1024
LFS_SPEC = "version https://git-lfs.github.com/spec/v1"
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SKIPPED_DIRS = {".git", ".cache", "__pycache__"}


def hub_cache_dir() -> Path:
    """The hub cache folder huggingface_hub would pick, read from the environment now."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    home = os.path.expandvars(os.path.expanduser(home))
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def repo_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


@dataclass(frozen=True)
class RepoFile:
    """One file of a repo with the hashes the Hub reports for it."""

    path: str  # posix path inside the repo
    size: int
    sha256: str
    git_sha1: str  # git blob id, the Hub's ETag for non-LFS files

    @property
    def is_lfs(self) -> bool:
        return self.path.lower().endswith(LFS_SUFFIXES) or self.size >= LFS_MIN_SIZE

    @property
    def blob_id(self) -> str:
        """The git blob id the Hub lists: of the LFS pointer file for LFS files."""
        if not self.is_lfs:
            return self.git_sha1
        pointer = f"{LFS_SPEC}\noid sha256:{self.sha256}\nsize {self.size}\n"
        return _git_sha1(pointer.encode())

    @property
    def etag(self) -> str:
        """The name huggingface_hub gives the blob: the ETag the Hub sends for this file."""
        return self.sha256 if self.is_lfs else self.git_sha1


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def hash_file(path: Path, relpath: str) -> RepoFile:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return RepoFile(relpath, size, sha256.hexdigest(), sha1.hexdigest())


def scan_folder(src_dir: Path) -> list[RepoFile]:
    """Every regular file under `src_dir` (skipping .git, .cache, __pycache__), sorted by path."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"model folder {src_dir} does not exist")
    files = []
    for root, dirs, names in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in names:
            full = Path(root) / name
            if full.is_file():
                files.append(hash_file(full, full.relative_to(src_dir).as_posix()))
    if not files:
        raise ValueError(f"model folder {src_dir} has no files")
    return sorted(files, key=lambda f: f.path)


def content_commit(files: list[RepoFile]) -> str:
    """A deterministic stand-in commit id: sha1 over the file names and contents."""
    digest = hashlib.sha1(usedforsecurity=False)
    for f in files:
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def install_local_model(
    repo_id: str,
    src_dir: Path,
    *,
    commit: str | None = None,
    cache_dir: Path | None = None,
    ref: str = "main",
) -> str:
    """Copy `src_dir` into the hub cache as `repo_id` at `commit` (pointed to by `ref`); idempotent.

    Returns the commit. Afterwards `snapshot_download(repo_id, local_files_only=True)` and
    transformers' `from_pretrained(repo_id)` under `HF_HUB_OFFLINE=1` find the files.
    """
    if not REPO_ID_RE.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise ValueError(f"invalid repo id {repo_id!r}")
    if not _REF_RE.match(ref) or ".." in ref:
        raise ValueError(f"invalid ref {ref!r}")
    files = scan_folder(Path(src_dir))
    commit = commit or content_commit(files)
    if not COMMIT_RE.match(commit):
        raise ValueError(f"commit must be 40 lowercase hex characters, got {commit!r}")

    storage = repo_folder(repo_id, cache_dir)
    blobs = storage / "blobs"
    snapshot = storage / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    for f in files:
        blob = blobs / f.etag
        if not blob.is_file() or blob.stat().st_size != f.size:
            _atomic_copy(Path(src_dir) / f.path, blob)
        _link(blob, snapshot / f.path)
    _atomic_write(storage / "refs" / ref, commit)  # no trailing newline: the hub reads it raw
    _write_tree_listing(storage / "trees" / f"{commit}.json", files)
    return commit


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _link(blob: Path, pointer: Path) -> None:
    pointer.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(blob, pointer.parent)
    if pointer.is_symlink() and os.readlink(pointer) == target:
        return
    tmp = pointer.with_name(f".tmp-{os.getpid()}-{pointer.name}")
    try:
        os.symlink(target, tmp)
    except OSError:  # no symlinks (some Windows setups): huggingface_hub copies then, too
        shutil.copyfile(blob, tmp)
    os.replace(tmp, pointer)


def _write_tree_listing(path: Path, files: list[RepoFile]) -> None:
    entries = {}
    for f in files:
        entry: dict[str, object] = {"size": f.size, "blob_id": f.blob_id}
        if f.is_lfs:
            entry.update(lfs_sha256=f.sha256, lfs_size=f.size)
        entries[f.path] = entry
    _atomic_write(path, json.dumps({"format_version": 1, "files": entries}, indent=1))
