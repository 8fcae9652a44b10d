#!/usr/bin/env python3
"""Serve one Hugging Face model: a modelport bundle's entry point.

module.yaml beside this file says which model, revision and task, and how to batch and
optimize; the environment may override the deployment knobs (see the bundle's README).
The code is the `modelport_runtime` package beside this file, the same for every model.

  python run_inference.py --serve          POST / (Hugging Face Inference API), /v1/...,
                                           GET /health /ready /metrics /openapi.json
  python run_inference.py --input 'text'   print the prediction as JSON
  python run_inference.py --download       fetch the pinned weights into the HF cache
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__:  # imported as modelport.runtime.run_inference
    from .cli import main
else:  # the bundle: this file beside its modelport_runtime/ package
    from modelport_runtime.cli import main  # type: ignore[import-not-found,no-redef]

if __name__ == "__main__":
    sys.exit(main(home=Path(__file__).resolve().parent))
