"""The benchmark's quality gate: the runtime's own (modelport.runtime.quality), run on the
benchmarked engine against a float32 load of the same model (worker-only).

The reference is loaded outside the model cache and let go before timing, so it is not in
the memory the sweep measures.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from modelport.benchmarking.modelcache import LoadedModel
from modelport.runtime.quality import QualityCheck, compare

REFERENCE_LEVEL = "none"  # float32, eager attention, no quantization


def run(
    candidate: LoadedModel, load_reference: Callable[[], LoadedModel], length: int
) -> QualityCheck:
    reference = load_reference()
    try:
        return compare(candidate.engine, reference.engine, length)
    finally:
        del reference
        gc.collect()
