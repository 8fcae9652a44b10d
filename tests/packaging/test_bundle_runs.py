"""Generated bundles run: every task's run_inference.py answers --input and serves HTTP.

Each bundle is rendered into a folder and run as a subprocess against the session's HF cache
(HF_HOME, HF_HUB_OFFLINE=1 from the `hf_home` fixture), exactly as the container runs it.
Model loads in subprocesses are the cost, so one module fixture runs every task's one-shot
and server side by side (a few at a time) and records what they answered; the tests then
check the records.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelport.packaging.bundle import render_bundle
from modelport.packaging.catalog import SUPPORTED_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.options import GenerateOptions
from tests.fixtures.tiny_models import TINY_REPOS, TinyModel

PARALLEL = 3
CONCURRENT_REQUESTS = 8
LOAD_TIMEOUT_S = 120
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TORCH_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}
GEN = {"max_new_tokens": 4}
CONTEXT = "My name is Sarah and I live in London."


def _png(color: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# task -> (one input, a list of inputs, parameters)
CASES: dict[str, tuple[Any, list[Any], dict[str, Any]]] = {
    "text-classification": ("I love this movie", ["I love it", "I hate waiting"], {}),
    "token-classification": ("Sarah lives in Paris", ["Sarah lives in Paris", "the dog"], {}),
    "question-answering": (
        {"question": "Where do I live?", "context": CONTEXT},
        [
            {"question": "Where do I live?", "context": CONTEXT},
            {"question": "What is my name?", "context": CONTEXT * 30},  # overflows a window
        ],
        {},
    ),
    "fill-mask": ("Paris is the [MASK] of France.", ["the [MASK] dog", "a cat [MASK]"], {}),
    "feature-extraction": ("The quick brown fox", ["the dog", "a cat on the mat"], {}),
    "sentence-similarity": (
        {"source_sentence": "a happy dog", "sentences": ["a happy dog", "it rains outside"]},
        ["the dog", "a cat on the mat"],
        {},
    ),
    "text-generation": ("The quick brown", ["Paris is", "I love"], GEN),
    "text2text-generation": ("the quick brown fox", ["Paris is", "I love"], GEN),
    "summarization": ("the quick brown fox jumps over the lazy dog", ["Paris", "I love"], GEN),
    "translation": ("the quick brown fox", ["Paris is", "I love"], GEN),
    "zero-shot-classification": (
        "I want to book a flight",
        ["I want to book a flight", "the dog"],
        {"candidate_labels": ["travel", "cooking", "sports"]},
    ),
    "image-classification": (
        "data:image/png;base64," + _png((200, 30, 30)),
        [_png((10, 200, 10)), "data:image/png;base64," + _png((10, 10, 200))],
        {},
    ),
}
SEQ2SEQ_KEYS = {
    "text2text-generation": "generated_text",
    "summarization": "summary_text",
    "translation": "translation_text",
}
# Requests every server must refuse with 400 and a JSON {"error": ...}.
COMMON_BAD = [
    ("not json", b"{"),
    ("no inputs", {"nope": 1}),
    ("empty list", {"inputs": []}),
    ("unknown parameter", {"inputs": "x", "parameters": {"bogus_parameter": 1}}),
    ("parameters not an object", {"inputs": "x", "parameters": [1]}),
]
TASK_BAD = {
    "image-classification": [
        ("url", {"inputs": "https://example.com/cat.png"}),
        ("not base64", {"inputs": "not an image!"}),
        ("not an image", {"inputs": base64.b64encode(b"hello").decode()}),
    ],
    "question-answering": [("plain text", {"inputs": "no question here"})],
    "zero-shot-classification": [("no labels", {"inputs": "x"})],
    "fill-mask": [("no mask", {"inputs": "no mask token here"})],
    "text-generation": [("too long", {"inputs": "x", "parameters": {"max_new_tokens": 10**6}})],
    "text-classification": [("not a string", {"inputs": 42})],
}


def check_output(task: str, output: Any, item: Any) -> None:
    """The shape the Hugging Face inference convention gives one input of `task`."""
    if task in ("text-classification",):
        assert set(output) >= {"label", "score"}
    elif task == "token-classification":
        assert isinstance(output, list)
        for entity in output:
            assert set(entity) >= {"entity_group", "score", "word", "start", "end"}
    elif task == "question-answering":
        assert set(output) == {"answer", "score", "start", "end"}
        assert output["answer"] == item["context"][output["start"] : output["end"]]
        assert 0 <= output["score"] <= 1
    elif task == "fill-mask":
        assert output and all(set(o) >= {"score", "token", "token_str", "sequence"} for o in output)
    elif task == "feature-extraction" or (task == "sentence-similarity" and isinstance(item, str)):
        assert isinstance(output, list) and len(output) == 32
        assert all(isinstance(v, float) for v in output)
        if task == "sentence-similarity":  # the model's Normalize module
            assert math.isclose(math.sqrt(sum(v * v for v in output)), 1.0, rel_tol=1e-4)
    elif task == "sentence-similarity":
        assert isinstance(output, list) and len(output) == len(item["sentences"])
        assert math.isclose(output[0], 1.0, rel_tol=1e-4)  # the source sentence itself
    elif task == "text-generation":
        assert isinstance(output, list) and len(output) == 1
        assert isinstance(output[0]["generated_text"], str)
    elif task in SEQ2SEQ_KEYS:
        assert isinstance(output, list) and len(output) == 1
        assert set(output[0]) == {SEQ2SEQ_KEYS[task]}
    elif task == "zero-shot-classification":
        assert output["labels"] and sorted(output["labels"]) == ["cooking", "sports", "travel"]
        assert math.isclose(sum(output["scores"]), 1.0, rel_tol=1e-4)
    elif task == "image-classification":
        assert output and all(set(o) == {"label", "score"} for o in output)
        assert {o["label"] for o in output} <= {"cat", "dog", "bird"}
    else:
        raise AssertionError(f"no shape check for {task}")


# ---------------------------------------------------------------- running bundles


def facts_for(model: TinyModel) -> ModelFacts:
    config = json.loads((model.path / "config.json").read_text())
    library = TINY_REPOS[model.task][1] if model.task in TINY_REPOS else "sentence-transformers"
    return ModelFacts(
        repo_id=model.repo_id,
        revision=model.commit,
        task=model.task,
        library_name=library,
        tags=[library],
        config=config,
        model_type=config.get("model_type"),
        description="A tiny model for tests.",
    )


def write_bundle(folder: Path, facts: ModelFacts, options: GenerateOptions) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_bundle(facts, options).items():
        (folder / name).write_text(text)
    return folder / "run_inference.py"


def _env() -> dict[str, str]:
    env = {**os.environ, **THREAD_ENV}
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("HF_HOME")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON or text) of one HTTP request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read().decode()
        ctype = response.getheader("Content-Type", "")
        return response.status, ctype, json.loads(raw) if "json" in ctype else raw
    finally:
        conn.close()


@dataclass
class Record:
    """What one task's bundle answered."""

    oneshot: subprocess.CompletedProcess | None = None
    health: Any = None
    single: Any = None
    many: Any = None
    concurrent: list[Any] = field(default_factory=list)
    bad: dict[str, tuple[int, str, Any]] = field(default_factory=dict)
    missing: tuple[int, str, Any] | None = None
    metrics: str = ""
    exit_code: int | None = None  # after SIGTERM; None if it had to be killed
    log: str = ""
    seconds: float = 0.0


