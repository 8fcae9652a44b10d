"""Generated bundles served for real, called by clients nobody here wrote.

Every supported task's bundle (the tiny random models, and MiniLM with its real weights) runs
as a `python run_inference.py --serve` process from its own folder, as the container runs it.
`huggingface_hub.InferenceClient` calls each task's method against the server's root URL, the
`openai` client calls the /v1 routes, and raw HTTP covers bad input, keep-alive, metrics and
the OpenAPI document. Outputs are compared with the transformers pipeline (or
sentence-transformers, or the model's own `generate`) run in this process on the same files.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from modelport.packaging.catalog import SUPPORTED_TASKS
from modelport.packaging.options import GenerateOptions
from tests.packaging.bundle_servers import THREAD_ENV, BundleServer, facts_for, write_bundle

CONTEXT = "My name is Sarah and I live in London."
OTHER_OPTIONS = {  # these bundles run another level; /health must say what was applied
    "sentence-similarity": GenerateOptions(optimizationLevel="aggressive"),
    "question-answering": GenerateOptions(optimizationLevel="none"),
    "text-classification": GenerateOptions(gpu=True),  # falls back to the CPU here
}


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bundles(tiny_models, minilm, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    scripts = {"minilm": write_bundle(root / "minilm", facts_for(minilm), GenerateOptions())}
    for level in ("bfloat16", "onnxruntime", "openvino"):
        scripts[f"minilm-{level}"] = write_bundle(
            root / f"minilm-{level}", facts_for(minilm), GenerateOptions(optimizationLevel=level)
        )
    for task in SUPPORTED_TASKS:
        options = OTHER_OPTIONS.get(task, GenerateOptions(batchSize=8))
        scripts[task] = write_bundle(root / task, facts_for(tiny_models[task]), options)
    return scripts


@pytest.fixture(scope="module")
def servers(bundles) -> Any:
    """Every bundle's server, started together and ready; stopped with SIGTERM at the end."""
    started = {key: BundleServer(script) for key, script in bundles.items()}
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def pipelines(tiny_models) -> Any:
    """transformers pipelines on the same model folders, loaded once, by task."""
    from transformers import pipeline

    loaded: dict[str, Any] = {}

    def get(task: str) -> Any:
        if task not in loaded:
            loaded[task] = pipeline(task, model=str(tiny_models[task].path), device="cpu")
        return loaded[task]

    return get


