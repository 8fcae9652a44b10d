"""Benchmarks: measured throughput, latency, memory and cost per batch size, with advice.

Importing this package is light (no torch): `run_benchmark` imports torch when it runs, in
the worker. The API process may use `BenchmarkConfig`, `BenchmarkReport` and `analysis`.
"""

from modelport.benchmarking.config import BenchmarkConfig
from modelport.benchmarking.report import BatchResult, BenchmarkReport, LatencyStats

__all__ = ["BatchResult", "BenchmarkConfig", "BenchmarkReport", "LatencyStats", "run_benchmark"]


def __getattr__(name: str):
    # The runner (and through it the worker-side modules) loads only when asked for.
    if name == "run_benchmark":
        from modelport.benchmarking.runner import run_benchmark

        return run_benchmark
    raise AttributeError(name)
