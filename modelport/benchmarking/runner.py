"""Run a benchmark sweep against the real model (worker-only: torch is imported inside).

Per batch size, in request order: a memory pre-check, `warmup` untimed runs, then `iterations`
timed runs (`steps`: a forward, or for generative models a whole greedy `generate` of exactly
max_new_tokens tokens, during which `steps.token_clock` marks when each token's logits are
ready: time to first token and decode tokens/s come from those marks). Throughput is samples /
total timed time (samples/s of full generations for generative models); latency is ms per
batch (mean, p50, p95, p99, std, cv). The grad context, dtype, attention and quantization are
the optimization level's, as in the generated bundle. Torch threads are set to the config's
whole cores (at most the CPUs this process may use) and restored afterwards.

Quality: unless the level is the float32 reference ("none"), its outputs on a fixed input set
are compared with float32's before timing (`quality.py`); a configuration that fails is
measured and reported, but recommends nothing.

Stable: at least 3 timed iterations, coefficient of variation <= 0.10 and p99 <= 2 x p50
(`report.LatencyStats.stable`). As perf_analyzer measures until its windows agree, a window
that is not stable is measured again, up to MAX_WINDOWS windows of `iterations` each; the
first stable window is reported, else the least spread one (its `stable` false). `windows`
says how many ran.

Memory: before a CPU batch runs, the process RSS plus an estimate of what the batch adds
(`memwatch.estimate_batch_bytes`, erring high) is checked against `max_memory_bytes`; above it,
the batch is recorded as `over_memory_limit` and not run, so the worker is never OOM-killed.
While it runs, a sleeping sampler tracks peak RSS; past the limit the window stops at the next
iteration and the batch is recorded as `over_memory_limit` with what was measured.
torch.OutOfMemoryError / MemoryError make it `oom`; any other failure `error`. The sweep goes on
with the next batch size either way. Only when no batch size could be measured and at least
one failed with an error is BenchmarkFailed raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.cost import HourlyPrice, cost_per_inference, hourly_price
from modelport.benchmarking.flops import peak_flops
from modelport.benchmarking.inputs import build_inputs, sequence_length
from modelport.benchmarking.memwatch import RssSampler, estimate_batch_bytes, rss_bytes, trim_heap
from modelport.benchmarking.modelcache import LoadedModel, ModelCache, default_cache
from modelport.benchmarking.report import (
    STABLE_MAX_CV,
    STABLE_MAX_TAIL,
    STABLE_MIN_ITERATIONS,
    BatchResult,
    BenchmarkReport,
    LatencyStats,
    MiB,
    format_bytes,
)
from modelport.benchmarking.steps import (
    count_flops,
    forward_step,
    generate_step,
    generated_tokens,
    token_clock,
)
from modelport.benchmarking.timing import Progress, run_untimed, time_window
from modelport.core.errors import BenchmarkFailed, ValidationFailed
from modelport.packaging.facts import ModelFacts
from modelport.packaging.options import EXPORTED_BACKENDS, unsupported

log = logging.getLogger(__name__)
MAX_WINDOWS = 3
ProgressCallback = Callable[[float, str], Any]


def run_benchmark(
    facts: ModelFacts,
    config: BenchmarkConfig,
    progress: ProgressCallback | None = None,
    *,
    other_device: Any = None,
    cache: ModelCache | None = None,
    reraise: tuple[type[BaseException], ...] = (),
) -> BenchmarkReport:
    """Measure every batch size of `config`; `reraise` names exceptions (e.g. the task queue's
    soft time limit) that must end the sweep instead of being recorded for one batch size."""
    import torch

    started = time.perf_counter()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkFailed("device 'cuda' was asked for but this worker has no CUDA device")
    sweep = _Sweep(facts, config, progress, reraise)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(sweep.threads)
    cache = cache or default_cache()
    try:
        sweep.load(cache)
        quality = sweep.check_quality(cache.loader)
        rows = []
        over: BatchResult | None = None  # the smallest size whose p95 ended the sweep
        for i, size in enumerate(config.batch_sizes):
            rows.append(sweep.skip(size, over) if over and size > over.batch_size
                        else sweep.run(i, size))  # fmt: skip
            if far_over_objective(rows[-1], config) and (over is None or size < over.batch_size):
                over = rows[-1]
    finally:
        torch.set_num_threads(previous_threads)
    errors = [r for r in rows if r.status == "error"]
    if errors and not any(r.measured for r in rows):
        raise BenchmarkFailed(
            f"No batch size of {facts.repo_id} could be measured: {errors[0].message}",
            {"details": [r.to_dict() for r in rows]},
        )
    report = BenchmarkReport(
        model={"repoId": facts.repo_id, "revision": facts.revision, "task": facts.task},
        config=config,
        device=sweep.device_info(),
        rows=rows,
        duration_s=round(time.perf_counter() - started, 3),
        quality=quality,
    )
    report.analyze(other_device)
    sweep.progress.report("done", sweep.progress.total_units, force=True)
    return report


def far_over_objective(row: BatchResult, config: BenchmarkConfig) -> bool:
    """Whether a search stops at `row`: p95 over stop_over_objective x the objective."""
    factor, slo = config.stop_over_objective, config.latency_slo_ms
    if not factor or not slo or row.latency is None:
        return False
    return row.latency.p95 > factor * slo


def threads_for(cores: float) -> int:
    """Whole cores given to the benchmark, no more than this process may run on."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    return max(1, min(int(cores), available))


