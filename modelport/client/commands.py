"""User subcommands of `modelport`: generate, benchmark, monitor, jobs. REST only."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from modelport.client import render
from modelport.client.api import ApiError, Client, Unreachable
from modelport.client.watch import watch
from modelport.core.schemas import OPTIMIZATION_LEVELS

OK, API_ERROR, USAGE, FAILED, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = """exit codes:
  0    done (for generate: validation passed or has warnings)
  1    the API refused the request (4xx); "error CODE: message" on stderr
  2    usage error (bad arguments; generate would overwrite different files)
  3    the job failed or was cancelled; generate: validation failed
  4    cannot reach the API, or it answered 5xx
  130  interrupted (Ctrl-C); a submitted job keeps running: `modelport jobs cancel ID`

environment: MODELPORT_URL (default http://localhost:5000), MODELPORT_API_KEY"""
BUNDLE_FILES = ("Dockerfile", "requirements.txt", "run_inference.py", "module.yaml", "README.md")


class UsageError(Exception):
    """The command cannot go on as asked (exit 2)."""


def add_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="API base URL (env MODELPORT_URL)")
    common.add_argument("--api-key", help="API key (env MODELPORT_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    kw = {
        "parents": [common],
        "epilog": EXIT_CODES,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }

    gen = sub.add_parser("generate", help="generate a deployment bundle into DIR", **kw)
    gen.add_argument("model_url", metavar="URL", help="org/name, hf://org/name@rev or HF URL")
    gen.add_argument("--out", required=True, type=Path, metavar="DIR")
    gen.add_argument("--batch-size", type=int)
    gen.add_argument("--memory", help="Kubernetes quantity, e.g. 2Gi")
    gen.add_argument("--gpu", action="store_true", help="a CUDA bundle")
    gen.add_argument("--optimization-level", choices=OPTIMIZATION_LEVELS)
    gen.add_argument(
        "--from-benchmark",
        metavar="JOB",
        help="the options a succeeded benchmark or search recommends (instead of the above)",
    )
    gen.add_argument("--force", action="store_true", help="overwrite files that differ")
    gen.set_defaults(handler=generate)

    bench = sub.add_parser("benchmark", help="benchmark a model by batch size", **kw)
    bench.add_argument("model", metavar="MODEL")
    bench.add_argument("--batch-sizes", type=_int_list, metavar="1,8,32")
    bench.add_argument("--iterations", type=int)
    bench.add_argument("--warmup", type=int)
    bench.add_argument("--sequence-length", type=int)
    bench.add_argument("--device", choices=("auto", "cpu", "gpu"))
    bench.add_argument("--optimization-level", choices=OPTIMIZATION_LEVELS)
    bench.add_argument("--slo-ms", type=float, help="p95 latency objective in ms")
    bench.add_argument(
        "--search",
        action="store_true",
        help="search the optimization levels too: a table behind the quality gate, and the "
        "configuration to generate",
    )
    bench.add_argument(
        "--levels", type=_str_list, metavar="standard,bfloat16", help="the levels to search"
    )
    bench.add_argument(
        "--served",
        type=_int_list,
        metavar="1,4,16",
        help="also serve the bundle and drive it with this many concurrent clients each",
    )
    bench.add_argument(
        "--delays",
        type=_int_list,
        metavar="0,2,5,10",
        help="with --served: serve at each batching delay (ms) and recommend the best",
    )
    bench.set_defaults(handler=benchmark)

    mon = sub.add_parser("monitor", help="statistics and recommendations for a model", **kw)
    mon.add_argument("model", metavar="MODEL")
    mon.add_argument("--days", type=int, default=7)
    mon.add_argument("--metrics", type=_str_list, metavar="throughput,latency,...")
    mon.set_defaults(handler=monitor)

    live = sub.add_parser("watch", help="live metric updates and alerts (WebSocket)", **kw)
    live.add_argument("model", metavar="MODEL")
    live.add_argument("--metrics", type=_str_list, metavar="throughput,latency,...")
    live.set_defaults(handler=watch)

    jobs = sub.add_parser("jobs", help="list, show or cancel jobs", **kw)
    jobs_sub = jobs.add_subparsers(dest="action", required=True)
    ls = jobs_sub.add_parser("list", **kw)
    ls.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    ls.add_argument("--kind", choices=("generate", "benchmark"))
    ls.add_argument("--model")
    ls.add_argument("--page", type=int, default=1)
    ls.add_argument("--per-page", type=int, default=20)
    ls.set_defaults(handler=jobs_list)
    for name, handler in (("show", jobs_show), ("cancel", jobs_cancel)):
        p = jobs_sub.add_parser(name, **kw)
        p.add_argument("job_id", metavar="ID")
        p.set_defaults(handler=handler)


