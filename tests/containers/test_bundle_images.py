"""Every task family's generated bundle, built and served by podman as generated.

One image per family (the demo model, and the tiny models of each task family), built from the
Dockerfile exactly as rendered, with only build arguments (PIP_INDEX_URL, TORCH_INDEX_URL,
HF_ENDPOINT at the fake Hub, BASE_IMAGE at the local stand-in) and pip's mounts from outside.
Each runs under --cpus=1 and is probed: readiness, the prediction against the same engine
in-process, bad input, InferenceClient at the root URL, /metrics, and SIGTERM. The images share
their package layers, so the whole module takes a few minutes once the base image exists.
"""

from __future__ import annotations

import base64
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport.packaging.bundle import EXAMPLE_BODIES, runtime_config
from modelport.packaging.demo import DEMO_REPO_ID, demo_model_path
from modelport.packaging.options import GenerateOptions
from modelport.runtime.engine import load_engine
from modelport.runtime.protocol import parse_request
from tests.containers import podman
from tests.packaging.bundle_servers import facts_for, write_bundle
from tests.packaging.test_bundle_runs import BAD, TASK_BAD, _png

# The first test's time includes the module's fixtures: installing podman, the base image and nine
# builds, cold on a fresh machine (about 8 minutes here).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# family -> task of its tiny model ("demo": the real all-MiniLM-L6-v2)
FAMILIES = {
    "demo": "sentence-similarity",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "fill-mask": "fill-mask",
    "zero-shot": "zero-shot-classification",
    "text-generation": "text-generation",
    "seq2seq": "summarization",
    "image-classification": "image-classification",
    "demo-onnxruntime": "sentence-similarity",
    "demo-openvino": "sentence-similarity",
}
OPTIONS = GenerateOptions(batchSize=8)
FAMILY_OPTIONS = {
    "demo-onnxruntime": GenerateOptions(batchSize=8, optimizationLevel="onnxruntime"),
    "demo-openvino": GenerateOptions(batchSize=8, optimizationLevel="openvino"),
}
PNG = _png((200, 30, 30))
LIST_PACKAGES = (
    "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))"
)


@dataclass
class Image:
    family: str
    task: str
    tag: str
    context: Path
    model: Any
    facts: Any
    build: podman.Build
    size: int
    cold_start_s: float = math.nan
    sigterm: str = ""


@pytest.fixture(scope="module")
def engine_ready() -> None:
    podman.ensure_engine()


@pytest.fixture(scope="module")
def build_settings(engine_ready, tmp_path_factory) -> tuple[list[str], list[str]]:
    return podman.pip_settings(tmp_path_factory.mktemp("pip"))


@pytest.fixture(scope="module")
def hub(fake_hub_server, minilm):
    fake_hub_server.add_repo(DEMO_REPO_ID, demo_model_path(), commit=minilm.commit)
    return fake_hub_server


@pytest.fixture(scope="module")
def images(hub, tiny_models, minilm, build_settings, tmp_path_factory) -> dict[str, Image]:
    mounts, args = build_settings
    args = [*args, "--build-arg", f"HF_ENDPOINT={hub.url}"]
    root = tmp_path_factory.mktemp("images")
    built: dict[str, Image] = {}
    for family, task in FAMILIES.items():
        model = minilm if family.startswith("demo") else tiny_models[task]
        facts = facts_for(model)
        context = root / family
        write_bundle(context, facts, FAMILY_OPTIONS.get(family, OPTIONS))
        tag = f"localhost/modelport-test/{family}"
        result = podman.build(context, tag, mounts, args)
        built[family] = Image(family, task, tag, context, model, facts, result,
                              podman.image_size(tag))  # fmt: skip
    yield built
    report = [f"{'family':<22}{'size MB':>9}{'build s':>9}{'ready s':>9}  SIGTERM"]
    for image in built.values():
        report.append(
            f"{image.family:<22}{image.size / 1e6:>9.0f}{image.build.seconds:>9.1f}"
            f"{image.cold_start_s:>9.1f}  {image.sigterm}"
        )
    print("\n" + "\n".join(report))


@pytest.fixture(autouse=True)
def clients_may_connect(monkeypatch, hf_home) -> None:
    """huggingface_hub refuses every request while offline; these go to loopback only."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


# ---------------------------------------------------------------- helpers


def example_body(image: Image) -> dict[str, Any]:
    if image.task == "image-classification":
        return {"inputs": base64.b64encode(PNG).decode()}
    body = json.loads(json.dumps(EXAMPLE_BODIES[image.task]))
    if image.task == "text-generation":
        body["parameters"] = {"max_new_tokens": 8}
    if image.task == "summarization":
        body["parameters"] = {"max_new_tokens": 8}
    return body


def reference(image: Image, body: dict[str, Any]) -> Any:
    """The answer of the same runtime engine, loaded in this process from the host's cache."""
    config = replace(runtime_config(image.facts, OPTIONS), model_path=str(image.model.snapshot))
    engine = load_engine(config, str(image.model.snapshot))
    job = parse_request(body, engine)
    with engine.backend.running():
        outputs = engine.predict(job.items, job.params)
    return json.loads(json.dumps(engine.shape(outputs, job.single, job.params)))


