"""Request parameters per task (pydantic models the runtime validates with)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelport.runtime import params as p


def test_greedy_generation_leaves_the_sampling_knobs_out():
    params = p.TextGenerationParameters(temperature=0.7, top_k=5, top_p=0.9, typical_p=0.5)
    assert params.generate_kwargs() == {"do_sample": False, "num_return_sequences": 1}


def test_sampling_passes_the_sampling_knobs():
    params = p.TextGenerationParameters(do_sample=True, temperature=0.7, top_p=0.9, seed=3)
    assert params.generate_kwargs() == {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "num_return_sequences": 1,
    }


def test_generate_kwargs_keeps_only_generate_arguments():
    params = p.TextGenerationParameters(
        max_new_tokens=10,
        min_new_tokens=2,
        num_beams=2,
        repetition_penalty=1.2,
        no_repeat_ngram_size=3,
        return_full_text=False,
        stop=["\n"],
        details=True,
        truncate=100,
    )
    assert params.generate_kwargs() == {
        "max_new_tokens": 10,
        "min_new_tokens": 2,
        "do_sample": False,
        "num_beams": 2,
        "repetition_penalty": 1.2,
        "no_repeat_ngram_size": 3,
        "num_return_sequences": 1,
    }


def test_tgi_stop_and_stop_sequences_combine():
    params = p.TextGenerationParameters(stop=["a"], stop_sequences=["b", "c"])
    assert params.stops == ["a", "b", "c"]
    assert p.TextGenerationParameters().stops == []


@pytest.mark.parametrize(
    "raw",
    [
        {"watermark": True},
        {"best_of": 2},
        {"top_n_tokens": 5},
        {"frequency_penalty": 0.5},
        {"grammar": {"type": "json", "value": {}}},
        {"adapter_id": "x"},
        {"temperature": 0},
        {"top_p": 1.5},
        {"num_beams": 17},
        {"seed": -1},
        {"max_new_tokens": 0},
    ],
)
def test_unsupported_tgi_options_and_out_of_range_values_are_refused(raw):
    with pytest.raises(ValidationError):
        p.TextGenerationParameters.model_validate(raw)


def test_tgi_defaults_are_accepted():
    params = p.TextGenerationParameters.model_validate(
        {"watermark": False, "best_of": 1, "top_n_tokens": 0, "grammar": None, "adapter_id": None}
    )
    assert params.generate_kwargs() == {"do_sample": False, "num_return_sequences": 1}


def test_seq2seq_takes_generate_parameters_nested():
    params = p.Seq2SeqParameters.model_validate(
        {"generate_parameters": {"max_new_tokens": 20, "num_beams": 3}, "length_penalty": 2.0}
    )
    kwargs = params.resolved().generate_kwargs()
    assert (kwargs["max_new_tokens"], kwargs["num_beams"], kwargs["length_penalty"]) == (20, 3, 2.0)
    assert "early_stopping" not in kwargs
    with pytest.raises(ValidationError, match="generate_parameters"):
        p.Seq2SeqParameters.model_validate({"generate_parameters": {"max_tokens": 20}})


def test_nested_generate_parameters_do_not_undo_top_level_ones():
    params = p.Seq2SeqParameters.model_validate(
        {
            "do_sample": True,
            "temperature": 0.5,
            "num_return_sequences": 3,
            "generate_parameters": {"max_new_tokens": 20},
        }
    )
    kwargs = params.generate_kwargs()
    assert (kwargs["do_sample"], kwargs["num_return_sequences"]) == (True, 3)


@pytest.mark.parametrize(
    ("truncation", "truncating"),
    [
        (True, True),
        (False, False),
        ("only_first", True),
        ("longest_first", True),
        ("do_not_truncate", False),
    ],
)
def test_seq2seq_truncation_is_a_bool_or_a_strategy(truncation, truncating):
    assert p.Seq2SeqParameters(truncation=truncation).truncating is truncating


def test_an_unknown_truncation_strategy_is_refused():
    with pytest.raises(ValidationError):
        p.Seq2SeqParameters.model_validate({"truncation": "middle"})


def test_parameters_are_frozen_and_forbid_unknown_names():
    params = p.TextClassificationParameters(top_k=2)
    with pytest.raises(ValidationError):
        params.top_k = 3
    with pytest.raises(ValidationError, match="extra"):
        p.TextClassificationParameters.model_validate({"topk": 2})
    with pytest.raises(ValidationError):
        p.NoParameters.model_validate({"anything": 1})


def test_pipeline_kwargs_leave_out_defaults_and_truncation():
    assert p.TextClassificationParameters(truncation=True).pipeline_kwargs() == {}
    assert p.TokenClassificationParameters().pipeline_kwargs() == {"aggregation_strategy": "simple"}
    assert p.FillMaskParameters(top_k=3, truncation=True).pipeline_kwargs() == {"top_k": 3}
    assert p.ImageClassificationParameters(top_k=1).pipeline_kwargs() == {"top_k": 1}


def test_feature_extraction_truncates_with_either_name():
    assert not p.FeatureExtractionParameters().truncating
    assert p.FeatureExtractionParameters(truncation=True).truncating
    assert p.FeatureExtractionParameters(truncate=True).truncating
    assert not p.EmbeddingParameters(truncate=False).truncating


@pytest.mark.parametrize(
    ("task", "cls"),
    [
        ("text-classification", p.TextClassificationParameters),
        ("token-classification", p.TokenClassificationParameters),
        ("fill-mask", p.FillMaskParameters),
        ("zero-shot-classification", p.ZeroShotParameters),
        ("feature-extraction", p.FeatureExtractionParameters),
        ("image-classification", p.ImageClassificationParameters),
        ("sentence-similarity", p.EmbeddingParameters),
        ("question-answering", p.QuestionAnsweringParameters),
        ("text-generation", p.TextGenerationParameters),
        ("text2text-generation", p.Seq2SeqParameters),
        ("summarization", p.Seq2SeqParameters),
        ("translation", p.Seq2SeqParameters),
    ],
)
def test_parameters_for_each_task(task, cls):
    assert p.parameters_for(task) is cls


def test_sentence_transformers_feature_extraction_takes_pooled_parameters():
    assert p.parameters_for("feature-extraction", sentence_transformers=True) is (
        p.EmbeddingParameters
    )
    assert p.parameters_for("text-classification", sentence_transformers=True) is (
        p.TextClassificationParameters
    )


def test_parameters_for_an_unknown_task():
    with pytest.raises(KeyError):
        p.parameters_for("audio-classification")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [("a", ["a"]), ("a,b", ["a", "b"]), (" a , b ,", ["a", "b"]), (["a, b"], ["a, b"])],
)
def test_zero_shot_labels_split_only_when_a_string(labels, expected):
    assert p.ZeroShotParameters(candidate_labels=labels).candidate_labels == expected


def test_zero_shot_label_limits():
    with pytest.raises(ValidationError):
        p.ZeroShotParameters(candidate_labels=[f"l{i}" for i in range(65)])
    with pytest.raises(ValidationError):
        p.ZeroShotParameters(candidate_labels=["x" * 1001])
    with pytest.raises(ValidationError):
        p.ZeroShotParameters(candidate_labels=["ok", ""])
