"""No outbound connection, ever: a bundle's runtime loads and predicts, and the platform's
processes start, under a socket audit (sys.addaudithook in sitecustomize) that records every
name lookup and connection; only loopback and local sockets may appear. The environment is
stripped of every opt-out, so the code must set them itself (onnxruntime's Linux wheel and
huggingface_hub report usage unless told not to)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from modelport.packaging.options import GenerateOptions
from tests.packaging.bundle_servers import facts_for, write_bundle

AUDIT = r"""
import json, os, sys

_LOG = os.environ["SOCKET_AUDIT_LOG"]
_LOCAL = ("'127.", "('127.", "'::1'", "('::1'", "'localhost'", "b'localhost'", "None", "'/",
          "b'/", "'\\x00")


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = repr(args[-1])
    elif event == "socket.getaddrinfo":
        address = repr(args[0])
    else:
        return
    local = address.startswith(_LOCAL)
    with open(_LOG, "a") as handle:
        handle.write(json.dumps({"event": event, "address": address, "local": local}) + "\n")
    if not local:  # recorded, and refused before anything leaves the machine
        raise PermissionError(f"socket audit: {event} {address} refused")


sys.addaudithook(_hook)
"""
OPT_OUTS = (
    "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_UPDATE_CHECK", "ORT_DISABLE_TELEMETRY",
    "DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "CI",
)  # fmt: skip


def audited(tmp_path, argv: list[str], **env: str) -> tuple[subprocess.CompletedProcess, list]:
    hook = tmp_path / "audit"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "sockets.jsonl"
    log.unlink(missing_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in OPT_OUTS}
    clean.update(env, SOCKET_AUDIT_LOG=str(log), PYTHONPATH=str(hook))
    run = subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return run, records


def outbound(records: list[dict]) -> list[dict]:
    return [{"event": r["event"], "address": r["address"]} for r in records if not r["local"]]


# Stands in for OpenVINO's usage reporter where it is installed: importing it leaves a mark.
FAKE_OPENVINO_TELEMETRY = """
import os
open(os.environ["SOCKET_AUDIT_LOG"] + ".openvino-telemetry", "w").close()
"""


@pytest.mark.parametrize("which", ["demo", "demo-onnxruntime", "demo-openvino", "text-generation"])
def test_a_bundle_loads_and_predicts_without_calling_out(tmp_path, minilm, tiny_models, which):
    """Each backend: torch; ONNX Runtime (exported on first load, then run), whose Linux wheel
    reports usage unless ORT_DISABLE_TELEMETRY is set before it is imported; and OpenVINO, whose
    `import openvino` loads openvino-telemetry when it is installed (here a stand-in that marks
    its import): the runtime must never let it load."""
    model = minilm if which.startswith("demo") else tiny_models[which]
    level = which.removeprefix("demo-") if which.startswith("demo-") else "standard"
    options = GenerateOptions(optimizationLevel=level)
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "openvino_telemetry.py").write_text(FAKE_OPENVINO_TELEMETRY)
    script = write_bundle(tmp_path / "bundle", facts_for(model), options)
    run, records = audited(
        tmp_path,
        [sys.executable, str(script), "--input", "Paris is the capital of"],
        MODEL_PATH=str(model.snapshot),
        MODELPORT_ONNX_CACHE=str(tmp_path / "onnx"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)  # the exporter's progress went to stderr, not the answer
    if level in ("onnxruntime", "openvino"):
        assert list((tmp_path / "onnx").glob("*/model.onnx"))
    assert outbound(records) == [], records
    assert not (tmp_path / "sockets.jsonl.openvino-telemetry").exists()


def test_the_stand_in_reporter_would_be_seen(tmp_path):
    """The check above can fail: without the runtime's block, `import openvino` imports the
    stand-in, and its mark appears."""
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "openvino_telemetry.py").write_text(FAKE_OPENVINO_TELEMETRY)
    run, _ = audited(tmp_path, [sys.executable, "-c", "import openvino"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "sockets.jsonl.openvino-telemetry").exists()


def test_make_setup_keeps_openvino_telemetry_out():
    """openvino's wheel depends on it; `make setup` uninstalls it after installing."""
    from importlib import metadata

    assert metadata.version("openvino")
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("openvino-telemetry")


def test_the_audit_sees_an_outbound_attempt(tmp_path):
    """The check itself: a lookup of a public name is recorded, and refused before it is made."""
    code = (
        "import socket\n"
        "try:\n    socket.getaddrinfo('huggingface.co', 443)\n"
        "except PermissionError:\n    print('refused')"
    )
    run, records = audited(tmp_path, [sys.executable, "-c", code])
    assert run.returncode == 0 and run.stdout.strip() == "refused", run.stderr
    assert outbound(records) == [{"event": "socket.getaddrinfo", "address": "'huggingface.co'"}]


def test_the_platform_turns_every_opt_out_on_before_libraries_load(tmp_path):
    code = (
        "import json, os, sys, modelport.workers.app, modelport.api.wsgi\n"
        "assert sys.modules['openvino_telemetry'] is None\n"
        "print(json.dumps({k: os.environ.get(k) for k in ('HF_HUB_DISABLE_TELEMETRY', "
        "'HF_HUB_DISABLE_UPDATE_CHECK', 'ORT_DISABLE_TELEMETRY', 'DO_NOT_TRACK')}))"
    )
    run, records = audited(tmp_path, [sys.executable, "-c", code])
    assert run.returncode == 0, run.stderr[-2000:]
    assert set(json.loads(run.stdout.strip().splitlines()[-1]).values()) == {"1"}
    assert outbound(records) == [], records