def assert_close(got: Any, want: Any, path: str = "") -> None:
    if isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5), (path, got, want)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (path, got, want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (path, got, want)
        for key in want:
            assert_close(got[key], want[key], f"{path}.{key}")
    else:
        assert got == want, (path, got, want)


def client_calls(image: Image, url: str) -> None:
    """InferenceClient pointed at the container's root URL, as at an Inference Endpoint or TEI."""
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=url, timeout=60)
    task = image.task
    if task == "sentence-similarity":
        vectors = client.feature_extraction(["A first sentence.", "A second one."])
        assert vectors.shape == (2, 384)
        assert math.isclose(float((vectors[0] ** 2).sum()), 1.0, rel_tol=1e-4)
        others = ["That is a happy dog", "Sunny"]
        scores = client.sentence_similarity("That is a happy person", other_sentences=others)
        assert len(scores) == 2 and scores[0] > scores[1]
    elif task == "text-classification":
        (top,) = client.text_classification("I love this!")  # no top_k: a list comes back
        assert top.label in ("NEGATIVE", "POSITIVE") and 0 < top.score <= 1
    elif task == "token-classification":
        entities = client.token_classification("My name is Sarah and I live in London.")
        assert all(e.start is not None and e.end >= e.start for e in entities)
    elif task == "question-answering":
        context = "My name is Sarah and I live in London."
        answer = client.question_answering(question="Where do I live?", context=context)
        assert answer.answer and 0 <= answer.start <= answer.end
    elif task == "fill-mask":
        fills = client.fill_mask("Paris is the [MASK] of France.")
        assert fills and all("[MASK]" not in f.sequence for f in fills)
    elif task == "zero-shot-classification":
        candidates = ["travel", "cooking"]
        labels = client.zero_shot_classification("Book a flight", candidate_labels=candidates)
        assert sorted(x.label for x in labels) == ["cooking", "travel"]
    elif task == "text-generation":
        details = client.text_generation("Once upon a time", max_new_tokens=4, details=True)
        assert details.details.generated_tokens == 4
        streamed = "".join(client.text_generation("Once upon a time", max_new_tokens=4,
                                                  stream=True))  # fmt: skip
        # the pipeline's default (return_full_text) repeats the prompt; the stream is new text only
        assert details.generated_text == "Once upon a time" + streamed
        chat = client.chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4)
        assert chat.choices[0].message.role == "assistant"
    elif task == "summarization":
        assert isinstance(client.summarization("The tower is tall.").summary_text, str)
    elif task == "image-classification":
        labels = client.image_classification(PNG)
        assert labels and all(0 <= x.score <= 1 for x in labels)
    else:  # pragma: no cover - FAMILIES names only the tasks above
        raise AssertionError(task)


def in_flight_body(image: Image) -> dict[str, Any]:
    """A request that keeps the model busy for a while: the example input 128 times (16 of them
    stay under the server's 4,096 queued inputs), or long texts for the real MiniLM."""
    if image.family == "demo":
        return {"inputs": ["The quick brown fox jumps over the lazy dog. " * 10] * 32}
    body = example_body(image)
    return {**body, "inputs": [body["inputs"]] * 128}


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the server's `name` samples with these labels, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def in_flight(url: str) -> int:
    """The server's own count of predictions in progress (its Prometheus gauge)."""
    return int(metric(url, "modelport_requests_in_flight"))


