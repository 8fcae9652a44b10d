"""modelport: Hugging Face model -> validated bundle, benchmarks and monitoring."""

import os
import sys

__version__ = "0.1.0"

# No usage reports from the libraries the platform loads, set before any of them is imported
# (every process imports this package first: API, workers, beat, CLI, bench scripts):
# huggingface_hub's telemetry and update check, and onnxruntime's Linux wheel, which reports
# usage by default. The bundle's runtime sets the same in runtime/cli.py and its Dockerfile.
for _name in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_UPDATE_CHECK", "ORT_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# OpenVINO's wheel depends on openvino-telemetry, which `import openvino` loads to send an event;
# with this, that import fails and OpenVINO uses its no-op stub (runtime/openvino_backend.py).
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