class _Sweep:
    def __init__(self, facts, config: BenchmarkConfig, callback, reraise) -> None:
        self.facts, self.config, self.reraise = facts, config, reraise
        self.threads = threads_for(config.cpu_cores)
        self.units = config.warmup + config.iterations
        self.progress = Progress(callback, self.units * len(config.batch_sizes))
        self.loaded: LoadedModel
        self.price: HourlyPrice
        self.length = config.sequence_length

    def load(self, cache: ModelCache) -> None:
        import torch

        self.progress.report("loading model", 0, force=True)
        cfg = self.config
        why = unsupported(cfg.optimization_level, self.facts.task)
        if why:
            raise ValidationFailed(why, {"field": "optimizationLevel"})
        try:
            self.loaded = cache.get(self.facts, cfg.device, cfg.optimization_level)
        except self.reraise:
            raise
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise BenchmarkFailed(f"{self.facts.repo_id} does not fit in memory: {exc}") from None
        except Exception as exc:
            raise BenchmarkFailed(f"{self.facts.repo_id} could not be loaded: {exc}") from exc
        if self.loaded.applied.get("backend") in EXPORTED_BACKENDS:  # as the bundle runs it
            from modelport.runtime.onnx_backend import quiet_torch

            quiet_torch()
        self.length = sequence_length(self.loaded, cfg.sequence_length, cfg.max_new_tokens)
        applied = self.loaded.applied
        kind = "int8-dynamic" if applied["quantization"] == "dynamic-int8" else applied["dtype"]
        self.peak = peak_flops(cfg.device, kind)
        # priced on the cores the sweep ran on (torch threads), not the cores it was allowed
        self.price = hourly_price(cfg.device, cores=self.threads, gpu_name=self.gpu_name())

    def check_quality(self, loader: Callable[..., LoadedModel]) -> dict[str, Any] | None:
        """The quality gate against float32 (quality.py), before timing."""
        from modelport.benchmarking import quality

        cfg = self.config
        if cfg.optimization_level != quality.REFERENCE_LEVEL:
            self.progress.report("quality check against float32", 0, force=True)
        try:
            return quality.gate(
                self.facts,
                self.loaded,
                cfg.optimization_level,
                self.length,
                lambda: loader(self.facts, cfg.device, quality.REFERENCE_LEVEL),
                cfg.max_memory_bytes,
            )
        except self.reraise:
            raise
        except Exception as exc:  # the check could not run: say so, recommend nothing
            log.warning("quality check of %s failed", self.facts.repo_id, exc_info=True)
            return {
                "passed": False,
                "metric": "error",
                "error": f"{type(exc).__name__}: {_first_line(exc)}",
            }

    def gpu_name(self) -> str | None:
        import torch

        if self.config.device != "cuda":
            return None
        return self.config.gpu_name or torch.cuda.get_device_name()

    def device_info(self) -> dict[str, Any]:
        import torch

        return {
            "type": self.config.device,
            "name": self.gpu_name() or _cpu_name(),
            "threads": self.threads,
            "peakFlopsPerS": self.peak.flops_per_s,
            "peakFlopsSource": self.peak.source,
            "priceBasis": self.price.basis,
            "usdPerHour": self.price.usd_per_hour,
            "applied": dict(self.loaded.applied),
            "torch": torch.__version__,
        }

    def grad_context(self) -> Any:
        import torch

        if self.loaded.settings.inference_mode or self.loaded.kind == "sentence-transformers":
            return torch.inference_mode()
        return torch.no_grad()

    def skip(self, batch_size: int, over: BatchResult) -> BatchResult:
        """A larger batch size than `over`, not run: its p95 could only be higher."""
        row = BatchResult(batch_size, warmup=self.config.warmup)
        row.status = "over_objective"
        p95 = over.latency.p95 if over.latency else float("nan")
        row.message = (
            f"not run: batch size {over.batch_size} already had p95 {p95:.1f} ms, over "
            f"{self.config.stop_over_objective:g}x the {self.config.latency_slo_ms:g} ms objective"
        )
        self.progress.report(f"batch {batch_size}: not run (over the objective)",
                             None, force=True)  # fmt: skip
        return row

    def run(self, index: int, batch_size: int) -> BatchResult:
        import torch

        cfg, loaded = self.config, self.loaded
        base = index * self.units
        row = BatchResult(batch_size, warmup=cfg.warmup)
        row.sequence_length = None if loaded.kind == "image" else self.length
        self.progress.report(f"batch {batch_size}: starting", base, force=True)
        need = estimate_batch_bytes(loaded, batch_size, self.length, cfg.max_new_tokens)
        current = rss_bytes()
        if cfg.device == "cpu" and current + need > cfg.max_memory_bytes:
            row.status = "over_memory_limit"
            row.message = (
                f"not run: the process holds {format_bytes(current)} and batch size {batch_size} "
                f"is estimated to add {format_bytes(need)}, {format_bytes(current + need)} in "
                f"all, above the memory limit of {format_bytes(cfg.max_memory_bytes)}"
            )
            return row
        failure = None
        sampler = RssSampler(cfg.max_memory_bytes)
        if cfg.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            with self.grad_context(), sampler:
                self._measure(row, base, sampler)
        except self.reraise:
            raise
        except (torch.OutOfMemoryError, MemoryError) as exc:
            failure = ("oom", f"out of memory at batch {batch_size}: {_first_line(exc)}")
        except Exception as exc:
            log.warning("benchmark of batch %d failed", batch_size, exc_info=True)
            failure = ("error", f"{type(exc).__name__}: {_first_line(exc)}")
        _release(cfg.device)
        row.peak_rss_mb = sampler.peak_bytes / MiB
        if cfg.device == "cuda":
            row.cuda_max_allocated_mb = torch.cuda.max_memory_allocated() / MiB
        limit = cfg.max_memory_bytes
        if failure:
            row.status, row.message = failure
            row.throughput = row.latency = None
        elif sampler.exceeded or sampler.peak_bytes > limit:
            row.status = "over_memory_limit"
            row.message = (
                f"peak RSS {format_bytes(sampler.peak_bytes)} went over the memory limit of "
                f"{format_bytes(limit)}; {row.iterations} of {cfg.iterations} timed iterations ran"
            )
        return row

    def _measure(self, row: BatchResult, base: int, sampler: RssSampler) -> None:
        cfg, loaded, size = self.config, self.loaded, row.batch_size
        inputs = build_inputs(loaded, size, self.length)

        def between(offset: int, total: int, label: str) -> Callable[[int], bool]:
            def report(done: int) -> bool:
                stage = f"batch {size}: {label} {done}/{total}"
                self.progress.report(stage, base + offset + done)
                return sampler.exceeded

            return report

        clock = token_clock(cfg.device) if loaded.generative else None
        if loaded.generative:
            step = generate_step(loaded, inputs, cfg.max_new_tokens, clock)
            produced = generated_tokens(loaded, inputs, step())  # untimed: the length is fixed
            if produced != cfg.max_new_tokens:
                row.message = f"generation produced {produced} new tokens, not {cfg.max_new_tokens}"
        else:
            step = forward_step(loaded, inputs)
        run_untimed(step, cfg.warmup, between(0, cfg.warmup, "warmup"))
        if sampler.exceeded:
            return
        report = between(cfg.warmup, cfg.iterations, "iteration")
        spans = self._stable_window(step, row, report, clock)
        row.iterations = len(spans)
        row.latency = LatencyStats.from_samples(spans)
        row.stable = row.latency.stable
        row.throughput = size * len(spans) / (sum(spans) / 1000)
        if clock is not None:  # read after the window's synchronize
            row.ttft_ms, row.decode_tokens_per_s = clock.summary(size)
        row.flops = count_flops(loaded, step, self.reraise)
        row.peak_flops_per_s = self.peak.flops_per_s
        if row.flops:
            row.achieved_flops_per_s = row.flops / (row.latency.mean / 1000)
            row.flops_fraction = row.achieved_flops_per_s / self.peak.flops_per_s
        row.cost_per_inference = cost_per_inference(row.throughput, self.price)
        row.cost_per_million = row.cost_per_inference * 1e6

    def _stable_window(self, step, row: BatchResult, between, clock) -> list[float]:
        """Timed windows until one is stable (at most MAX_WINDOWS): the first stable one, else
        the least spread; a window cut short by the memory limit ends the search. The token
        clock (generative models) is left holding the reported window's marks."""
        cfg = self.config
        best: tuple[float, list[float], Any] = (float("inf"), [], None)
        # fewer iterations than stability needs: one window (more could not make it stable)
        windows = MAX_WINDOWS if cfg.iterations >= STABLE_MIN_ITERATIONS else 1
        for window in range(1, windows + 1):
            if clock is not None:
                clock.reset()
            spans = time_window(step, cfg.iterations, device=cfg.device, between=between)
            row.windows = window
            stats = LatencyStats.from_samples(spans)
            spread = max(stats.cv / STABLE_MAX_CV, stats.p99 / stats.p50 / STABLE_MAX_TAIL)
            if stats.stable:
                best = (0.0, spans, clock.runs if clock is not None else None)
                break
            if spread < best[0]:
                best = (spread, spans, clock.runs if clock is not None else None)
            if len(spans) < cfg.iterations:
                break
        if clock is not None:
            clock.runs = best[2]
        return best[1]


def _release(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    trim_heap()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"
