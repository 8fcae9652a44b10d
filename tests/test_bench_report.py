"""bench/run_all.py's table: formatting, failure marking and exit status, on synthetic rows.

No benchmark runs here; `_harness.record` is exercised against a temp file.
"""

from __future__ import annotations

import json
import sys

import pytest

from bench import run_all
from bench._harness import record, record_skip
from bench.run_all import Result, render_table, report, table_rows

MACHINE = "AMD EPYC, 2 cores, 24 GiB RAM, GPU: none, Python 3.12.0, torch 2.13.0, 2026-01-01"


def row(figure="job: median", value=58.1, unit="ms", **kw):
    base = {"script": "generate.py", "status": "ok", "figure": figure, "value": value,
            "unit": unit, "baseline": None, "baseline_what": None, "ratio": None,
            "target": None, "passed": None, "note": None}  # fmt: skip
    return {**base, **kw}


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_ok_rows_format_value_baseline_ratio_and_target():
    rows = [
        row(baseline=3.0, baseline_what="Celery no-op, median", ratio=58.1 / 3.0, note="n=30"),
        row("report: p95", 56.4, baseline=5.9, ratio=56.4 / 5.9, target="p95 < 200 ms",
            passed=True),
        row("fanout: p99", 312.0, target="p99 < 250 ms", passed=False),
        row("load: req/s", 1532.4, "req/s", baseline=647.0, ratio=1532.4 / 647.0),
    ]  # fmt: skip
    cells = table_rows([Result("generate.py", 0, rows)])
    assert cells[0] == [
        "`generate.py` job: median",
        "58.1 ms (n=30)",
        "3.0 ms: Celery no-op, median",
        "19.4x",
        "—",
    ]
    assert cells[1][3] == "9.56x" and cells[1][4] == "p95 < 200 ms: met"
    assert cells[2][2] == "—" and cells[2][3] == "—" and cells[2][4] == "p99 < 250 ms: MISSED"
    assert cells[3][1] == "1,532 req/s" and cells[3][2] == "647 req/s"

    text, status = report([Result("generate.py", 0, rows)], MACHINE)
    assert status == 0
    assert text.splitlines()[0] == f"Machine: {MACHINE}"
    table = lines_of(text)
    assert table[0] == "| figure | value | baseline | ratio | target |"
    assert table[1] == "| --- | --- | --- | --- | --- |"
    assert len(table) == 2 + len(rows)
    assert all(line.count(" | ") == 4 for line in table)  # five columns on every row
    assert "Targets missed in this run: 1" in text
    assert "FAILED" not in text


def test_failed_script_is_marked_and_exits_nonzero():
    results = [
        Result("generate.py", 0, [row()]),
        Result("api_load.py", 1, [row("partial: req/s", 10.0, "req/s", script="api_load.py")]),
        Result("ws_fanout.py", 0, []),
    ]
    text, status = report(results, MACHINE)
    assert status == 1
    table = lines_of(text)
    # rows recorded before the failure stay; the failure gets its own row
    assert "| `api_load.py` partial: req/s | 10.0 req/s |" in text
    assert "| `api_load.py` | FAILED (exit 1) | — | — | — |" in table
    assert "| `ws_fanout.py` | FAILED (exit 0 but recorded no figures) | — | — | — |" in table
    assert text.rstrip().endswith("FAILED: api_load.py, ws_fanout.py")


def test_gpu_smoke_documented_exit_2_is_not_run_not_failed():
    skip = {"script": "gpu_smoke.py", "status": "not run", "figure": "GPU path",
            "reason": run_all.NO_GPU}  # fmt: skip
    gpu = Result("gpu_smoke.py", 2, [skip], skip_exit={2: run_all.NO_GPU})
    text, status = report([Result("generate.py", 0, [row()]), gpu], MACHINE)
    assert status == 0
    assert "| `gpu_smoke.py` GPU path | not run: no NVIDIA GPU | — | — | — |" in lines_of(text)
    assert "FAILED" not in text


def test_exit_2_without_a_skip_row_is_a_failure():
    # e.g. an argparse error also exits 2: only the documented no-GPU exit is tolerated
    gpu = Result("gpu_smoke.py", 2, [], skip_exit={2: run_all.NO_GPU})
    assert gpu.failure == "exit 2"
    text, status = report([gpu], MACHINE)
    assert status == 1 and "| `gpu_smoke.py` | FAILED (exit 2) |" in text
    # and exit 2 from a script without a documented skip exit fails even with a skip row
    other = Result("generate.py", 2, [{"status": "not run", "figure": "x", "reason": "y"}])
    assert report([other], MACHINE)[1] == 1


def test_cells_cannot_break_the_table():
    rows = [row("GET /a|b", note="line\nbreak")]
    table = render_table(table_rows([Result("generate.py", 0, rows)]))
    body = table.splitlines()[2]
    assert "\\|" in body and "\n" not in body
    assert body.replace("\\|", "").count("|") == 6


@pytest.mark.parametrize(
    ("ratio", "text"), [(0.994, "0.994x"), (0.43, "0.43x"), (19.72, "19.7x"), (None, "—"),
                        (float("nan"), "—"), (1532.0, "1,532x")]
)  # fmt: skip
def test_ratio_format(ratio, text):
    assert run_all.fmt_ratio(ratio) == text


def test_record_appends_json_lines_only_when_asked(tmp_path, monkeypatch):
    out = tmp_path / "rows.jsonl"
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    monkeypatch.setattr(sys, "argv", ["bench/generate.py"])
    record("unrecorded", 1.0, "ms")
    assert not out.exists()

    monkeypatch.setenv("BENCH_RESULTS", str(out))
    made = record("job: median", 6.0, "ms", baseline=3.0, target="p95 < 200 ms", passed=True)
    record("job: p95", float("nan"), "ms", baseline=0.0)
    record_skip("GPU path", run_all.NO_GPU)
    rows = run_all.read_rows(out)
    assert made["ratio"] == 2.0 and rows[0] == made
    assert rows[0]["script"] == "generate.py" and rows[0]["status"] == "ok"
    assert rows[1]["value"] is None and rows[1]["ratio"] is None  # NaN is not valid JSON
    assert rows[2] == {"script": "generate.py", "status": "not run", "figure": "GPU path",
                       "reason": "no NVIDIA GPU"}  # fmt: skip
    json.dumps(rows)  # round-trips


def test_main_runs_scripts_in_order_and_reports(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(script, workdir, quick):
        calls.append((script.name, quick))
        if script.name == "gpu_smoke.py":
            skip = {"status": "not run", "figure": "GPU path", "reason": run_all.NO_GPU}
            return Result(script.name, 2, [skip], skip_exit=dict(script.skip_exit))
        return Result(script.name, 0, [row(script=script.name)])

    monkeypatch.setattr(run_all, "run_script", fake_run)
    monkeypatch.setattr(run_all, "machine_line", lambda: MACHINE)
    assert run_all.main(["--quick"]) == 0
    assert calls == [(s.name, True) for s in run_all.SCRIPTS]
    out = capsys.readouterr().out
    assert out.count("| figure | value | baseline | ratio | target |") == 1
    assert "not run: no NVIDIA GPU" in out

    calls.clear()
    assert run_all.main(["api_load", "generate.py"]) == 0
    assert calls == [("generate.py", False), ("api_load.py", False)]
    with pytest.raises(SystemExit):
        run_all.main(["nope.py"])