@pytest.fixture(autouse=True)
def clients_may_connect(monkeypatch, hf_home) -> None:
    """huggingface_hub refuses every request while offline; these go to loopback servers only
    (the servers themselves keep HF_HUB_OFFLINE=1 from the environment)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def client(server: BundleServer) -> Any:
    from huggingface_hub import InferenceClient

    return InferenceClient(base_url=server.url, timeout=60)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)


def same_labels(got: list[Any], want: list[dict[str, Any]], key: str = "label") -> None:
    assert [g[key] for g in got] == [w[key] for w in want]
    assert all(close(g["score"], w["score"]) for g, w in zip(got, want, strict=True))


# ---------------------------------------------------------------- InferenceClient, per task


def test_health_says_what_is_served_and_applied(servers, tiny_models):
    for task in SUPPORTED_TASKS:
        health = servers[task].health
        assert health["status"] == "ready"
        assert (health["model"], health["task"]) == (tiny_models[task].repo_id, task)
        assert health["revision"] == tiny_models[task].commit
    assert servers["minilm"].health["runtime"]["threads"] == 1  # OMP_NUM_THREADS=1 here
    applied = {task: servers[task].health["runtime"] for task in OTHER_OPTIONS}
    assert applied["sentence-similarity"]["quantization"] == "dynamic-int8"
    assert applied["question-answering"]["attention"] in ("eager", "default")
    assert applied["text-classification"]["device"] == "cpu"
    assert "CUDA is not available: using the CPU" in servers["text-classification"].log()


def test_text_classification(servers, pipelines):
    inference = client(servers["text-classification"])
    reference = pipelines("text-classification")
    got = inference.text_classification("I love this movie")
    assert isinstance(got, list) and len(got) == 1  # the pipeline's top-1, as a list
    same_labels(got, reference("I love this movie"))
    both = inference.text_classification("I hate waiting", top_k=2)
    same_labels(both, reference("I hate waiting", top_k=2))
    sigmoid = inference.text_classification("ok", function_to_apply="sigmoid", top_k=2)
    same_labels(sigmoid, reference("ok", function_to_apply="sigmoid", top_k=2))
    many = servers["text-classification"].post("/", {"inputs": ["I love it", "I hate it"]}).json()
    assert [len(x) for x in many] == [1, 1]


def test_token_classification(servers, pipelines):
    got = client(servers["token-classification"]).token_classification("Sarah lives in Paris")
    want = pipelines("token-classification")("Sarah lives in Paris", aggregation_strategy="simple")
    assert [(g.entity_group, g.word, g.start, g.end) for g in got] == [
        (w["entity_group"], w["word"], w["start"], w["end"]) for w in want
    ]
    none = client(servers["token-classification"]).token_classification(
        "the dog", aggregation_strategy="none"
    )
    assert all(entity.entity for entity in none)


def test_fill_mask(servers, pipelines):
    text = "Paris is the [MASK] of France."
    got = client(servers["fill-mask"]).fill_mask(text, top_k=3)
    want = pipelines("fill-mask")(text, top_k=3)
    assert [(g.token, g.token_str, g.sequence) for g in got] == [
        (w["token"], w["token_str"], w["sequence"]) for w in want
    ]
    assert all(close(g.score, w["score"]) for g, w in zip(got, want, strict=True))


def test_zero_shot_classification(servers, pipelines):
    labels = ["travel", "cooking", "sports"]
    text = "I want to book a flight"
    got = client(servers["zero-shot-classification"]).zero_shot_classification(
        text, candidate_labels=labels
    )
    want = pipelines("zero-shot-classification")(text, candidate_labels=labels)
    same_labels(got, [{"label": x, "score": s} for x, s in zip(want["labels"], want["scores"])])
    multi = client(servers["zero-shot-classification"]).zero_shot_classification(
        text, candidate_labels=labels, multi_label=True, hypothesis_template="It is about {}."
    )
    want = pipelines("zero-shot-classification")(
        text, candidate_labels=labels, multi_label=True, hypothesis_template="It is about {}."
    )
    same_labels(multi, [{"label": x, "score": s} for x, s in zip(want["labels"], want["scores"])])


def test_feature_extraction_is_token_level(servers, pipelines):
    import numpy as np

    got = client(servers["feature-extraction"]).feature_extraction("The quick brown fox")
    want = np.array(pipelines("feature-extraction")("The quick brown fox"))
    assert got.shape == want.shape and got.shape[0] == 1 and got.shape[2] == 32
    assert np.allclose(got, want, atol=1e-5)


def test_sentence_embeddings_match_sentence_transformers(servers, minilm):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    sentences = ["A man is eating food.", "A plane is taking off.", "Ein Hund bellt."]
    reference = SentenceTransformer(str(minilm.path), device="cpu")
    want = reference.encode(sentences)
    inference = client(servers["minilm"])
    got = inference.feature_extraction(sentences)
    assert got.shape == (3, 384)
    for vector, expected in zip(got, want, strict=True):
        cosine = float(vector @ expected / (np.linalg.norm(vector) * np.linalg.norm(expected)))
        assert cosine > 0.99999
    single = inference.feature_extraction(sentences[0], normalize=True, truncate=True)
    assert single.shape == (384,) and math.isclose(float(np.linalg.norm(single)), 1, rel_tol=1e-5)
    scores = inference.sentence_similarity(sentences[0], other_sentences=sentences)
    expected = reference.similarity(want[:1], want)[0].tolist()
    assert scores == pytest.approx(expected, abs=1e-5)


def test_a_bfloat16_bundle_serves_embeddings_within_the_gate(servers, minilm):
    """The bfloat16 level on CPU: bfloat16 weights, float32 vectors out, and the same
    sentences land within the quality gate's 0.999 cosine of sentence-transformers."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    server = servers["minilm-bfloat16"]
    assert server.health["runtime"]["dtype"] == "bfloat16"
    sentences = ["A man is eating food.", "A plane is taking off.", "Ein Hund bellt."]
    want = SentenceTransformer(str(minilm.path), device="cpu").encode(sentences)
    got = client(server).feature_extraction(sentences)
    assert got.dtype == np.float32 and got.shape == (3, 384)
    for vector, expected in zip(got, want, strict=True):
        cosine = float(vector @ expected / (np.linalg.norm(vector) * np.linalg.norm(expected)))
        assert 0.999 <= cosine < 1.0  # reduced precision, not float32 under another name