def one_shot(script: Path, value: Any, params: dict[str, Any]) -> subprocess.CompletedProcess:
    text = value if isinstance(value, str) else json.dumps(value)
    args = [sys.executable, str(script), "--input", text]
    if params:
        args += ["--parameters", json.dumps(params)]
    return subprocess.run(
        args, capture_output=True, text=True, env=_env(), timeout=LOAD_TIMEOUT_S, cwd=script.parent
    )


class Server:
    def __init__(self, script: Path, *extra: str) -> None:
        self.port = free_port()
        self.log_path = script.parent / "server.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--max-delay-ms", "100", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=_env(), cwd=script.parent,
        )  # fmt: skip

    def wait_ready(self) -> Any:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, _, body = call(self.port, "GET", "/health")
                if status == 200:
                    return body
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {LOAD_TIMEOUT_S}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-5000:]

    def stop(self) -> int | None:
        """SIGTERM, as Kubernetes stops a pod; the exit status, or None if it had to be killed."""
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._log.close()


def concurrent_items(task: str) -> list[Any]:
    single, many, _ = CASES[task]
    items = [*many, single]
    return [items[i % len(items)] for i in range(CONCURRENT_REQUESTS)]


def concurrent_predictions(port: int, bodies: list[dict[str, Any]]) -> list[Any]:
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = call(port, "POST", "/predict", bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def exercise(task: str, script: Path) -> Record:
    """Run the one-shot and the server for one task's bundle and record what they answered."""
    began = time.monotonic()
    single, many, params = CASES[task]
    record = Record()
    server = Server(script)  # loads while the one-shot runs
    try:
        record.oneshot = one_shot(script, single, params)
        record.health = server.wait_ready()
        predict = functools.partial(call, server.port, "POST", "/predict")
        record.single = predict({"inputs": single, "parameters": params})
        record.many = predict({"inputs": many, "parameters": params})
        bodies = [{"inputs": item, "parameters": params} for item in concurrent_items(task)]
        record.concurrent = concurrent_predictions(server.port, bodies)
        for name, body in COMMON_BAD + TASK_BAD.get(task, []):
            record.bad[name] = call(server.port, "POST", "/predict", body)
        record.missing = call(server.port, "GET", "/nope")
        record.metrics = call(server.port, "GET", "/metrics")[2]
    finally:
        record.exit_code = server.stop()
        record.log = server.log_path.read_text()[-5000:]
        record.seconds = time.monotonic() - began
    return record


MINILM_SENTENCES = ["A man is eating food.", "A plane is taking off.", "Ein Hund bellt."]
# Most bundles use the default options; these run another optimization level (or a GPU bundle
# on a machine without CUDA) instead, and their load log must say so.
OTHER_OPTIONS: dict[str, tuple[GenerateOptions, str]] = {
    "sentence-similarity": (
        GenerateOptions(optimizationLevel="aggressive"),
        "quantization=dynamic-int8",
    ),
    "text-generation": (
        GenerateOptions(optimizationLevel="aggressive"),
        "quantization=dynamic-int8",
    ),
    "question-answering": (GenerateOptions(optimizationLevel="none"), "attention=eager"),
    "text-classification": (GenerateOptions(gpu=True), "CUDA is not available: using the CPU"),
}


def minilm_facts(minilm: TinyModel) -> ModelFacts:
    return ModelFacts(
        repo_id=minilm.repo_id,
        revision=minilm.commit,
        task="sentence-similarity",
        library_name="sentence-transformers",
        config=json.loads((minilm.path / "config.json").read_text()),
    )


def exercise_minilm(script: Path) -> Record:
    record = Record()
    server = Server(script)
    try:
        record.health = server.wait_ready()
        record.many = call(server.port, "POST", "/predict", {"inputs": MINILM_SENTENCES})
        body = {"inputs": {"source_sentence": MINILM_SENTENCES[0], "sentences": MINILM_SENTENCES}}
        record.single = call(server.port, "POST", "/predict", body)
    finally:
        server.stop()
        record.log = server.log_path.read_text()[-5000:]
    return record


@pytest.fixture(scope="module")
def records(tiny_models, minilm, tmp_path_factory) -> dict[Any, Record | BaseException]:
    """Every bundle's answers, by task (and "minilm")."""
    root = tmp_path_factory.mktemp("bundles")
    jobs: dict[Any, Any] = {}
    script = write_bundle(root / "minilm", minilm_facts(minilm), GenerateOptions(batchSize=4))
    jobs["minilm"] = (exercise_minilm, script)
    for task in SUPPORTED_TASKS:
        options = OTHER_OPTIONS.get(task, (GenerateOptions(), ""))[0]
        script = write_bundle(root / task, facts_for(tiny_models[task]), options)
        jobs[task] = (exercise, task, script)
    began = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {key: pool.submit(*job) for key, job in jobs.items()}
        results: dict[Any, Record | BaseException] = {}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except BaseException as exc:  # reported by that bundle's tests
                results[key] = exc
    print(f"\nran {len(jobs)} bundles in {time.monotonic() - began:.1f}s", file=sys.stderr)
    return results


def record_for(records: dict[str, Record | BaseException], task: str) -> Record:
    record = records[task]
    if isinstance(record, BaseException):
        raise AssertionError(f"{task}: the bundle did not run: {record}") from record
    return record


# ---------------------------------------------------------------- tests

TASKS = list(SUPPORTED_TASKS)


def test_every_supported_task_has_a_case():
    assert set(CASES) == set(SUPPORTED_TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_one_shot_prints_the_prediction(records, task):
    record = record_for(records, task)
    proc = record.oneshot
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = json.loads(proc.stdout)
    check_output(task, output, CASES[task][0])


@pytest.mark.parametrize("task", TASKS)
def test_server_health_and_predict(records, task):
    record = record_for(records, task)
    single, many, _ = CASES[task]
    assert record.health["status"] == "ok"
    assert record.health["task"] == task
    assert record.health["model"] == TINY_REPOS[task][0]
    assert len(record.health["revision"]) == 40
    status, ctype, output = record.single
    assert status == 200 and ctype.startswith("application/json"), output
    check_output(task, output, single)
    status, _, outputs = record.many
    assert status == 200, outputs
    assert isinstance(outputs, list) and len(outputs) == len(many)
    for output, item in zip(outputs, many, strict=True):
        check_output(task, output, item)


@pytest.mark.parametrize("task", TASKS)
def test_concurrent_requests_are_batched(records, task):
    record = record_for(records, task)
    for (status, _, output), item in zip(record.concurrent, concurrent_items(task), strict=True):
        assert status == 200, output
        check_output(task, output, item)
    families = {f.name: f for f in text_string_to_metric_families(record.metrics)}
    samples = families["modelport_batch_size"].samples
    batch = {s.labels.get("le"): s.value for s in samples if s.name.endswith("_bucket")}
    count = next(s.value for s in samples if s.name.endswith("_count"))
    assert batch["1.0"] < count, f"no batch above 1: {batch}\n{record.log}"
    requests = {s.labels["status"]: s.value for s in families["modelport_requests"].samples
                if s.name == "modelport_requests_total"}  # fmt: skip
    assert requests["200"] == 2 + CONCURRENT_REQUESTS
    assert requests["400"] == len(COMMON_BAD) + len(TASK_BAD.get(task, []))
    assert "modelport_request_duration_seconds" in families
    assert families["process_resident_memory_bytes"].samples[0].value > 0


@pytest.mark.parametrize("task", TASKS)
def test_bad_requests_get_400_with_a_message(records, task):
    record = record_for(records, task)
    for name, (status, ctype, body) in record.bad.items():
        assert status == 400, (name, body)
        assert ctype.startswith("application/json"), name
        assert isinstance(body["error"], str) and body["error"], name
        assert "Traceback" not in body["error"], name
    if task == "image-classification":
        assert "not fetched" in record.bad["url"][2]["error"]
    assert record.missing[0] == 404
    assert "Traceback" not in record.log


@pytest.mark.parametrize("task", TASKS)
def test_server_stops_cleanly_on_sigterm(records, task):
    record = record_for(records, task)
    assert record.exit_code == 0, record.log
    assert record.log.rstrip().endswith("INFO run_inference: stopped")


@pytest.mark.parametrize("task", list(OTHER_OPTIONS))
def test_other_optimization_levels_apply(records, task):
    options, expected_log = OTHER_OPTIONS[task]
    record = record_for(records, task)
    assert expected_log in record.oneshot.stderr
    assert expected_log in record.log
    runtime = record.health["runtime"]
    assert record.health["optimizationLevel"] == options.optimization_level
    if options.optimization_level == "aggressive":
        assert runtime["quantization"] == "dynamic-int8"
    if options.optimization_level == "none":
        assert runtime["attention"] == "eager"
    if options.gpu:
        assert runtime["device"] == "cpu"


def test_minilm_embeddings_match_sentence_transformers(records, minilm):
    from sentence_transformers import SentenceTransformer

    record = record_for(records, "minilm")
    assert record.health["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert record.health["runtime"]["attention"] in ("sdpa", "default")
    status, _, vectors = record.many
    assert status == 200, vectors
    reference = SentenceTransformer(str(minilm.path), device="cpu").encode(MINILM_SENTENCES)
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    for got, want in zip(vectors, reference, strict=True):
        cosine = sum(a * b for a, b in zip(got, want, strict=True)) / (
            math.sqrt(sum(a * a for a in got)) * math.sqrt(sum(b * b for b in want))
        )
        assert cosine > 0.999
    status, _, scores = record.single
    assert status == 200, scores
    expected = [float(reference[0] @ ref) for ref in reference]
    assert scores == pytest.approx(expected, abs=1e-3)
