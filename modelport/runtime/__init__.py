"""The bundle's runtime: an engine per task family and an HTTP server, shipped verbatim.

Everything in this package runs alone inside a deployment bundle (copied there as
`modelport_runtime/`, started by `run_inference.py`), so it imports nothing of modelport and
only relative imports inside itself. Heavy libraries (torch, transformers) are imported inside
functions so that reading the configuration and parsing requests stay cheap.
"""

RUNTIME_VERSION = "1"