@pytest.mark.parametrize("level", ["onnxruntime", "openvino"])
def test_an_exported_bundle_serves_the_same_embeddings(servers, minilm, level):
    """The onnxruntime and openvino levels: the transformer runs in ONNX Runtime or OpenVINO
    (float32), and the vectors agree with sentence-transformers' to float32 precision, through
    InferenceClient and the openai client alike."""
    import numpy as np
    from openai import OpenAI
    from sentence_transformers import SentenceTransformer

    server = servers[f"minilm-{level}"]
    assert server.health["runtime"]["backend"] == level
    sentences = ["A man is eating food.", "A plane is taking off.", "Ein Hund bellt."]
    want = SentenceTransformer(str(minilm.path), device="cpu").encode(sentences)
    got = client(server).feature_extraction(sentences)
    for vector, expected in zip(got, want, strict=True):
        cosine = float(vector @ expected / (np.linalg.norm(vector) * np.linalg.norm(expected)))
        assert cosine > 0.99999
    answer = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0).embeddings.create(
        model=minilm.repo_id, input=sentences[:2]
    )
    assert [len(d.embedding) for d in answer.data] == [384, 384]


def test_question_answering_follows_the_pipeline_rules(servers, tiny_models):
    inference = client(servers["question-answering"])
    got = inference.question_answering(question="Where do I live?", context=CONTEXT)
    want = reference_answer(tiny_models["question-answering"].path, "Where do I live?", CONTEXT)
    assert (got.answer, got.start, got.end) == (want["answer"], want["start"], want["end"])
    assert close(got.score, want["score"])
    assert got.answer == CONTEXT[got.start : got.end] and got.start > 0
    several = inference.question_answering(question="Who?", context=CONTEXT * 20, top_k=3)
    assert isinstance(several, list) and len(several) == 3
    assert [a.score for a in several] == sorted((a.score for a in several), reverse=True)


