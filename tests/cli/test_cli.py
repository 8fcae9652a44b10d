"""The `modelport` client commands as a subprocess against a real server and a real worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from modelport import localredis
from tests.fixtures.services import ROOT


@pytest.fixture(scope="module")
def api_url(platform_env):
    from modelport.api import create_app

    server = make_server("127.0.0.1", localredis.free_port(), create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def cli(*args: str, url: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELPORT_URL": url}
    env.pop("MODELPORT_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_generate_writes_bundle(api_url, worker, tiny_models, tmp_path):
    model = tiny_models["text-classification"]
    out = tmp_path / "bundle"
    proc = cli("generate", model.repo_id, "--batch-size", "2", "--out", str(out), url=api_url)
    assert proc.returncode == 0, proc.stderr
    names = {"Dockerfile", "requirements.txt", "run_inference.py", "module.yaml", "README.md"}
    assert {p.name for p in out.iterdir()} == names | {".dockerignore", "modelport_runtime"}
    assert (out / "modelport_runtime" / "server.py").is_file()
    assert "validation: " in proc.stdout
    assert "generate [" in proc.stderr  # progress lines (stderr is not a terminal here)

    # same answer again (cached): identical files are fine, different ones are refused
    (out / "README.md").write_text("mine")
    again = cli("generate", model.repo_id, "--batch-size", "2", "--out", str(out), url=api_url)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (out / "README.md").read_text() == "mine"
    forced = cli(
        "generate", model.repo_id, "--batch-size", "2", "--out", str(out), "--force", "--json",
        url=api_url,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["validation"]["status"] in ("passed", "warnings")
    assert (out / "README.md").read_text() != "mine"


def test_generate_unknown_model_is_a_failed_job(api_url, worker, tmp_path):
    proc = cli("generate", "nobody/nothing-here", "--out", str(tmp_path / "x"), url=api_url)
    assert proc.returncode == 3
    assert "error 1001" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_benchmark_table_and_json(api_url, worker, minilm):
    args = ["benchmark", minilm.repo_id, "--batch-sizes", "1,2", "--iterations", "2",
            "--warmup", "0", "--sequence-length", "8", "--device", "cpu"]  # fmt: skip
    proc = cli(*args, url=api_url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["batch", "status", "samples/s"]
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"]
    assert "optimal batch size: " in proc.stdout

    as_json = cli(*args, "--json", url=api_url)  # cached by now
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["analysis"]["optimal_batch_size"] in (1, 2)
    assert len(result["results"]["throughput"]) == 2


def test_benchmark_served_table(api_url, worker, tiny_models):
    model = tiny_models["text-classification"].repo_id
    args = ["benchmark", model, "--batch-sizes", "1,2", "--iterations", "4", "--warmup", "1",
            "--sequence-length", "8", "--device", "cpu", "--served", "1,2"]  # fmt: skip
    proc = cli(*args, url=api_url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("served (the bundle's"))
    assert lines[start + 1].split() == ["clients", "requests", "errors", "req/s", "p50", "ms",
                                        "p95", "ms", "p99", "ms"]  # fmt: skip
    assert [line.split()[:3] for line in lines[start + 2 : start + 4]] == [
        ["1", "4", "0"], ["2", "8", "0"]]  # fmt: skip
    assert lines[start + 4].startswith("server adds ")


def test_benchmark_search_table_then_generate_this(api_url, worker, minilm, tmp_path):
    """--search prints the table (recommended and Pareto marked, rejections said) and the
    command that generates the pick; that command writes the recommended bundle."""
    import yaml

    args = ["benchmark", minilm.repo_id, "--search", "--levels", "aggressive",
            "--batch-sizes", "1,2", "--iterations", "20", "--warmup", "2",
            "--sequence-length", "8", "--device", "cpu"]  # fmt: skip
    proc = cli(*args, url=api_url)
    assert proc.returncode == 0, proc.stderr
    job_id = re.search(r"^job (\S+)$", proc.stderr, re.M).group(1)
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["level", "batch", "samples/s"]
    rows = lines[1 : lines.index("")]
    levels = [line.lstrip("*+ ").split()[0] for line in rows]
    assert sorted(levels) == ["aggressive", "aggressive", "none", "none"]
    failed = [line for line in rows if "FAIL min_cosine 0.9" in line]
    assert len(failed) == 2 and all("quality gate failed" in line for line in failed)
    assert all(" reference" in line for line in rows if line.lstrip("*+ ").startswith("none"))
    picked = [line for line in rows if line.startswith("*")]
    assert len(picked) == 1 and picked[0].split()[1] == "none"  # int8 failed the gate
    assert lines[-1] == (
        f"generate this: modelport generate {minilm.repo_id} --from-benchmark {job_id} --out DIR"
    )
    out = tmp_path / "bundle"
    made = cli("generate", minilm.repo_id, "--from-benchmark", job_id, "--out", str(out),
               url=api_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    module = yaml.safe_load((out / "module.yaml").read_text())
    assert module["optimization"]["level"] == "none"
    assert module["batching"]["maxBatchSize"] == int(picked[0].split()[2])
    assert module["benchmark"]["jobId"] == job_id
    both = cli("generate", minilm.repo_id, "--from-benchmark", job_id, "--batch-size", "4",
               "--out", str(out), url=api_url)  # fmt: skip
    assert both.returncode == 2 and "either --from-benchmark or options" in both.stderr


def test_jobs_list_show_cancel(api_url, worker, tiny_models, platform_env):
    model = tiny_models["text-classification"]
    flag = platform_env["MODELPORT_TEST_SLOW_FLAG"]
    with open(flag, "w") as f:
        f.write("3")  # hadolint sleeps 3 s: the first job runs, the second waits behind it
    try:
        ids = []
        for size in (31, 37):
            resp = requests.post(
                f"{api_url}/api/generate",
                json={"modelUrl": model.repo_id, "options": {"batchSize": size}},
                timeout=10,
            )
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["jobId"])

        listed = cli("jobs", "list", "--kind", "generate", "--json", url=api_url)
        assert listed.returncode == 0, listed.stderr
        assert set(ids) <= {j["jobId"] for j in json.loads(listed.stdout)["jobs"]}
        table = cli("jobs", "list", "--kind", "generate", url=api_url)
        assert table.stdout.split()[:3] == ["id", "kind", "status"]
        assert ids[1] in table.stdout

        cancel = cli("jobs", "cancel", ids[1], url=api_url)
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.split() == [ids[1], "cancelled"]
        again = cli("jobs", "cancel", ids[1], url=api_url)
        assert again.returncode == 1 and again.stderr.startswith("error 1011:")
    finally:
        os.unlink(flag)

    shown = cli("jobs", "show", ids[1], url=api_url)
    assert shown.returncode == 0, shown.stderr
    assert "status: cancelled" in shown.stdout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # leave the worker idle for the next test
        job = json.loads(cli("jobs", "show", ids[0], "--json", url=api_url).stdout)
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job


def test_errors_and_exit_codes(api_url, platform_env, closed_port):
    missing = cli("monitor", "nobody/unknown-model", "--days", "3", url=api_url)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error 1008:")
    assert cli("jobs", "show", "no-such-job", url=api_url).returncode == 1
    down = cli("jobs", "list", url=f"http://127.0.0.1:{closed_port}")
    assert down.returncode == 4 and "cannot reach the API" in down.stderr
    bad = cli("benchmark", "org/m", "--iterations", "many", url=api_url)
    assert bad.returncode == 2 and "usage:" in bad.stderr
    assert cli("frobnicate", url=api_url).returncode == 2
    invalid = cli("benchmark", "org/m", "--batch-sizes", "0", url=api_url)
    assert invalid.returncode == 1 and invalid.stderr.startswith("error 1003:")
    help_text = cli("generate", "--help", url=api_url).stdout
    assert "exit codes:" in help_text and "130" in help_text


def test_monitor_known_model(api_url, worker, minilm):
    # the benchmark test above left benchmark metrics for MiniLM
    proc = cli("monitor", minilm.repo_id, "--days", "1", "--json", url=api_url)
    if proc.returncode == 1 and "1008" in proc.stderr:
        pytest.skip("no metrics for MiniLM in this run")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) >= {"statistics", "plots", "recommendations"}
    text = cli("monitor", minilm.repo_id, "--days", "1", url=api_url)
    assert text.returncode == 0 and text.stdout.split()[:2] == ["metric", "mean"]


def test_watch_subscribes_and_stops_on_ctrl_c(api_url, minilm):
    env = {**os.environ, "MODELPORT_URL": api_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport.cli", "watch", minilm.repo_id, "--metrics", "latency"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stderr.readline()  # the acknowledgement
        assert line.startswith("subscribed "), line
        assert json.loads(line.split(" ", 1)[1])["metrics"] == ["latency"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bundle_files_never_leave_the_output_folder(tmp_path):
    from modelport.client.commands import UsageError, write_bundle

    for bad in ("../x.py", "/etc/passwd", "a/b/c.py", "modelport_runtime/../../x", ".", ""):
        with pytest.raises(UsageError, match="unsafe file name"):
            write_bundle(tmp_path / "out", {"README.md": "ok", bad: "evil"}, force=False)
        assert not (tmp_path / "out").exists()
    written = write_bundle(
        tmp_path / "out", {"run_inference.py": "x", "modelport_runtime/server.py": "y"}, force=False
    )
    assert written == ["run_inference.py", "modelport_runtime/server.py"]
    assert (tmp_path / "out" / "modelport_runtime" / "server.py").read_text() == "y"
