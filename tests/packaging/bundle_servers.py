"""Generated bundles on disk and their run_inference.py servers as real processes (test helper)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from modelport import localredis
from modelport.packaging.bundle import render_bundle
from modelport.packaging.facts import ModelFacts
from modelport.packaging.hfcache import scan_folder
from modelport.packaging.options import GenerateOptions
from tests.fixtures.tiny_models import TINY_REPOS, TinyModel

LOAD_TIMEOUT_S = 240
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def facts_for(model: TinyModel) -> ModelFacts:
    config = json.loads((model.path / "config.json").read_text())
    library = TINY_REPOS[model.task][1] if model.task in TINY_REPOS else "sentence-transformers"
    if model.repo_id == "sentence-transformers/all-MiniLM-L6-v2":
        library = "sentence-transformers"
    return ModelFacts(
        repo_id=model.repo_id,
        revision=model.commit,
        task=model.task,
        library_name=library,
        tags=[library],
        config=config,
        model_type=config.get("model_type"),
        description="A model for tests.",
        files=[f.path for f in scan_folder(model.path)],
    )


def write_bundle(folder: Path, facts: ModelFacts, options: GenerateOptions) -> Path:
    """Every file of the bundle under `folder`; returns its run_inference.py."""
    for name, text in render_bundle(facts, options).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder / "run_inference.py"


def wait_until_ok(
    url: str,
    exited: Callable[[], str | None],
    log: Callable[[], str],
    timeout: float,
    poll_s: float = 0.2,
) -> None:
    """Poll GET `url` until it answers 200; fail with the server's log if it stalls or if
    `exited()` says (in words) that the server is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        gone = exited()
        if gone:
            raise RuntimeError(f"{gone}:\n{log()}")
        time.sleep(poll_s)
    raise RuntimeError(f"{url} did not answer 200 in {timeout:g}s:\n{log()}")


class BundleServer:
    """`python run_inference.py --serve` in the bundle folder, as the container runs it."""

    def __init__(self, script: Path, env: dict[str, str] | None = None) -> None:
        self.script = script
        self.environ = {**os.environ, **THREAD_ENV, **(env or {})}
        assert self.environ.get("HF_HUB_OFFLINE") == "1" and self.environ.get("HF_HOME")
        self.exit_code: int | None = None
        self.health: dict[str, Any] = {}
        self._spawn()

    def _spawn(self) -> None:
        self.port = localredis.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.script.parent / f"server-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, self.script.name, "--serve", "--host", "127.0.0.1", "--port",
             str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.environ, cwd=self.script.parent,
        )  # fmt: skip

    def wait_ready(self, timeout: float = LOAD_TIMEOUT_S) -> dict[str, Any]:
        """Until /ready answers 200; then /health's answer, also kept as `health`. A free port
        is only free until someone binds it: a server that loads slowly (an export) can find
        it taken by another test's server, whose /ready would answer in its place. So the
        answer must come from this bundle's model and level, else it starts on another port."""
        import yaml

        module = yaml.safe_load((self.script.parent / "module.yaml").read_text())
        want = (module["model"]["id"], module["optimization"]["level"])
        for _attempt in range(3):
            wait_until_ok(self.url + "/ready", self.exited, self.log, timeout)
            self.health = requests.get(self.url + "/health", timeout=5).json()
            got = (self.health.get("model"), self.health.get("optimizationLevel"))
            if got == want and self.proc.poll() is None:
                return self.health
            self.stop(timeout=10)  # ours lost the port: start it again elsewhere
            self._spawn()
        raise RuntimeError(f"{self.script.parent.name}: port taken three times:\n{self.log()}")

    def exited(self) -> str | None:
        code = self.proc.poll()
        return None if code is None else f"server exited {code}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-6000:]

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=60, **kwargs)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as Kubernetes and podman stop a container; the exit status (None: killed)."""
        if self.proc.poll() is None:
            self.terminate()
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self._log.close()
        return self.exit_code
