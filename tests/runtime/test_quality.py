"""The quality gate (runtime/quality.py) on the tiny models and MiniLM, in process: what
`run_inference.py --self-check` runs in a bundle and the benchmark runs before timing."""

from __future__ import annotations

import json

import pytest

from modelport.core.modelref import ModelRef
from modelport.packaging.bundle import runtime_config
from modelport.packaging.facts import resolve
from modelport.packaging.options import GenerateOptions
from modelport.runtime import quality
from modelport.runtime.engine import load_engine, self_check

TASKS = [
    "text-classification", "token-classification", "question-answering", "fill-mask",
    "zero-shot-classification", "text-generation", "summarization", "image-classification",
    "feature-extraction", "sentence-similarity",
]  # fmt: skip
METRICS = {
    "text-generation": "greedy_tokens_identical",
    "summarization": "greedy_tokens_identical",
    "feature-extraction": "min_cosine",
    "sentence-similarity": "min_cosine",
}


def engine_for(model, level: str):
    facts = resolve(ModelRef(model.repo_id))
    config = runtime_config(facts, GenerateOptions(optimizationLevel=level))
    return load_engine(config, str(model.snapshot))


@pytest.mark.parametrize("task", TASKS)
def test_the_standard_level_computes_what_float32_computes(tiny_models, task):
    found = self_check(engine_for(tiny_models[task], "standard"))
    assert found.metric == METRICS.get(task, "top1_agreement")
    assert found.passed, found.to_dict()
    assert found.inputs >= 4
    if found.metric == "top1_agreement":
        assert found.value == 1.0 and found.extra["maxProbabilityDiff"] < 1e-3
    else:
        assert found.value >= quality.MIN_COSINE or found.value == 1.0


@pytest.mark.parametrize("task", TASKS)
def test_the_bfloat16_level_serves_every_task_on_cpu(tiny_models, task):
    """bfloat16 weights on CPU: every engine runs them (outputs leave as float32 or text) and
    the gate measures them; the tiny random models' small logit margins may flip."""
    engine = engine_for(tiny_models[task], "bfloat16")
    assert engine.backend.applied["dtype"] == "bfloat16"
    assert next(engine.model.parameters()).dtype.is_floating_point
    found = self_check(engine)
    assert found.metric == METRICS.get(task, "top1_agreement")
    assert 0.0 <= found.value <= 1.0


def test_bfloat16_keeps_minilm_above_the_gate(minilm):
    import torch

    engine = engine_for(minilm, "bfloat16")
    assert next(engine.model.parameters()).dtype == torch.bfloat16
    found = self_check(engine)
    assert found.passed and found.value >= quality.MIN_COSINE, found.to_dict()


@pytest.fixture()
def torch_threads():
    """The ONNX Runtime backend leaves torch one thread: give the rest of the session its own."""
    import torch

    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_the_onnxruntime_level_serves_minilm_within_the_gate(
    minilm, tmp_path, monkeypatch, torch_threads
):
    """ONNX Runtime runs the exported transformer; pooling and normalisation stay the same
    code: the gate sees float32 arithmetic (cosine ~1), and a second load reuses the export."""
    import time

    from modelport.runtime.onnx_backend import OrtModel
    from modelport.runtime.params import EmbeddingParameters

    monkeypatch.setenv("MODELPORT_ONNX_CACHE", str(tmp_path))
    engine = engine_for(minilm, "onnxruntime")
    assert isinstance(engine.model, OrtModel)
    assert engine.backend.applied["backend"] == "onnxruntime"
    assert engine.model.session.get_session_options().intra_op_num_threads == torch_threads
    import torch

    assert torch.get_num_threads() == 1  # torch only pools: its threads would compete
    assert len(list(tmp_path.glob("*/model.onnx"))) == 1
    found = self_check(engine)
    assert found.passed and found.value > 0.99999, found.to_dict()
    (vector,) = engine.predict(["A man is eating food."], EmbeddingParameters())
    assert len(vector) == 384
    began = time.perf_counter()
    again = engine_for(minilm, "onnxruntime")
    assert time.perf_counter() - began < 10 and again.model.path == engine.model.path


