"""podman for the container tests: install and configure it, provide the base image, build a
bundle's Dockerfile as generated (only build arguments and mounts from outside), run it.

Builds reach package indexes only through this machine's pip settings (config files and PIP_*
variables, merged by `pip config list`), mounted read-only into the build with every local path
they name (find-links folders, file:// indexes, the certificate bundle, constraints).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelport import localredis
from modelport.packaging import versions
from tests.packaging.bundle_servers import wait_until_ok

ROOT = Path(__file__).resolve().parents[2]
# The stand-in is built under the tag; the Dockerfile pins a digest as the default of an ARG.
BASE_IMAGE = versions.PYTHON_IMAGE_TAG
PIP_INDEX = "https://pypi.org/simple"
_PIP_LINE = re.compile(r"^(?:[\w-]+|:env:)\.([\w-]+)='(.*)'$")


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed:\n{result.stderr[-4000:]}")
    return result


def ensure_engine() -> None:
    """podman installed and configured, and the base image present; skip only where a non-root
    user lacks podman (CI runs as root, where a failure to set up fails the tests)."""
    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip("podman is not installed and installing it needs root (.ci/install-podman)")
    subprocess.run([str(ROOT / ".ci" / "install-podman")], check=True, capture_output=True)
    subprocess.run(
        [str(ROOT / ".ci" / "container-base"), BASE_IMAGE], check=True, capture_output=True
    )


def pip_settings(folder: Path) -> tuple[list[str], list[str]]:
    """(mount arguments, build arguments) giving a build this machine's pip configuration."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    options: dict[str, str] = {}
    for line in listed.splitlines():  # files first, the environment last: later wins, as in pip
        match = _PIP_LINE.match(line.strip())
        if match:
            options[match.group(1)] = match.group(2)
    options.pop("index-url", None)  # passed as PIP_INDEX_URL, as a user with a mirror would
    conf = folder / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    paths = set()
    for value in options.values():
        for word in value.split():
            if word.startswith("/"):
                paths.add(word)
            elif word.startswith("file:///"):  # a local index links to files beside it
                paths.add(os.path.dirname(word.removeprefix("file://").rstrip("/")))
    for path in sorted(paths):
        if os.path.exists(path):
            top = path if os.path.isfile(path) else path.rstrip("/")
            mounts += ["-v", f"{top}:{top}:ro"]
    index = os.environ.get("PIP_INDEX_URL", PIP_INDEX)
    args = ["--build-arg", f"PIP_INDEX_URL={index}", "--build-arg", f"TORCH_INDEX_URL={index}"]
    return mounts, args


@dataclass
class Build:
    tag: str
    seconds: float
    log: str

    def cached(self, step: str) -> bool:
        """Whether the step whose instruction contains `step` came from the layer cache."""
        lines = self.log.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("STEP ") and step in line:
                following = lines[i + 1 : i + 3]
                return any(ln.startswith("--> Using cache") for ln in following)
        raise AssertionError(f"no build step contains {step!r}")


def build(context: Path, tag: str, mounts: list[str], args: list[str]) -> Build:
    began = time.monotonic()
    result = podman(
        "build", "--format", "docker", "--network", "host", "--layers", "-t", tag,
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *args, *mounts, str(context),
        timeout=1200, check=False,
    )  # fmt: skip
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"podman build of {tag} failed:\n{log[-6000:]}")
    return Build(tag, time.monotonic() - began, log)


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


@dataclass
class Container:
    """`podman run -d` of an image, published on a loopback port."""

    image: str
    run_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=localredis.free_port)
    started: float = 0.0
    name: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Container:
        self.name = f"modelport-test-{self.port}"
        self.started = time.monotonic()
        podman("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:8080",
               *self.run_args, self.image)  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds from `podman run` to /ready answering 200."""
        wait_until_ok(self.url + "/ready", self.exited, self.logs, timeout, poll_s=0.1)
        return time.monotonic() - self.started

    def exited(self) -> str | None:
        running = self.state("{{.State.Running}}") == "true"
        return None if running else f"{self.image} exited"

    def state(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name, check=False).stdout.strip()

    def listen_backlog(self) -> int:
        """The accept queue of the server's listening socket (ss's Send-Q for a listener),
        read from the host inside the container's network namespace."""
        pid = self.state("{{.State.Pid}}")
        out = subprocess.run(
            ["nsenter", "-t", pid, "-n", "ss", "-ltnH", "sport = :8080"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        return int(out[2])  # State Recv-Q Send-Q Local Peer

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-6000:]

    def stop(self, timeout_s: int = 60) -> int:
        """`podman stop` (SIGTERM, then SIGKILL after timeout_s); the exit code."""
        podman("stop", "-t", str(timeout_s), self.name, timeout=timeout_s + 30, check=False)
        return int(self.state("{{.State.ExitCode}}") or -1)

    def remove(self) -> None:
        podman("rm", "-f", self.name, check=False)

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.remove()
