"""Model facts: what we know about a Hub model, from the Hub or the local HF cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
