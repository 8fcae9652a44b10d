"""`modelport` command: talk to a modelport API (generate, benchmark, monitor, jobs), or, as
an operator, run the platform locally and manage API keys, the database and the demo model."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_HOST = "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    from modelport.client import commands

    parser = argparse.ArgumentParser(
        prog="modelport",
        description=__doc__,
        epilog=commands.EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands.add_parsers(sub)  # user commands: REST only, no platform settings needed

    dev = sub.add_parser("dev", help="run API, worker, beat and Flower (and a local Redis)")
    dev.add_argument("--no-flower", action="store_true")
    dev.add_argument("--procfile", default=str(ROOT / "Procfile"))

    sub.add_parser("db-upgrade", help="apply database migrations (alembic upgrade head)")
    sub.add_parser("flower", help="run Flower on FLOWER_PORT (basic auth required in production)")
    sub.add_parser("demo-install", help="put the offline demo model into the HF cache")
    history = sub.add_parser(
        "demo-history", help="load N days of realistic synthetic monitoring history for a model"
    )
    history.add_argument("model", help="model id, e.g. sentence-transformers/all-MiniLM-L6-v2")
    history.add_argument("--days", type=int, default=7)
    history.add_argument("--interval", type=int, default=60, help="seconds between samples")
    history.add_argument("--seed", type=int, default=0)
    history.add_argument("--no-degrade", action="store_true", help="no latency regression")

    keys = sub.add_parser("api-key", help="create, list or revoke API keys")
    key_sub = keys.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create")
    create.add_argument("name")
    revoke = key_sub.add_parser("revoke")
    revoke.add_argument("id", type=int)
    key_sub.add_parser("list")

    args = parser.parse_args(argv)
    if hasattr(args, "handler"):
        return commands.run(args)
    from modelport.core.settings import get_settings

    if args.command == "dev":
        # a development platform listens on this machine only unless HOST says otherwise
        # (the API, and Flower, whose dev run has no password); SPEC's 0.0.0.0 default
        # stays for deployments (the Procfile's and compose's own commands)
        os.environ.setdefault("HOST", DEV_HOST)
    get_settings()  # fail fast, naming any malformed variable
    if args.command == "dev":
        return run_dev(Path(args.procfile), flower=not args.no_flower)
    if args.command == "flower":
        return run_flower()
    if args.command == "db-upgrade":
        db_upgrade()
        return 0
    if args.command == "demo-install":
        from modelport.packaging.demo import install_demo_model

        print(f"sentence-transformers/all-MiniLM-L6-v2 @ {install_demo_model()}")
        return 0
    if args.command == "demo-history":
        return demo_history(args)
    return api_key(args)


def demo_history(args) -> int:
    from modelport.core.errors import InvalidModel
    from modelport.core.modelref import parse_model_url
    from modelport.monitoring.demo import load_demo_history

    if not 1 <= args.days <= 3650 or not 1 <= args.interval <= 86400:
        print("--days must be 1..3650 and --interval 1..86400", file=sys.stderr)
        return 2
    try:
        model_id = parse_model_url(args.model).repo_id
    except InvalidModel as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    rows = load_demo_history(
        model_id, args.days, args.interval, seed=args.seed, degrade=not args.no_degrade
    )
    print(f"loaded {rows} samples ({args.days} days every {args.interval} s) for {model_id}")
    return 0


def flower_argv(settings) -> list[str] | None:
    """Flower's command line from settings; None when production would run it without auth."""
    if settings.FLASK_ENV == "production" and not settings.FLOWER_BASIC_AUTH:
        return None
    argv = [
        sys.executable, "-m", "celery", "-A", "modelport.workers.app", "flower",
        f"--port={settings.FLOWER_PORT}", f"--address={settings.HOST}",
    ]  # fmt: skip
    if settings.FLOWER_BASIC_AUTH:
        argv.append(f"--basic-auth={settings.FLOWER_BASIC_AUTH}")
    if settings.FLOWER_URL_PREFIX:
        argv.append(f"--url_prefix={settings.FLOWER_URL_PREFIX}")
    return argv


def run_flower() -> int:
    from modelport.core.settings import get_settings

    argv = flower_argv(get_settings())
    if argv is None:
        print(
            "modelport: refusing to run Flower without authentication in production; "
            "set FLOWER_BASIC_AUTH=user:password",
            file=sys.stderr,
        )
        return 2
    os.execv(sys.executable, argv)  # noqa: S606 - fixed argv, no shell
    return 0  # pragma: no cover


def db_upgrade(url: str | None = None) -> None:
    from alembic.config import Config

    from alembic import command

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    if url:
        config.cmd_opts = argparse.Namespace(x=[f"db={url}"])
    command.upgrade(config, "head")


def api_key(args) -> int:
    from modelport.core import apikeys

    if args.action == "create":
        new = apikeys.create_key(args.name)
        print(f"id={new.id} name={new.name}\n{new.key}")
        print("Store this key now: only its hash is kept.", file=sys.stderr)
        return 0
    if args.action == "revoke":
        if apikeys.revoke_key(args.id):
            print(f"revoked key {args.id}")
            return 0
        print(f"no live key with id {args.id}", file=sys.stderr)
        return 1
    for key in apikeys.list_keys():
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
        print(f"{key.id}\t{key.name}\tmp_{key.prefix}_…\t{state}")
    return 0


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU, asked without initialising CUDA here."""
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return False
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False)
    return probe.returncode == 0 and b"GPU" in probe.stdout


def run_dev(procfile: Path, *, flower: bool) -> int:
    from honcho.environ import parse_procfile
    from honcho.manager import Manager

    from modelport import localredis
    from modelport.core.settings import get_settings

    settings = get_settings()
    var = Path(os.environ.get("MODELPORT_VAR", "var")).resolve()
    var.mkdir(parents=True, exist_ok=True)
    os.environ["MODELPORT_VAR"] = str(var)
    redis_proc = localredis.ensure_redis(settings.REDIS_URL, var / "redis")
    if redis_proc:
        print(f"started local redis-server for {settings.REDIS_URL} (data in {var / 'redis'})")
    try:
        db_upgrade()
        from modelport.packaging.demo import install_demo_model

        install_demo_model()
        names = ["web", "worker", "worker_cpu", "beat"] + (["flower"] if flower else [])
        if settings.ENABLE_GPU and gpu_present():
            names.append("worker_gpu")
        processes = parse_procfile(procfile.read_text()).processes
        env = dict(os.environ)
        # the Procfile's commands (gunicorn, celery) live beside this interpreter
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        manager = Manager()
        for name in names:
            manager.add_process(name, processes[name], env=env, cwd=str(ROOT))
        host = f"[{settings.HOST}]" if ":" in settings.HOST else settings.HOST
        print(
            f"modelport: dashboard http://{host}:{settings.PORT}/  API "
            f"http://{host}:{settings.PORT}/api/health"
            + (f"  Flower http://{host}:{settings.FLOWER_PORT}/" if flower else "")
        )
        manager.loop()
        return manager.returncode or 0
    finally:
        localredis.stop(redis_proc)


if __name__ == "__main__":
    sys.exit(main())