def test_the_openvino_level_shares_the_export_and_holds_float32(
    minilm, tmp_path, monkeypatch, torch_threads
):
    """OpenVINO compiles the same cached export as ONNX Runtime, in float32 (it would choose
    bfloat16 by itself on a CPU that has it), with the process's threads; the gate sees float32
    arithmetic, and openvino-telemetry is never imported."""
    import sys

    import torch

    from modelport.runtime.onnx_backend import OrtModel
    from modelport.runtime.openvino_backend import OpenVinoSession
    from modelport.runtime.params import EmbeddingParameters

    monkeypatch.setenv("MODELPORT_ONNX_CACHE", str(tmp_path))
    onnx = engine_for(minilm, "onnxruntime")
    torch.set_num_threads(torch_threads)
    engine = engine_for(minilm, "openvino")
    assert isinstance(engine.model, OrtModel) and isinstance(engine.model.session, OpenVinoSession)
    assert engine.model.path == onnx.model.path  # one export, two runtimes
    assert len(list(tmp_path.glob("*/model.onnx"))) == 1
    assert engine.backend.applied["backend"] == "openvino"
    assert engine.model.session.properties() == {
        "INFERENCE_PRECISION_HINT": "<Type: 'float32'>",
        "INFERENCE_NUM_THREADS": str(torch_threads),
        "NUM_STREAMS": "1",
    }
    assert torch.get_num_threads() == 1
    found = self_check(engine)
    assert found.passed and found.value > 0.99999, found.to_dict()
    sentences = ["A man is eating food.", "Ein Hund bellt."]
    got = engine.predict(sentences, EmbeddingParameters())
    want = onnx.predict(sentences, EmbeddingParameters())
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-4)
    assert sys.modules.get("openvino_telemetry", "absent") is None  # blocked, not loaded


@pytest.mark.parametrize("level", ["onnxruntime", "openvino"])
def test_the_exported_levels_name_the_tasks_they_serve(tiny_models, torch_threads, level):
    from modelport.runtime.config import ConfigError

    with pytest.raises(ConfigError, match="serves feature-extraction, sentence-similarity"):
        engine_for(tiny_models["text-classification"], level)
    engine = engine_for(tiny_models["feature-extraction"], level)
    assert self_check(engine).passed


def test_a_model_that_computes_something_else_fails(minilm):
    """The same weights with noise in one layer: the gate sees it and says by how much."""
    import torch

    reference = engine_for(minilm, "none")
    assert quality.compare(engine_for(minilm, "standard"), reference).value > 0.9999
    damaged = engine_for(minilm, "standard")
    with torch.no_grad():
        weight = damaged.model.encoder.layer[0].attention.self.query.weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * 0.2)
    found = quality.compare(damaged, reference)
    assert found.metric == "min_cosine" and not found.passed
    assert found.value < quality.MIN_COSINE and found.inputs == len(quality.TEXTS)


def test_dynamic_int8_fails_the_gate_where_it_changes_the_answers(minilm, tiny_models):
    """Dynamic int8, even per-channel (CPU 'aggressive'), moves MiniLM's embeddings to ~0.97 cosine
    and changes a tiny GPT-2's greedy continuations: both fail, with their numbers."""
    engine = engine_for(minilm, "aggressive")
    assert engine.backend.applied["quantization"] == "dynamic-int8"
    found = self_check(engine)
    assert not found.passed and 0.5 < found.value < quality.MIN_COSINE
    generation = self_check(engine_for(tiny_models["text-generation"], "aggressive"))
    assert generation.metric == "greedy_tokens_identical"
    assert not generation.passed and generation.value < 1.0
    assert generation.to_dict()["greedyTokens"] == quality.GREEDY_TOKENS


def test_agreement_counts_every_scored_position():
    import torch

    logits = torch.tensor([[[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]]])  # one row, three tokens
    flipped = logits.clone()
    flipped[0, 1] = torch.tensor([3.0, 0.0])
    mask = torch.tensor([[True, True, False]])  # the third token is padding
    found = quality._agreement([flipped], [logits], mask)
    assert (found.value, found.inputs, found.passed) == (0.5, 2, False)
    assert found.extra["maxProbabilityDiff"] == pytest.approx(
        float(
            torch.softmax(torch.tensor([0.0, 3.0]), -1)[1]
            - torch.softmax(torch.tensor([3.0, 0.0]), -1)[1]
        )
    )
    same = quality._agreement([logits], [logits.clone()], mask)
    assert (same.value, same.passed, same.extra["maxProbabilityDiff"]) == (1.0, True, 0.0)


def test_the_bundle_self_check_exits_by_the_gate(tiny_models, minilm, tmp_path):
    """`run_inference.py --self-check` prints the gate and exits 0 (passed) or 1 (failed)."""
    import os
    import subprocess
    import sys

    from tests.packaging.bundle_servers import facts_for, write_bundle

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for level, code in (("standard", 0), ("aggressive", 1)):
        script = write_bundle(
            tmp_path / level, facts_for(minilm), GenerateOptions(optimizationLevel=level)
        )
        run = subprocess.run(
            [sys.executable, str(script), "--self-check"],
            env={**env, "MODEL_PATH": str(minilm.snapshot)},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == code, run.stderr[-2000:]
        found = json.loads(run.stdout)
        assert found["metric"] == "min_cosine" and found["passed"] is (code == 0)
