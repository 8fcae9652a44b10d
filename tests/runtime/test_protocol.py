"""Request bodies as engines parse them, before any model is loaded."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelport.runtime.backend import TorchBackend
from modelport.runtime.config import Limits, Optimization, RuntimeConfig
from modelport.runtime.embeddings import EmbeddingEngine
from modelport.runtime.engine import Engine, engine_class
from modelport.runtime.errors import InputError, TooLarge
from modelport.runtime.generation import CausalEngine
from modelport.runtime.params import (
    EmbeddingParameters,
    FeatureExtractionParameters,
    TextClassificationParameters,
    ZeroShotParameters,
)
from modelport.runtime.pipelines import PipelineEngine
from modelport.runtime.protocol import parse_json, parse_request


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend(Optimization())


def engine(backend: TorchBackend, task: str, cls: type[Engine] = PipelineEngine, **changes):
    config = RuntimeConfig(model_id="a/b", revision="0" * 40, task=task, **changes)
    return cls(config, backend, "unused-path")


@pytest.fixture
def zero_shot(backend):
    return engine(backend, "zero-shot-classification")


@pytest.fixture
def classifier(backend):
    return engine(backend, "text-classification")


@pytest.fixture
def similarity(backend):
    return engine(backend, "sentence-similarity", EmbeddingEngine, loader="sentence-transformers")


LABELS = {"candidate_labels": ["sport", "politics"]}


# ---------------------------------------------------------------- inputs


def test_one_input_or_a_list(classifier):
    one = parse_request({"inputs": "I loved it"}, classifier)
    assert (one.items, one.single, one.stream) == (["I loved it"], True, False)
    assert isinstance(one.params, TextClassificationParameters)
    many = parse_request({"inputs": ["a", "b"]}, classifier)
    assert (many.items, many.single) == (["a", "b"], False)
    assert parse_request({"inputs": ["only"]}, classifier).single is False


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (42, "input must be a string, not int"),
        ([1.5], "input must be a string, not float"),
        ({"text": "x"}, "input must be a string, not an object"),
        (None, "input must be a string, not null"),
        (True, "input must be a string, not a boolean"),
        ([["nested"]], "input must be a string, not a list"),
        ("   ", "input must not be empty"),
        ([], '"inputs" must not be an empty list'),
    ],
)
def test_a_text_input_must_be_a_non_empty_string(classifier, inputs, message):
    with pytest.raises(InputError) as caught:
        parse_request({"inputs": inputs}, classifier)
    assert caught.value.status == 422
    assert str(caught.value) == message


@pytest.mark.parametrize("body", [[], "text", None, {"input": "x"}, {"parameters": {}}])
def test_the_body_must_be_an_object_with_inputs(classifier, body):
    with pytest.raises(InputError, match='"inputs"'):
        parse_request(body, classifier)


def test_a_text_over_the_character_limit_is_too_large(backend):
    small = engine(backend, "text-classification", limits=Limits(max_text_chars=5))
    parse_request({"inputs": "12345"}, small)
    with pytest.raises(InputError, match="6 characters; the limit is 5") as caught:
        parse_request({"inputs": ["ok", "123456"]}, small)
    assert caught.value.status == 413


def test_more_inputs_than_the_limit_is_too_large(backend):
    small = engine(backend, "text-classification", limits=Limits(max_inputs_per_request=2))
    assert len(parse_request({"inputs": ["a", "b"]}, small).items) == 2
    with pytest.raises(TooLarge, match="holds 3 items; the limit is 2") as caught:
        parse_request({"inputs": ["a", "b", "c"]}, small)
    assert caught.value.status == 413


def test_the_json_body_must_parse():
    assert parse_json(b'{"inputs": "x"}') == {"inputs": "x"}
    for raw in (b"{", b"\xff", b"[" * 100_000):
        with pytest.raises(InputError, match="not valid JSON") as caught:
            parse_json(raw)
        assert caught.value.status == 400


# ---------------------------------------------------------------- fields and parameters


def test_an_unknown_top_level_field_is_refused(classifier):
    with pytest.raises(InputError, match="unknown field") as caught:
        parse_request({"inputs": "x", "paramters": {}}, classifier)
    message = str(caught.value)
    assert "'paramters'" in message and "inputs, options, parameters" in message


def test_the_legacy_options_field_is_accepted(classifier):
    body = {"inputs": "x", "options": {"wait_for_model": True, "use_cache": False}}
    assert parse_request(body, classifier).items == ["x"]


@pytest.mark.parametrize("task", ["text-classification", "zero-shot-classification"])
def test_stream_is_refused_outside_text_generation(backend, task):
    body = {"inputs": "x", "parameters": LABELS, "stream": True}
    with pytest.raises(InputError, match=r"unknown field.*'stream'"):
        parse_request(body, engine(backend, task))


def test_an_unknown_parameter_lists_the_allowed_names(classifier):
    with pytest.raises(InputError) as caught:
        parse_request({"inputs": "x", "parameters": {"topk": 3}}, classifier)
    assert str(caught.value) == (
        "unknown parameter 'topk' for text-classification "
        "(allowed: function_to_apply, top_k, truncation)"
    )
    assert caught.value.status == 422


@pytest.mark.parametrize("parameters", [[], "top_k=3", 3])
def test_parameters_must_be_an_object(classifier, parameters):
    with pytest.raises(InputError, match='"parameters" must be a JSON object'):
        parse_request({"inputs": "x", "parameters": parameters}, classifier)


def test_parameters_are_validated(classifier):
    parsed = parse_request({"inputs": "x", "parameters": {"top_k": 2}}, classifier).params
    assert parsed.pipeline_kwargs() == {"top_k": 2}
    with pytest.raises(InputError, match=r"'top_k'.*greater than or equal to 1"):
        parse_request({"inputs": "x", "parameters": {"top_k": 0}}, classifier)
    with pytest.raises(InputError, match="'function_to_apply'"):
        parse_request({"inputs": "x", "parameters": {"function_to_apply": "relu"}}, classifier)
    assert parse_request({"inputs": "x", "parameters": None}, classifier).params == (
        TextClassificationParameters()
    )


def test_stream_is_for_one_text_generation_input(backend):
    generator = engine(backend, "text-generation", CausalEngine)
    assert parse_request({"inputs": "Once", "stream": True}, generator).stream is True
    assert parse_request({"inputs": "Once", "stream": False}, generator).stream is False
    with pytest.raises(InputError, match="streaming takes one input"):
        parse_request({"inputs": ["a", "b"], "stream": True}, generator)
    with pytest.raises(InputError, match='"stream" must be true or false'):
        parse_request({"inputs": "Once", "stream": "yes"}, generator)


# ---------------------------------------------------------------- zero-shot


def test_zero_shot_labels_as_a_comma_separated_string(zero_shot):
    body = {"inputs": "x", "parameters": {"candidate_labels": " sport, politics,, art "}}
    params = parse_request(body, zero_shot).params
    assert isinstance(params, ZeroShotParameters)
    assert params.candidate_labels == ["sport", "politics", "art"]
    kwargs = params.pipeline_kwargs()
    assert kwargs["candidate_labels"] == ["sport", "politics", "art"]
    assert (kwargs["multi_label"], kwargs["hypothesis_template"]) == (False, "This example is {}.")
    assert "truncation" not in kwargs


def test_zero_shot_needs_candidate_labels(zero_shot):
    for parameters in (None, {}, {"multi_label": True}):
        with pytest.raises(InputError, match="'candidate_labels': Field required") as caught:
            parse_request({"inputs": "x", "parameters": parameters}, zero_shot)
        assert caught.value.status == 422


@pytest.mark.parametrize("labels", ["", " , ", []])
def test_zero_shot_labels_must_not_be_empty(zero_shot, labels):
    with pytest.raises(InputError, match="'candidate_labels'"):
        parse_request({"inputs": "x", "parameters": {"candidate_labels": labels}}, zero_shot)


def test_a_hypothesis_template_needs_a_place_for_the_label(zero_shot):
    body = {"inputs": "x", "parameters": {**LABELS, "hypothesis_template": "It is about it."}}
    # refused before the model runs: at parsing, or at the latest building the pipeline call
    with pytest.raises(InputError, match=r"hypothesis_template.*\{\}"):
        parse_request(body, zero_shot).params.pipeline_kwargs()
    body["parameters"]["hypothesis_template"] = "Topic: {}."
    assert parse_request(body, zero_shot).params.pipeline_kwargs()["hypothesis_template"] == (
        "Topic: {}."
    )


# ---------------------------------------------------------------- embeddings


def test_sentence_similarity_takes_tei_root_options(similarity):
    body = {
        "inputs": {"source_sentence": "a", "sentences": ["b", "c"]},
        "normalize": True,
        "truncate": True,
        "parameters": {"truncation_direction": "left", "normalize": False},
    }
    request = parse_request(body, similarity)
    assert isinstance(request.params, EmbeddingParameters)
    assert request.params.normalize is True  # the root option wins over "parameters"
    assert request.params.truncating and request.params.truncation_direction == "left"
    assert request.single and request.items == [body["inputs"]]


def test_feature_extraction_takes_tei_root_options(backend):
    extractor = engine(backend, "feature-extraction")
    request = parse_request({"inputs": ["a", "b"], "truncate": True}, extractor)
    assert isinstance(request.params, FeatureExtractionParameters)
    assert request.params.truncating
    # token-level features have nothing to normalize: refused, not silently ignored
    with pytest.raises(InputError, match=r"unknown parameter 'normalize'.*truncate"):
        parse_request({"inputs": "a", "normalize": True}, extractor)


def test_tei_root_options_are_for_embedding_tasks_only(classifier):
    with pytest.raises(InputError, match=r"unknown field.*'normalize'"):
        parse_request({"inputs": "x", "normalize": True}, classifier)


def test_root_options_with_parameters_not_an_object(similarity):
    with pytest.raises(InputError, match='"parameters" must be a JSON object'):
        parse_request({"inputs": "a", "normalize": True, "parameters": [1]}, similarity)


def test_an_unknown_embedding_parameter_is_refused(similarity):
    with pytest.raises(InputError, match="unknown parameter 'pooling' for sentence-similarity"):
        parse_request({"inputs": "a", "parameters": {"pooling": "mean"}}, similarity)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"source_sentence": "a"}, "source_sentence"),
        ({"source_sentence": "a", "sentences": ["b"], "extra": 1}, "source_sentence"),
        ({"source_sentence": "a", "sentences": []}, '"sentences" must be a list of 1 to'),
        ({"source_sentence": "a", "sentences": "b"}, '"sentences" must be a list'),
        ({"source_sentence": "a", "sentences": ["b", 3]}, "each sentence must be a string"),
        ({"source_sentence": 1, "sentences": ["b"]}, "source_sentence must be a string"),
    ],
)
def test_sentence_similarity_inputs_are_checked(similarity, inputs, message):
    with pytest.raises(InputError, match=message):
        parse_request({"inputs": inputs}, similarity)


def test_too_many_sentences_is_refused(backend):
    small = engine(
        backend,
        "sentence-similarity",
        EmbeddingEngine,
        loader="sentence-transformers",
        limits=Limits(max_inputs_per_request=2),
    )
    with pytest.raises(InputError, match="1 to 2 strings"):
        parse_request({"inputs": {"source_sentence": "a", "sentences": ["b", "c", "d"]}}, small)


def test_engine_class_per_task():
    def config(task, **changes):
        return RuntimeConfig(model_id="a/b", revision="0" * 40, task=task, **changes)

    assert engine_class(config("zero-shot-classification")) is PipelineEngine
    assert engine_class(config("sentence-similarity")) is EmbeddingEngine
    assert engine_class(config("feature-extraction")) is PipelineEngine
    st = replace(config("feature-extraction"), loader="sentence-transformers")
    assert engine_class(st) is EmbeddingEngine
    with pytest.raises(InputError, match="not served"):
        engine_class(config("audio-classification"))
