"""Prometheus metrics of a bundle server (the names beat's scraper reads; see module.yaml)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import gc_collector as _gc
from prometheus_client import platform_collector as _platform
from prometheus_client import process_collector as _process

from .backend import accelerator_memory

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per server, so tests may run several servers in a process."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        model: str,
        revision: str,
        task: str,
        max_batch: int,
        *,
        device: str = "cpu",
        optimization_level: str = "",
    ) -> None:
        self.registry = registry = CollectorRegistry()
        _process.ProcessCollector(registry=registry)
        _platform.PlatformCollector(registry=registry)
        _gc.GCCollector(registry=registry)
        self.requests = Counter(
            "modelport_requests",
            "Prediction requests by HTTP status",
            ["status"],
            registry=registry,
        )
        self.inputs = Counter("modelport_inputs", "Inputs predicted", registry=registry)
        self.latency = Histogram(
            "modelport_request_duration_seconds",
            "Prediction request latency, queueing included",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        powers = {2**i for i in range(11) if 2**i < max_batch}
        self.batch_size = Histogram(
            "modelport_batch_size",
            "Inputs per model batch",
            buckets=sorted(powers | {max_batch}),
            registry=registry,
        )
        self.batch_duration = Histogram(
            "modelport_batch_duration_seconds",
            "Model time per batch (preprocessing, forward and postprocessing)",
            buckets=BATCH_TIME_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "modelport_queue_depth", "Inputs waiting for a batch", registry=registry
        )
        self.in_flight = Gauge(
            "modelport_requests_in_flight", "Requests being served", registry=registry
        )
        # what a monitor needs to pick a matching benchmark baseline: device and level
        info = Gauge(
            "modelport_model_info",
            "The served model and the configuration it runs",
            ["model", "revision", "task", "device", "optimization_level"],
            registry=registry,
        )
        info.labels(model, revision, task, device, optimization_level).set(1)
        self._gpu = {
            kind: Gauge(
                f"modelport_gpu_memory_{kind}_bytes",
                f"CUDA memory {kind} by this process",
                registry=registry,
            )
            for kind in (("allocated", "reserved") if device == "cuda" else ())
        }

    def observe_request(self, status: int, seconds: float) -> None:
        self.requests.labels(str(status)).inc()
        self.latency.observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)
        self.inputs.inc(size)

    def render(self) -> bytes:
        for kind, value in accelerator_memory().items():
            if kind in self._gpu:
                self._gpu[kind].set(value)
        return generate_latest(self.registry)
