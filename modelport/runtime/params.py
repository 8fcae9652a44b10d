"""Request parameters per task, validated by pydantic (unknown names are refused by name).

Names are the transformers pipeline's keyword arguments and the Hugging Face Inference API's
parameters, so `huggingface_hub.InferenceClient` and pipeline users send what they know.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def _split_labels(value: Any) -> Any:
    """Zero-shot labels may come as "a, b, c", as the pipeline and the HF widget allow."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Labels = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=1000)]],
    BeforeValidator(_split_labels),
    Field(min_length=1, max_length=64),
]


class Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the transformers pipeline (None means its default)."""
        return self.model_dump(exclude_none=True)


class NoParameters(Parameters):
    pass


class TextClassificationParameters(Parameters):
    top_k: Annotated[int, Field(ge=1, le=10_000)] | None = None
    function_to_apply: Literal["sigmoid", "softmax", "none"] | None = None
    truncation: bool = False

    def pipeline_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"truncation"})


class TokenClassificationParameters(Parameters):
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] = "simple"
    ignore_labels: Annotated[list[str], Field(max_length=100)] | None = None
    stride: Annotated[int, Field(ge=0, le=512)] | None = None
    truncation: bool = False

    def pipeline_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"truncation"})


class FillMaskParameters(Parameters):
    top_k: Annotated[int, Field(ge=1, le=100)] | None = None
    targets: Annotated[list[str], Field(min_length=1, max_length=100)] | None = None
    truncation: bool = False

    def pipeline_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"truncation"})


class ZeroShotParameters(Parameters):
    candidate_labels: Labels
    multi_label: bool = False
    hypothesis_template: Annotated[str, Field(min_length=2, max_length=500)] = "This example is {}."
    truncation: bool = False

    @field_validator("hypothesis_template")
    @classmethod
    def _has_a_slot(cls, value: str) -> str:
        if "{}" not in value:
            raise ValueError("must contain {} where a label goes")
        return value

    def pipeline_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"truncation"})


class ImageClassificationParameters(Parameters):
    top_k: Annotated[int, Field(ge=1, le=10_000)] | None = None
    function_to_apply: Literal["sigmoid", "softmax", "none"] | None = None


class FeatureExtractionParameters(Parameters):
    """Token-level features (transformers models): nothing to pool or normalize."""

    truncation: bool = False
    truncate: bool | None = None  # TEI / InferenceClient spelling

    @property
    def truncating(self) -> bool:
        return bool(self.truncation or self.truncate)


class EmbeddingParameters(FeatureExtractionParameters):
    """Pooled sentence embeddings (sentence-transformers models), with TEI's options."""

    normalize: bool | None = None
    prompt_name: str | None = None
    truncation_direction: Literal["left", "right", "Left", "Right"] | None = None


class QuestionAnsweringParameters(Parameters):
    top_k: Annotated[int, Field(ge=1, le=100)] = 1
    doc_stride: Annotated[int, Field(ge=0, le=1024)] | None = None  # min(window / 2, 128)
    max_answer_len: Annotated[int, Field(ge=1, le=512)] = 15
    max_seq_len: Annotated[int, Field(ge=16, le=8192)] | None = None
    max_question_len: Annotated[int, Field(ge=1, le=1024)] = 64
    handle_impossible_answer: bool = False
    align_to_words: bool = True


class GenerationParameters(Parameters):
    """Generation controls shared by causal and sequence-to-sequence models."""

    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    min_new_tokens: Annotated[int, Field(ge=0)] | None = None
    do_sample: bool = False
    temperature: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    top_k: Annotated[int, Field(ge=0, le=10_000)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    typical_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    no_repeat_ngram_size: Annotated[int, Field(ge=0, le=100)] | None = None
    num_beams: Annotated[int, Field(ge=1, le=16)] | None = None
    num_return_sequences: Annotated[int, Field(ge=1, le=16)] = 1
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    # a boolean, or the Inference API's strategy names (summarization, translation)
    truncation: bool | Literal["do_not_truncate", "longest_first", "only_first", "only_second"] = (
        False
    )

    @property
    def truncating(self) -> bool:
        return self.truncation not in (False, "do_not_truncate")

    def resolved(self) -> GenerationParameters:
        """These parameters with any nested ones applied (see Seq2SeqParameters)."""
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for model.generate (sampling knobs only when sampling)."""
        names = {
            "max_new_tokens",
            "min_new_tokens",
            "do_sample",
            "repetition_penalty",
            "no_repeat_ngram_size",
            "num_beams",
            "num_return_sequences",
        }
        if self.do_sample:
            names |= {"temperature", "top_k", "top_p", "typical_p"}
        return {k: v for k, v in self.model_dump(include=names).items() if v is not None}


class TextGenerationParameters(GenerationParameters):
    """Also TGI's names, so InferenceClient.text_generation works unchanged."""

    return_full_text: bool | None = None
    stop: Annotated[list[str], Field(max_length=16)] | None = None
    stop_sequences: Annotated[list[str], Field(max_length=16)] | None = None
    details: bool = False
    decoder_input_details: bool = False
    best_of: Annotated[int, Field(ge=1, le=1)] | None = None
    truncate: Annotated[int, Field(ge=1)] | None = None
    watermark: Literal[False] = False
    top_n_tokens: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    grammar: None = None
    adapter_id: None = None

    @property
    def stops(self) -> list[str]:
        return [*(self.stop or []), *(self.stop_sequences or [])]


class Seq2SeqParameters(GenerationParameters):
    length_penalty: Annotated[float, Field(ge=-10.0, le=10.0)] | None = None
    early_stopping: bool | None = None
    src_lang: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    tgt_lang: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    clean_up_tokenization_spaces: bool | None = None
    generate_parameters: GenerationParameters | None = None

    def resolved(self) -> Seq2SeqParameters:
        """InferenceClient's summarization and translation nest generation options in
        `generate_parameters`: what was set there applies, over the top level."""
        if self.generate_parameters is None:
            return self
        nested = self.generate_parameters.model_dump(exclude_unset=True)
        return self.model_copy(update={**nested, "generate_parameters": None})

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs = super().generate_kwargs()
        for name in ("length_penalty", "early_stopping"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


TASK_PARAMETERS: dict[str, type[Parameters]] = {
    "text-classification": TextClassificationParameters,
    "token-classification": TokenClassificationParameters,
    "fill-mask": FillMaskParameters,
    "zero-shot-classification": ZeroShotParameters,
    "feature-extraction": FeatureExtractionParameters,
    "image-classification": ImageClassificationParameters,
    "sentence-similarity": EmbeddingParameters,
    "question-answering": QuestionAnsweringParameters,
    "text-generation": TextGenerationParameters,
    "text2text-generation": Seq2SeqParameters,
    "summarization": Seq2SeqParameters,
    "translation": Seq2SeqParameters,
}


def parameters_for(task: str, *, sentence_transformers: bool = False) -> type[Parameters]:
    """The parameters a task's requests may carry (sentence-transformers models: pooled ones)."""
    if sentence_transformers and task == "feature-extraction":
        return EmbeddingParameters
    return TASK_PARAMETERS[task]