def reference_answer(path: Path, question: str, context: str, max_len: int = 15) -> dict:
    """The best span by brute force over one window: p(start) x p(end), start <= end < start +
    max_len, both in the context; softmax over the context tokens and CLS, as the pipeline did;
    character offsets widened to whole words."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
    encoded = tokenizer(question, context, return_tensors="pt", return_offsets_mapping=True)
    with torch.no_grad():
        out = model(**{k: v for k, v in encoded.items() if k != "offset_mapping"})
    ids = encoded.sequence_ids(0)
    allowed = [i for i, sid in enumerate(ids) if sid == 1]
    pool = [0, *allowed]  # CLS stays in the softmax, never in the answer

    def probabilities(logits: Any) -> dict[int, float]:
        values = {i: float(logits[0, i]) for i in pool}
        top = max(values.values())
        total = sum(math.exp(v - top) for v in values.values())
        return {i: math.exp(v - top) / total for i, v in values.items()}

    start_p, end_p = probabilities(out.start_logits), probabilities(out.end_logits)
    best = max(
        ((start_p[s] * end_p[e], s, e) for s in allowed for e in allowed if s <= e < s + max_len),
    )
    score, s, e = best
    encoding = encoded.encodings[0]
    first = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
    last = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
    return {"answer": context[first:last], "start": first, "end": last, "score": score}


def test_text_generation_is_greedy_and_matches_the_pipeline(servers, pipelines):
    inference = client(servers["text-generation"])
    text = inference.text_generation("The quick brown", max_new_tokens=6)
    want = pipelines("text-generation")(
        "The quick brown", max_new_tokens=6, do_sample=False, return_full_text=True
    )[0]["generated_text"]
    assert text == want
    assert inference.text_generation("The quick brown", max_new_tokens=6) == text  # greedy
    detailed = inference.text_generation(
        "The quick brown", max_new_tokens=5, details=True, return_full_text=False
    )
    assert detailed.details.generated_tokens == len(detailed.details.tokens) <= 5
    assert detailed.details.finish_reason in ("length", "eos_token")
    assert all(t.logprob is not None and t.logprob <= 0 for t in detailed.details.tokens)
    streamed = list(
        inference.text_generation(
            "The quick brown", max_new_tokens=5, stream=True, return_full_text=False
        )
    )
    assert "".join(streamed) == detailed.generated_text
    assert len(streamed) == detailed.details.generated_tokens
    sampled = inference.text_generation("Paris", max_new_tokens=8, do_sample=True, seed=3)
    assert sampled == inference.text_generation("Paris", max_new_tokens=8, do_sample=True, seed=3)


def test_over_long_prompts_are_refused_or_truncated(servers):
    from huggingface_hub.errors import ValidationError

    inference = client(servers["text-generation"])
    long_prompt = "the quick brown fox " * 60  # beyond the 128-token context
    with pytest.raises(ValidationError, match="context is 128 tokens"):
        inference.text_generation(long_prompt, max_new_tokens=4)
    text = inference.text_generation(
        long_prompt, max_new_tokens=4, truncate=100, return_full_text=False
    )
    assert isinstance(text, str)
    body = {"inputs": long_prompt, "parameters": {"max_new_tokens": 4, "truncation": True}}
    assert servers["text-generation"].post("/", body).status_code == 200
    answer = servers["text-classification"].post("/", {"inputs": "dog " * 300})
    assert answer.status_code == 413 and "at most 128" in answer.json()["error"]
    body = {"inputs": "dog " * 300, "parameters": {"truncation": True}}
    assert servers["text-classification"].post("/", body).status_code == 200


def test_seq2seq_tasks_match_generate(servers, tiny_models):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    text = "the quick brown fox jumps over the lazy dog"
    for task, key in (
        ("summarization", "summary_text"),
        ("translation", "translation_text"),
        ("text2text-generation", "generated_text"),
    ):
        path = tiny_models[task].path
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
        with torch.no_grad():
            ids = model.generate(**tokenizer(text, return_tensors="pt"), do_sample=False,
                                 max_new_tokens=5, min_new_tokens=5)  # fmt: skip
        assert ids.shape[1] == 6  # the decoder start token and exactly 5 new ones
        want = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
        params = {"max_new_tokens": 5, "min_new_tokens": 5}
        answer = servers[task].post("/", {"inputs": text, "parameters": params}).json()
        assert answer == [{key: want}], task
    inference = client(servers["summarization"])
    summary = inference.summarization(text, generate_parameters={"max_new_tokens": 5})
    assert isinstance(summary.summary_text, str)
    translated = client(servers["translation"]).translation(text)
    assert isinstance(translated.translation_text, str)
    generated = client(servers["text2text-generation"]).text_generation(text, max_new_tokens=3)
    assert isinstance(generated, str)


def test_image_classification_takes_raw_bytes_and_base64(servers, pipelines):
    from PIL import Image

    inference = client(servers["image-classification"])
    image = _png((200, 30, 30))
    got = inference.image_classification(image)
    want = pipelines("image-classification")(Image.open(io.BytesIO(image)).convert("RGB"))
    same_labels(got, want)
    top = inference.image_classification(image, top_k=1)  # sent as JSON with base64
    same_labels(top, want[:1])
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
    answer = servers["image-classification"].post("/", {"inputs": [data_uri, data_uri]})
    assert answer.status_code == 200 and len(answer.json()) == 2


# ---------------------------------------------------------------- openai client


def test_openai_embeddings(servers, minilm):
    import numpy as np
    from openai import OpenAI
    from sentence_transformers import SentenceTransformer

    api = OpenAI(base_url=servers["minilm"].url + "/v1", api_key="unused", max_retries=0)
    sentences = ["A man is eating food.", "A plane is taking off."]
    result = api.embeddings.create(model="all-MiniLM-L6-v2", input=sentences)  # base64 on wire
    want = SentenceTransformer(str(minilm.path), device="cpu").encode(sentences)
    got = np.array([item.embedding for item in result.data])
    assert got.shape == (2, 384) and np.allclose(got, want, atol=1e-5)
    assert result.usage.prompt_tokens > 0
    floats = api.embeddings.create(model="m", input="hi", encoding_format="float", dimensions=64)
    assert len(floats.data[0].embedding) == 64
    assert [m.id for m in api.models.list()] == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_openai_chat_and_completions(servers):
    from openai import OpenAI, UnprocessableEntityError

    server = servers["text-generation"]
    api = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Hello"}]
    chat = api.chat.completions.create(model="tiny", messages=messages, max_tokens=5)
    choice = chat.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("length", "stop")
    assert chat.usage.completion_tokens <= 5 and chat.usage.prompt_tokens > 0
    stream = api.chat.completions.create(
        model="tiny", messages=messages, max_tokens=5, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    completion = api.completions.create(model="tiny", prompt="The quick brown", max_tokens=6)
    direct = client(server).text_generation(
        "The quick brown", max_new_tokens=6, return_full_text=False
    )
    assert completion.choices[0].text == direct
    pieces = api.completions.create(model="t", prompt="The quick brown", max_tokens=6, stream=True)
    assert "".join(p.choices[0].text for p in pieces if p.choices) == direct
    with pytest.raises(UnprocessableEntityError, match="context is 128 tokens"):
        api.completions.create(model="t", prompt="the dog " * 200, max_tokens=4)


def test_inference_client_chat_completion(servers):
    inference = client(servers["text-generation"])
    answer = inference.chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4)
    assert answer.choices[0].message.role == "assistant"


# ---------------------------------------------------------------- HTTP behaviour

BAD = [
    ("not json", b"{", 400),
    ("no inputs", {"nope": 1}, 422),
    ("empty list", {"inputs": []}, 422),
    ("unknown parameter", {"inputs": "x", "parameters": {"bogus_parameter": 1}}, 422),
    ("parameters not an object", {"inputs": "x", "parameters": [1]}, 422),
    ("too many inputs", {"inputs": ["x"] * 257}, 413),
]
TASK_BAD = {
    "image-classification": [
        ("url", {"inputs": "https://example.com/cat.png"}, 422),
        ("not base64", {"inputs": "not an image!"}, 422),
        ("not an image", {"inputs": base64.b64encode(b"hello").decode()}, 422),
    ],
    "question-answering": [("plain text", {"inputs": "no question here"}, 422)],
    "zero-shot-classification": [("no labels", {"inputs": "x"}, 422)],
    "fill-mask": [("no mask", {"inputs": "no mask token here"}, 422)],
    "text-generation": [
        ("too long", {"inputs": "x", "parameters": {"max_new_tokens": 10**6}}, 422)
    ],
    "text-classification": [("not a string", {"inputs": 42}, 422)],
}


@pytest.mark.parametrize("task", list(SUPPORTED_TASKS))
def test_bad_requests_get_4xx_json_with_a_message(servers, task):
    server = servers[task]
    for name, body, status in BAD + TASK_BAD.get(task, []):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = requests.post(server.url + "/", data=raw, timeout=30,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == status, (name, answer.text)
        error = answer.json()["error"]
        assert isinstance(error, str) and error and "Traceback" not in error, name
    assert "Traceback" not in server.log()


def test_error_messages_name_the_fix(servers):
    answer = servers["text-classification"].post("/", {"inputs": "x", "parameters": {"topk": 1}})
    assert "unknown parameter 'topk'" in answer.json()["error"]
    assert "top_k" in answer.json()["error"]  # the allowed names are listed
    body = {"inputs": "x", "parameters": {"top_k": 0}}
    assert "top_k" in servers["text-classification"].post("/", body).json()["error"]
    big = requests.post(servers["text-classification"].url + "/", data=b"x" * (17 * 2**20),
                        timeout=60)  # fmt: skip
    assert big.status_code == 413 and "16777216 bytes" in big.json()["error"]


def test_unknown_route_with_a_body_keeps_the_connection_usable(servers):
    conn = http.client.HTTPConnection("127.0.0.1", servers["text-classification"].port, timeout=30)
    try:
        body = json.dumps({"model": "x", "inputs": "a" * 5000})
        conn.request("POST", "/v1/nope", body=body, headers={"Content-Type": "application/json"})
        first = conn.getresponse()
        assert first.status == 404 and "no such endpoint" in json.loads(first.read())["error"]
        conn.request("POST", "/predict", body=json.dumps({"inputs": "I love it"}),
                     headers={"Content-Type": "application/json"})  # fmt: skip
        second = conn.getresponse()
        assert second.status == 200, second.read()
        assert json.loads(second.read())[0][0]["label"] in ("POSITIVE", "NEGATIVE")
    finally:
        conn.close()


def test_concurrent_requests_are_batched_and_metered(servers):
    server = servers["token-classification"]
    texts = [f"Sarah lives in Paris {i}" for i in range(32)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: server.post("/", {"inputs": t}), texts))
    assert all(a.status_code == 200 for a in answers)
    alone = [server.post("/", {"inputs": t}).json() for t in texts[:4]]
    assert [a.json() for a in answers[:4]] == alone  # batching does not change answers
    families = {f.name: f for f in text_string_to_metric_families(
        requests.get(server.url + "/metrics", timeout=10).text)}  # fmt: skip
    batch = families["modelport_batch_size"].samples
    buckets = {s.labels["le"]: s.value for s in batch if s.name.endswith("_bucket")}
    count = next(s.value for s in batch if s.name.endswith("_count"))
    assert buckets["1.0"] < count, f"no batch above one input: {buckets}"
    requests_total = {s.labels["status"]: s.value for s in families["modelport_requests"].samples
                      if s.name == "modelport_requests_total"}  # fmt: skip
    assert requests_total["200"] >= 36
    for name in ("modelport_request_duration_seconds", "modelport_queue_depth",
                 "modelport_requests_in_flight", "process_resident_memory_bytes"):  # fmt: skip
        assert name in families, name


def test_openapi_document_describes_the_routes(servers):
    doc = requests.get(servers["text-generation"].url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    assert {"/", "/predict", "/health", "/ready", "/v1/chat/completions"} <= set(doc["paths"])
    params = doc["components"]["schemas"]["TextGenerationParameters"]["properties"]
    assert {"max_new_tokens", "do_sample", "details", "stop"} <= set(params)
    doc = requests.get(servers["minilm"].url + "/openapi.json", timeout=10).json()
    assert "/v1/embeddings" in doc["paths"] and "/v1/chat/completions" not in doc["paths"]


def test_one_shot_prints_what_the_server_answers(bundles, servers):
    for task, body in (
        ("text-classification", {"inputs": "I love this movie", "parameters": {"top_k": 2}}),
        ("question-answering", {"inputs": {"question": "Where do I live?", "context": CONTEXT}}),
    ):
        script = bundles[task]
        proc = subprocess.run(
            [sys.executable, script.name, "--input", json.dumps(body)], cwd=script.parent,
            capture_output=True, text=True, timeout=180, env={**os.environ, **THREAD_ENV},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        served = servers[task].post("/", body).json()
        assert rounded(json.loads(proc.stdout)) == rounded(served), task


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- lifecycle


def test_sigterm_drains_in_flight_requests(bundles):
    """In-flight requests complete, new ones and readiness answer 503, the process exits 0."""
    server = BundleServer(bundles["minilm"], env={"DRAIN_TIMEOUT_SECONDS": "60"})
    try:
        server.wait_ready()
        long_texts = ["The quick brown fox jumps over the lazy dog. " * 10] * 32
        with ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(server.post, "/", {"inputs": long_texts}) for _ in range(8)]
            time.sleep(1.0)
            assert not all(f.done() for f in pending), "requests finished before SIGTERM"
            began = time.monotonic()
            server.terminate()
            time.sleep(0.3)
            ready = requests.get(server.url + "/ready", timeout=10)
            late = server.post("/", {"inputs": "one more"})
            answers = [f.result() for f in pending]
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert late.status_code == 503 and "shutting down" in late.json()["error"]
        assert [a.status_code for a in answers] == [200] * 8
        assert all(len(a.json()) == 32 for a in answers)
        assert server.proc.wait(30) == 0
        assert time.monotonic() - began < 60
        assert server.log().rstrip().endswith("INFO run_inference: stopped")
    finally:
        server.stop()


def test_a_model_that_cannot_load_fails_the_process(bundles, tmp_path):
    """The log says why, and the process exits 1 on its own (an orchestrator restarts it)."""
    empty = tmp_path / "no-model"
    empty.mkdir()
    server = BundleServer(bundles["text-classification"], env={"MODEL_PATH": str(empty)})
    try:
        assert server.proc.wait(180) == 1
        log = server.log()
        assert "could not load the model" in log and str(empty) in log
    finally:
        server.stop()
