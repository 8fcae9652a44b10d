"""What one timed run is, per kind of model, and its FLOP count (worker-only).

- encoders, classifiers, image models: one forward over pre-built inputs on the device;
- sentence-transformers models: the runtime engine's `embed` (transformer, pooling, Dense,
  normalisation) as the bundle's server runs it, tokenization excluded;
- generative models: greedy `generate` of exactly `new_tokens` tokens (min_new_tokens =
  max_new_tokens, so end-of-sequence cannot stop it early; one sequence, no beams).

`token_clock` is a LogitsProcessor that marks when each token's logits are ready, inside the
timed generations themselves (perf_counter_ns on CPU; a CUDA event on GPU, read after the
window's one synchronize): time to first token is from the call to the first mark, decode
tokens/s is batch x (marks after the first) / (last mark - first mark).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from modelport.benchmarking.flops import register_formulas
from modelport.benchmarking.inputs import Inputs
from modelport.benchmarking.modelcache import LoadedModel

log = logging.getLogger(__name__)
Step = Callable[[], Any]


def forward_step(loaded: LoadedModel, inputs: Inputs) -> Step:
    model = loaded.model
    if loaded.kind == "sentence-transformers":
        embed = loaded.engine.embed
        return lambda: embed(inputs.tensors)
    tensors = inputs.tensors
    return lambda: model(**tensors)


def generate_step(loaded: LoadedModel, inputs: Inputs, new_tokens: int, clock: Any = None) -> Step:
    tokenizer, tensors = loaded.processor, inputs.tensors
    pad = tokenizer.pad_token_id
    options = {
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "num_return_sequences": 1,
        "pad_token_id": pad if pad is not None else tokenizer.eos_token_id,
        "use_cache": True,
    }
    if clock is None:
        return lambda: loaded.model.generate(**tensors, **options)
    from transformers import LogitsProcessorList

    processors = LogitsProcessorList([clock])

    def step() -> Any:
        clock.begin()
        return loaded.model.generate(**tensors, **options, logits_processor=processors)

    return step


_CLOCK_CLASS: Any = None


def token_clock(device: str) -> Any:
    """A LogitsProcessor marking when each generated token's logits are ready (see above)."""
    global _CLOCK_CLASS
    if _CLOCK_CLASS is None:
        from transformers import LogitsProcessor

        class TokenClock(LogitsProcessor):
            def __init__(self, device: str) -> None:
                self.device = device
                self.runs: list[list[Any]] = []

            def _mark(self) -> Any:
                if self.device == "cuda":
                    import torch

                    event = torch.cuda.Event(enable_timing=True)
                    event.record()
                    return event
                return time.perf_counter_ns()

            def begin(self) -> None:
                self.runs.append([self._mark()])

            def reset(self) -> None:
                self.runs = []

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if self.runs:
                    self.runs[-1].append(self._mark())
                return scores

            def _ms(self, start: Any, end: Any) -> float:
                if self.device == "cuda":
                    return start.elapsed_time(end)
                return (end - start) / 1e6

            def summary(self, batch_size: int) -> tuple[float | None, float | None]:
                """(mean ms to the first token's logits, decode tokens/s) of the runs so far."""
                runs = [run for run in self.runs if len(run) >= 2]
                if not runs:
                    return None, None
                ttft = sum(self._ms(run[0], run[1]) for run in runs) / len(runs)
                decoding = [run for run in runs if len(run) > 2]
                tokens = sum(len(run) - 2 for run in decoding)
                seconds = sum(self._ms(run[1], run[-1]) for run in decoding) / 1000
                return ttft, (batch_size * tokens / seconds if seconds > 0 else None)

        _CLOCK_CLASS = TokenClock
    return _CLOCK_CLASS(device)


def generated_tokens(loaded: LoadedModel, inputs: Inputs, output: Any) -> int:
    """New tokens in a generate output: past the prompt (causal) or the start token (seq2seq)."""
    prompt = inputs.sequence_length if loaded.kind == "causal" else 1
    return int(output.shape[-1]) - (prompt or 0)


def count_flops(
    loaded: LoadedModel, step: Step, reraise: tuple[type[BaseException], ...] = ()
) -> float | None:
    """FLOPs of one run (matmuls, convolutions, attention), counted once outside timing on the
    uncompiled forward; None when torch's counter cannot follow the model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    register_formulas()
    try:
        with loaded.eager(), FlopCounterMode(display=False) as counter:
            step()
    except (torch.OutOfMemoryError, MemoryError, *reraise):
        raise
    except Exception as exc:
        log.warning("FLOP counting failed: %s", exc)
        return None
    total = counter.get_total_flops()
    return float(total) if total else None
