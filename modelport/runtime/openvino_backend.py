"""The OpenVINO backend (optimization level "openvino", CPU): the same cached ONNX export as
the "onnxruntime" level (onnx_backend.py), read and compiled by OpenVINO's CPU plugin.

The level means float32: OpenVINO picks bfloat16 by itself on a CPU with bf16 instructions, so
the compile sets INFERENCE_PRECISION_HINT=f32 and the quality gate holds it to the torch
reference like any level. One stream with the latency hint and the process's torch thread
count: the runtime batches requests itself, one forward at a time.

No usage reports: OpenVINO's wheel depends on `openvino-telemetry`, which `import openvino`
would load (through its model converter) to send an event. `block_telemetry` makes that
import fail before openvino is imported, so the converter takes its own no-op stub whether
or not the package is installed; bundles and `make setup` uninstall it as well.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from .onnx_backend import ExportedBackend, Session

TELEMETRY_MODULE = "openvino_telemetry"


def block_telemetry() -> None:
    """Make `import openvino_telemetry` raise ImportError in this process (None in
    sys.modules), unless something imported it already."""
    sys.modules.setdefault(TELEMETRY_MODULE, None)  # type: ignore[arg-type]


class OpenVinoSession:
    """A compiled model with onnxruntime's `run(output_names, feed)`. An infer request holds
    its buffers, so each thread gets its own; results are copied out of them."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.local = threading.local()

    def run(self, output_names: list[str], feed: dict[str, Any]) -> list[Any]:
        request = getattr(self.local, "request", None)
        if request is None:
            request = self.local.request = self.compiled.create_infer_request()
        result = request.infer(feed, share_inputs=False, share_outputs=False)
        return [result[self.compiled.output(name)] for name in output_names]

    def properties(self) -> dict[str, str]:
        """The compiled model's speed and precision settings, as OpenVINO reports them."""
        names = ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS")
        return {name: str(self.compiled.get_property(name)) for name in names}


class OpenVinoBackend(ExportedBackend):
    name = "openvino"

    def open(self, path: Path) -> Session:
        block_telemetry()
        import openvino as ov
        import torch

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY",
                "NUM_STREAMS": "1",
                "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
            },
        )
        self.applied["precision"] = "float32"
        return OpenVinoSession(compiled)
