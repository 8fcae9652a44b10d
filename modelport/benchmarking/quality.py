"""The benchmark's quality gate: the runtime's own (modelport.runtime.quality), run on the
benchmarked engine against a float32 load of the same model (worker-only).

The reference is loaded outside the model cache and let go before timing, so it is not in
the memory the sweep measures. It is loaded only when it fits: beside the candidate, within
the memory limit on CPU or the free memory on GPU; otherwise the gate is reported skipped,
with the reason. A worker remembers its results per model, revision, device, level and
length (the answer cannot change for the same weights), so repeated sweeps do not reload.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from modelport.benchmarking.memwatch import rss_bytes
from modelport.benchmarking.modelcache import LoadedModel, estimate_bytes
from modelport.benchmarking.report import format_bytes
from modelport.packaging.facts import ModelFacts
from modelport.packaging.options import optimization_settings
from modelport.runtime.quality import compare

REFERENCE_LEVEL = "none"  # float32, eager attention, no quantization
HEADROOM = 1.2  # the reference's weights plus what its forward needs
REMEMBERED = 64
_RESULTS: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def gate(
    facts: ModelFacts,
    candidate: LoadedModel,
    level: str,
    length: int,
    load_reference: Callable[[], LoadedModel],
    max_memory_bytes: int,
) -> dict[str, Any] | None:
    """The gate's figures for this configuration (None for the reference level itself)."""
    if level == REFERENCE_LEVEL:
        return None
    key = (facts.repo_id, facts.revision, facts.task, candidate.device, level, length)
    if key in _RESULTS:
        _RESULTS.move_to_end(key)
        return dict(_RESULTS[key])
    need = estimate_bytes(
        facts, optimization_settings(REFERENCE_LEVEL, gpu=candidate.device == "cuda")
    )
    free = _free_bytes(candidate.device, max_memory_bytes)
    if need * HEADROOM > free:
        return {
            "passed": None,
            "metric": "skipped",
            "reason": f"the float32 reference needs about {format_bytes(need)} and only "
            f"{format_bytes(max(free, 0))} is free beside the benchmarked model",
        }
    reference = load_reference()
    try:
        found = compare(candidate.engine, reference.engine, length).to_dict()
    finally:
        del reference
        gc.collect()
    _RESULTS[key] = found
    while len(_RESULTS) > REMEMBERED:
        _RESULTS.popitem(last=False)
    return dict(found)


def _free_bytes(device: str, max_memory_bytes: int) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    return max_memory_bytes - rss_bytes()