def run(args: argparse.Namespace) -> int:
    """Run one user subcommand, mapping every outcome to a documented exit code."""
    client = Client(args.url, args.api_key)
    try:
        return args.handler(client, args)
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return UNREACHABLE if exc.status >= 500 else API_ERROR
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UNREACHABLE
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def generate(client: Client, args) -> int:
    options = _drop_none(
        batchSize=args.batch_size,
        memory=args.memory,
        gpu=True if args.gpu else None,
        optimizationLevel=args.optimization_level,
    )
    body: dict = {"modelUrl": args.model_url, "options": options}
    if args.from_benchmark:
        if options:
            raise UsageError("give either --from-benchmark or options, not both")
        body = {"modelUrl": args.model_url, "fromBenchmark": args.from_benchmark}
    result, job = _run_job(client, "/api/generate", body)
    if result is None:
        return _job_failed(job)
    files = result["files"]
    written = write_bundle(args.out, files, force=args.force)
    validation = result.get("validation", {})
    status = validation.get("status")
    if args.json:
        _print_json({"out": str(args.out), "files": written, "validation": validation})
    else:
        for name in written:
            print(args.out / name)
        print(f"validation: {status}")
        for error in validation.get("errors", []):
            print(f"  error: {error}")
        for warning in validation.get("warnings", []):
            print(f"  warning: {warning}")
    return FAILED if status == "failed" else OK


SAFE_NAME = re.compile(r"\.?[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?")


def write_bundle(out: Path, files: dict[str, str], *, force: bool) -> list[str]:
    """Write the bundle's files into `out` (the runtime's in one folder level below it);
    refuse (before writing any) a name that could leave `out`, or to clobber other files."""
    for name in files:
        if not SAFE_NAME.fullmatch(name) or ".." in name:
            raise UsageError(f"the API sent an unsafe file name {name!r}; nothing written")
    clashes = [
        n for n, text in files.items()
        if (out / n).exists() and (out / n).read_text(errors="replace") != text
    ]  # fmt: skip
    if clashes and not force:
        raise UsageError(
            f"{', '.join(str(out / n) for n in clashes)} exist(s) with other content; "
            "use --force to overwrite"
        )
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return sorted(files, key=lambda n: (n not in BUNDLE_FILES, n))


def benchmark(client: Client, args) -> int:
    body = _drop_none(
        modelId=args.model,
        batchSizes=args.batch_sizes,
        iterations=args.iterations,
        warmup=args.warmup,
        sequenceLength=args.sequence_length,
        device=args.device,
        optimizationLevel=args.optimization_level,
        latencySloMs=args.slo_ms,
        search=True if args.search or args.levels else None,
        optimizationLevels=args.levels,
        servedConcurrency=args.served,
        batchDelaysMs=args.delays,
    )
    result, job = _run_job(client, "/api/benchmark", body)
    if result is None:
        return _job_failed(job)
    if args.json:
        _print_json(result)
        return OK
    if result.get("search"):
        _print_search(result["search"], args.model, job)
        _print_served(result.get("served"))
        return OK
    rows = result.get("details") or _rows_from_results(result, args.batch_sizes)
    render.table(
        ["batch", "status", "samples/s", "p50 ms", "p95 ms", "peak MB", "$/1M"],
        [
            [r.get("batchSize"), r.get("status", "ok"), r.get("throughput"),
             (r.get("latencyMs") or {}).get("p50"), (r.get("latencyMs") or {}).get("p95"),
             r.get("peakRssMb"), r.get("costPerMillion")]
            for r in rows
        ],
    )  # fmt: skip
    analysis = result.get("analysis", {})
    print(f"\noptimal batch size: {analysis.get('optimal_batch_size')}")
    for rec in analysis.get("resource_recommendations", []):
        print(f"- {rec}")
    _print_served(result.get("served"))
    return OK


def _print_served(served: dict | None) -> None:
    """The bundle's server at each concurrency, and what it adds over in-process."""
    if not served:
        return
    print(
        f"\nserved (the bundle's server, max batch size {served['maxBatchSize']}, batching "
        f"delay {served.get('maxDelayMs', '?')} ms):"
    )
    if served.get("error"):
        print(f"  not measured: {served['error']}")
        return
    if served.get("delays"):
        render.table(
            ["delay ms", "best req/s", "worst p95 ms", "meets objective"],
            [[d["maxDelayMs"], d["bestThroughput"], d["worstP95Ms"],
              "yes" if d["meetsObjective"] else "no"] for d in served["delays"]],
        )  # fmt: skip
        print(served.get("delaySentence") or "")
    render.table(
        ["clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"],
        [
            [lv["concurrency"], lv["requests"], lv["errors"], lv["throughput"],
             *((lv["latencyMs"] or {}).get(k) for k in ("p50", "p95", "p99"))]
            for lv in served["levels"]
        ],
    )  # fmt: skip
    print(
        f"server adds {render.fmt(served.get('addedP50Ms'))} ms p50 to a single predict; best "
        f"served throughput is {render.fmt(served.get('throughputVsInProcess'))}x in-process; "
        f"server RSS {render.fmt(served.get('serverMemoryMb'))} MB, mean batch "
        f"{render.fmt(served.get('meanBatchSize'))} inputs"
    )


