"""Engines loaded on the tiny models and MiniLM, in process: the self-check hook."""

from __future__ import annotations

import pytest

from modelport.core.modelref import ModelRef
from modelport.packaging.bundle import runtime_config
from modelport.packaging.facts import resolve
from modelport.packaging.options import GenerateOptions
from modelport.runtime.engine import agreement, load_engine, self_check


def engine_for(model, level: str):
    facts = resolve(ModelRef(model.repo_id))
    config = runtime_config(facts, GenerateOptions(optimizationLevel=level))
    return load_engine(config, str(model.snapshot))


@pytest.mark.parametrize(
    "task", ["text-classification", "question-answering", "text-generation", "summarization",
             "image-classification", "sentence-similarity"],
)  # fmt: skip
def test_self_check_of_the_reference_level_agrees_exactly(tiny_models, task):
    result = self_check(engine_for(tiny_models[task], "none"))
    assert result.inputs >= 2
    assert result.max_abs_diff == 0.0 and result.cosine_min == pytest.approx(1.0)
    assert result.top1_agreement == 1.0


def test_self_check_measures_what_int8_quantization_changes(minilm):
    engine = engine_for(minilm, "aggressive")
    assert engine.backend.applied["quantization"] == "dynamic-int8"
    result = self_check(engine)
    assert 0 < result.max_abs_diff < 0.5  # quantized: close, and not identical
    assert 0.8 < result.cosine_min < 1.0  # measured 0.91: int8 costs MiniLM real quality
    assert result.to_dict()["cosineMin"] == result.cosine_min


def test_agreement_arithmetic():
    same = agreement([[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 2.0]])
    assert (same.cosine_min, same.max_abs_diff, same.top1_agreement) == (1.0, 0.0, 1.0)
    flipped = agreement([[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 2.0]])
    assert flipped.cosine_min == 0.0 and flipped.max_abs_diff == 1.0
    assert flipped.top1_agreement == 0.5
