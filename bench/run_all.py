"""`make bench`: run every script under bench/ and print ONE table of its figures.

    .venv/bin/python bench/run_all.py [--quick] [SCRIPT ...]

Each script runs as a subprocess, in the order below, with its output streamed as it runs
and BENCH_RESULTS pointing at a file where it appends one JSON line per figure
(`_harness.record`). Afterwards this prints a line naming the machine and a markdown table:

    | figure | value | baseline | ratio | target |

`ratio` is value / baseline, both measured in the same run. `target` is the figure's stated
target with whether this run met it, or "—" where the figure has none. gpu_smoke.py's exit 2
(no NVIDIA GPU) shows as "not run: no NVIDIA GPU"; any other nonzero exit, or a script that
recorded nothing, is marked FAILED in the table and makes this exit 1 after printing it.

`--quick` passes each script smaller settings (fewer runs, subscribers, seconds): for
checking that the whole thing works, not for numbers to publish. SCRIPT names a subset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO_GPU = "no NVIDIA GPU"


@dataclass(frozen=True)
class Script:
    name: str
    quick: tuple[str, ...] = ()
    # exit code -> meaning, for a documented "could not run here" exit; the script must
    # also have recorded a `record_skip` row, or the exit counts as a failure
    skip_exit: dict[int, str] = field(default_factory=dict)


SCRIPTS = (
    Script("generate.py", quick=("--n", "5")),
    Script("benchmark_fidelity.py", quick=("--iterations", "5", "--warmup", "1")),
    Script("monitor_query.py", quick=("--models", "5", "--runs", "10")),
    Script("ws_fanout.py", quick=("--subscribers", "50", "--events", "10")),
    Script("api_load.py", quick=("--seconds", "2")),
    Script(
        "bundle_server.py",
        quick=("--bare-seconds", "0.5", "--requests", "100", "--seconds", "4"),
    ),
    Script(
        "search.py",
        quick=(
            "--iterations",
            "5",
            "--warmup",
            "1",
            "--batch-sizes",
            "1,8",
            "--sequence-length",
            "32",
        ),
    ),
    Script("gpu_smoke.py", quick=("--iterations", "10", "--warmup", "2"), skip_exit={2: NO_GPU}),
)


@dataclass
class Result:
    script: str
    returncode: int
    rows: list[dict]
    seconds: float = 0.0
    skip_exit: dict[int, str] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        """The documented 'cannot run here' exit, backed by a recorded not-run row."""
        return self.returncode in self.skip_exit and any(
            r.get("status") == "not run" for r in self.rows
        )

    @property
    def failure(self) -> str | None:
        if self.skipped:
            return None
        if self.returncode != 0:
            return f"exit {self.returncode}"
        if not self.rows:
            return "exit 0 but recorded no figures"
        return None


# ---------------------------------------------------------------- formatting


def fmt_number(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 0.1 or x == 0:
        return f"{x:.1f}"
    return f"{x:.2g}"


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "—"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"{r:.3g}x"


def fmt_quantity(value: float | None, unit: str | None) -> str:
    if value is None:
        return "—"
    return f"{fmt_number(value)} {unit}".strip() if unit else fmt_number(value)


def cell(text: str) -> str:
    """A markdown table cell: no pipes or newlines breaking the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def table_rows(results: list[Result]) -> list[list[str]]:
    """[figure, value, baseline, ratio, target] per row, in script order."""
    out: list[list[str]] = []
    for result in results:
        tag = f"`{result.script}`"
        for row in result.rows:
            figure = f"{tag} {row['figure']}"
            if row.get("status") == "not run":
                out.append([figure, f"not run: {row.get('reason') or 'unknown'}", "—", "—", "—"])
                continue
            value = fmt_quantity(row["value"], row.get("unit"))
            if row.get("note"):
                value += f" ({row['note']})"
            baseline = "—"
            if row.get("baseline") is not None:
                baseline = fmt_quantity(row["baseline"], row.get("unit"))
                if row.get("baseline_what"):
                    baseline += f": {row['baseline_what']}"
            target = row.get("target") or "—"
            if row.get("target") and row.get("passed") is not None:
                target += ": met" if row["passed"] else ": MISSED"
            out.append([figure, value, baseline, fmt_ratio(row.get("ratio")), target])
        if result.failure:
            out.append([tag, f"FAILED ({result.failure})", "—", "—", "—"])
    return out


def render_table(rows: list[list[str]]) -> str:
    header = ["figure", "value", "baseline", "ratio", "target"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: list[Result], machine: str, quick: bool = False) -> tuple[str, int]:
    """The printed report and the exit status: 1 when any script failed, else 0."""
    failed = [r.script for r in results if r.failure]
    parts = [f"Machine: {machine}"]
    if quick:
        parts.append("Settings: --quick (smaller runs; for checking, not for publishing)")
    parts += ["", render_table(table_rows(results))]
    missed = [row["figure"] for r in results for row in r.rows if row.get("passed") is False]
    if missed:
        parts.append(f"\nTargets missed in this run: {len(missed)}")
    if failed:
        parts.append(f"\nFAILED: {', '.join(failed)}")
    return "\n".join(parts), 1 if failed else 0


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


# ---------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    return "RAM unknown"


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "GPU: none"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    names = [
        line.split(" (UUID")[0] for line in probe.stdout.splitlines() if line.startswith("GPU")
    ]
    return "GPU: " + ("; ".join(names) if names else "none")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, {_ram_gib()}, {_gpus()}, "
        f"Python {platform.python_version()}, torch {_version('torch')}, "
        f"{datetime.date.today().isoformat()}"
    )


# ---------------------------------------------------------------- running


def run_script(script: Script, workdir: Path, quick: bool) -> Result:
    results = workdir / f"{script.name}.jsonl"
    command = [sys.executable, str(HERE / script.name), *(script.quick if quick else ())]
    print(f"\n=== bench/{script.name} {' '.join(command[2:])}".rstrip(), flush=True)
    started = time.monotonic()
    # inherits stdout/stderr: the script's own output streams as it runs
    code = subprocess.run(command, env={**os.environ, "BENCH_RESULTS": str(results)}).returncode
    seconds = time.monotonic() - started
    print(f"=== bench/{script.name}: exit {code} after {seconds:.0f} s", flush=True)
    return Result(script.name, code, read_rows(results), seconds, dict(script.skip_exit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings, for checking")
    parser.add_argument("scripts", nargs="*", metavar="SCRIPT", help="run only these")
    args = parser.parse_args(argv)
    known = {s.name: s for s in SCRIPTS}
    wanted = [n if n.endswith(".py") else f"{n}.py" for n in args.scripts]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        parser.error(f"unknown script(s) {unknown}; choose from {sorted(known)}")
    chosen = [s for s in SCRIPTS if not wanted or s.name in wanted]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelport-bench-results-") as tmp:
        results = [run_script(s, Path(tmp), args.quick) for s in chosen]
    text, status = report(results, machine_line(), quick=args.quick)
    took = ", ".join(f"{r.script} {r.seconds:.0f} s" for r in results)
    print(f"\n{text}\n\nTook {time.monotonic() - started:.0f} s ({took})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