# ---------------------------------------------------------------- the probes


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bundle_image_serves_its_model(images, family):
    image = images[family]
    body = example_body(image)
    want = reference(image, body)
    with podman.Container(image.tag, ["--cpus=1", "-e", "DRAIN_TIMEOUT_SECONDS=60"]) as box:
        image.cold_start_s = box.wait_ready()
        health = requests.get(box.url + "/health", timeout=10).json()
        assert health["runtime"]["threads"] == 1, "torch threads must follow --cpus=1"
        assert health["revision"] == image.model.commit
        if image.family in ("demo-onnxruntime", "demo-openvino"):  # exported, gated at build
            assert health["runtime"]["backend"] == image.family.removeprefix("demo-")
            assert "exporting" not in box.logs(), box.logs()
        if image.family == "demo-openvino":  # its wheel's usage reporter is not in the image
            found = podman.podman("run", "--rm", image.tag, "python", "-c", LIST_PACKAGES)
            assert "openvino" in found.stdout.split()
            assert "openvino-telemetry" not in found.stdout.split(), found.stdout
        # a listen backlog of 5 dropped connections at 8 concurrent clients
        assert box.listen_backlog() >= 128

        answer = requests.post(box.url + "/", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert_close(answer.json(), want)

        for name, bad, status in BAD + TASK_BAD.get(image.task, []):
            raw = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
            refused = requests.post(box.url + "/", data=raw, timeout=30,
                                    headers={"Content-Type": "application/json"})  # fmt: skip
            assert refused.status_code == status, (name, refused.text)
            assert set(refused.json()) == {"error", "error_type"}, name
        # A wrong path with a body leaves the keep-alive connection usable for the next request.
        with requests.Session() as session:
            assert session.post(box.url + "/nope", json=body, timeout=30).status_code == 404
            assert session.post(box.url + "/", json=body, timeout=60).status_code == 200

        client_calls(image, box.url)

        assert metric(box.url, "modelport_requests_total", status="200") >= 2

        # SIGTERM (podman stop) with requests in flight: every one completes, then exit 0.
        slow = in_flight_body(image)
        with ThreadPoolExecutor(16) as pool:
            pending = [
                pool.submit(requests.post, box.url + "/", json=slow, timeout=120) for _ in range(16)
            ]
            # every request has reached the server (in flight there, or answered) ...
            deadline = time.monotonic() + 30
            while (running := in_flight(box.url)) + sum(f.done() for f in pending) < 16:
                assert time.monotonic() < deadline, "the requests did not reach the server"
                time.sleep(0.02)
            assert running, "every request finished before SIGTERM: nothing was in flight"
            began = time.monotonic()
            code = box.stop(timeout_s=60)
            took = time.monotonic() - began
            answers = [f.result() for f in pending]
            statuses = [a.status_code for a in answers]
        assert code == 0, box.logs()
        assert statuses == [200] * len(pending), [
            a.text[:200] for a in answers if a.status_code != 200
        ]
        assert "Traceback" not in box.logs()
        done = f"{running} in flight at SIGTERM, {statuses.count(200)}/16 answered 200"
        image.sigterm = f"exit {code} after {took:.1f}s, {done}"


def test_a_code_edit_rebuilds_only_the_code_layers(images, hub, build_settings):
    """Weights sit in a layer before the code: editing run_inference.py fetches nothing."""
    image = images["text-classification"]
    mounts, args = build_settings
    script = image.context / "run_inference.py"
    original = script.read_text()
    hub.clear()
    try:
        script.write_text(original + "# an edit\n")
        again = podman.build(image.context, image.tag + "-edited", mounts,
                             [*args, "--build-arg", f"HF_ENDPOINT={hub.url}"])  # fmt: skip
    finally:
        script.write_text(original)
    assert again.cached("pip install") and again.cached("hf download")
    assert not again.cached("run_inference.py")
    assert hub.requests == [], "the weights were fetched again"
    print(f"\nrebuild after a code edit: {again.seconds:.1f}s (cold: {image.build.seconds:.1f}s)")
    podman.podman("rmi", "-f", again.tag, check=False)


def test_images_run_as_non_root_with_a_healthcheck(images):
    for image in images.values():
        (inspected,) = json.loads(podman.podman("image", "inspect", image.tag).stdout)
        assert inspected["Config"]["User"] == "10001:10001", image.family
        # kept because the build used --format docker (podman's OCI format drops it)
        assert "/ready" in " ".join(inspected["Healthcheck"]["Test"]), image.family


def test_images_carry_what_the_server_uses_and_no_more(images):
    """MiniLM's image was 1,645 MB (1,453 without sentence-transformers): pip's byte code for
    modules never imported and torch's test binaries and headers made up about 350 MB. What the
    server imports must still have its byte code (without it, imports take ~14 s longer)."""
    assert images["demo"].size <= 1_200_000_000, images["demo"].size
    out = podman.podman(
        "run", "--rm", "--entrypoint", "python", images["text-classification"].tag, "-c", PROBE
    ).stdout.splitlines()
    assert out[0] == "[]", f"torch folders left: {out[0]}"
    assert out[1] in ("[]", "['torch_shm_manager']"), f"torch/bin: {out[1]}"
    imported, missing = json.loads(out[2])
    assert imported > 1000, out[2]
    assert len(missing) <= 10, f"imported without byte code: {missing}"


PROBE = """
import importlib.util, json, os, sys
import torch
root = os.path.dirname(torch.__file__)
print(sorted(n for n in ("test", "include", "share") if os.path.isdir(os.path.join(root, n))))
bin_dir = os.path.join(root, "bin")
print(sorted(os.listdir(bin_dir)) if os.path.isdir(bin_dir) else [])
import modelport_runtime.server
from transformers.models.bert import modeling_bert
missing = sorted(
    name for name, module in list(sys.modules.items())
    if os.path.isabs(getattr(module, "__file__", None) or "")
    and module.__file__.endswith(".py")
    and not os.path.exists(importlib.util.cache_from_source(module.__file__))
)
print(json.dumps([len(sys.modules), missing]))
"""