def _print_search(search: dict, model: str, job: dict | None) -> None:
    """The search's table, fastest first: * recommended, + on the Pareto front."""
    render.table(
        ["", "level", "batch", "samples/s", "p95 ms", "peak MB", "$/1M", "quality", "why not"],
        [
            ["*" if c["recommended"] else "+" if c["pareto"] else "", c["optimizationLevel"],
             c["batchSize"], c["throughput"], c["latencyP95Ms"], c["memoryMb"],
             c["costPerMillion"], _quality(c["quality"]), "; ".join(c["rejectedBecause"])]
            for c in search["configurations"]
        ],
    )  # fmt: skip
    print("\n* recommended   + Pareto front (throughput, p95, memory, cost)")
    skipped = search.get("notRun") or []
    if skipped:
        print("not run, over the objective: " + ", ".join(
            f"{s['optimizationLevel']} batch {s['batchSize']}" for s in skipped))  # fmt: skip
    print(search["sentence"])
    if search.get("recommended") and job:
        print(
            f"\ngenerate this: modelport generate {model} --from-benchmark {job['jobId']} --out DIR"
        )


def _quality(cell: dict) -> str:
    if cell.get("metric") == "reference":
        return "reference"
    if cell.get("passed") is None:
        return "skipped"
    mark = "pass" if cell.get("passed") else "FAIL"
    value = cell.get("value")
    shown = f"{value:.4f}" if isinstance(value, float) else render.fmt(value)
    return f"{mark} {cell.get('metric')} {shown}"


def monitor(client: Client, args) -> int:
    body = _drop_none(modelId=args.model, days=args.days, metrics=args.metrics)
    report = client.request("POST", "/api/monitor", json=body)[2]
    if args.json:
        _print_json(report)
        return OK
    stats = report.get("statistics", {})
    render.table(
        ["metric", "mean", "p95", "total", "trend"],
        [[name, s.get("mean"), s.get("p95"), s.get("total"), s.get("trend")]
         for name, s in stats.items() if isinstance(s, dict)],
    )  # fmt: skip
    recs = report.get("recommendations", [])
    if recs:
        print("\nrecommendations:")
        for rec in recs:
            print(f"- {rec}")
    return OK


def jobs_list(client: Client, args) -> int:
    params = _drop_none(
        status=args.status, kind=args.kind, modelId=args.model, page=args.page,
        perPage=args.per_page,
    )  # fmt: skip
    page = client.get("/api/jobs", params=params)
    if args.json:
        _print_json(page)
        return OK
    render.table(
        ["id", "kind", "status", "progress", "model", "created"],
        [[j["jobId"], j["kind"], j["status"], f"{j['progress'] * 100:.0f}%", j["modelId"],
          j["createdAt"]] for j in page["jobs"]],
    )  # fmt: skip
    print(f"page {page['page']}, {len(page['jobs'])} of {page['total']}", file=sys.stderr)
    return OK


def jobs_show(client: Client, args) -> int:
    job = client.get(f"/api/jobs/{_job_id(args.job_id)}")
    if args.json:
        _print_json(job)
        return OK
    for key in ("jobId", "kind", "status", "progress", "stage", "modelId", "queue", "attempts",
                "createdAt", "startedAt", "finishedAt"):  # fmt: skip
        print(f"{key}: {render.fmt(job.get(key))}")
    if job.get("error"):
        print(f"error: {job['error'].get('code')} {job['error'].get('message')}")
    if job.get("result") is not None:
        print("result: " + json.dumps(job["result"])[:2000])
    return OK


def jobs_cancel(client: Client, args) -> int:
    job = client.request("DELETE", f"/api/jobs/{_job_id(args.job_id)}")[2]
    if args.json:
        _print_json(job)
    else:
        print(f"{job['jobId']} {job['status']}")
    return OK


def _run_job(client: Client, path: str, body: dict):
    """Submit and follow a job: (result, job), result None when the job did not succeed."""
    result, location = client.submit(path, body)
    if location is None:
        return result, None
    progress = render.Progress(path.rsplit("/", 1)[-1])
    job_id = location.rstrip("/").rsplit("/", 1)[-1]
    print(f"job {job_id}", file=sys.stderr)
    try:
        job = client.wait_job(location, on_update=progress.update)
    finally:
        progress.close()
    if job["status"] == "succeeded":
        return job["result"], job
    return None, job


def _job_failed(job: dict) -> int:
    error = job.get("error") or {}
    print(f"error {error.get('code')}: {error.get('message')} (job {job['jobId']} {job['status']})",
          file=sys.stderr)  # fmt: skip
    return FAILED


def _rows_from_results(result: dict, sizes: list[int] | None) -> list[dict]:
    res = result.get("results", {})
    sizes = sizes or [1, 8, 32]
    return [
        {"batchSize": size, "throughput": res.get("throughput", [None] * len(sizes))[i],
         "peakRssMb": res.get("memory_usage", [None] * len(sizes))[i]}
        for i, size in enumerate(sizes)
    ]  # fmt: skip


def _job_id(raw: str) -> str:
    if not raw or "/" in raw or len(raw) > 64:
        raise UsageError(f"not a job id: {raw!r}")
    return raw


def _drop_none(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _int_list(raw: str) -> list[int]:
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {raw!r}"
        ) from None


def _str_list(raw: str) -> list[str]:
    return [x.strip() for x in raw.split(",") if x.strip()]
