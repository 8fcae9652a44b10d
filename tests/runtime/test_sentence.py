"""The runtime's own reading of sentence-transformers pipelines (runtime/sentence.py) gives what
sentence-transformers itself gives, for every pooling mode, Dense, prompts and lower-casing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from modelport.runtime.config import ConfigError, RuntimeConfig
from modelport.runtime.engine import load_engine

TEXTS = ["The quick brown fox.", "A CAT and a dog sit on the mat while it rains outside.", "x"]
MODES = ["cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens",
         "weightedmean_tokens", "lasttoken"]  # fmt: skip


def variant(source: Path, out: Path, *, modes=("mean_tokens",), normalize=True, dense=False,
            prompts=None, include_prompt=True, lower=False, similarity=None) -> Path:  # fmt: skip
    shutil.copytree(source, out)
    pooling = json.loads((out / "1_Pooling/config.json").read_text())
    for mode in MODES:
        pooling[f"pooling_mode_{mode}"] = mode in modes
    pooling["include_prompt"] = include_prompt
    (out / "1_Pooling/config.json").write_text(json.dumps(pooling))
    kinds = "sentence_transformers.models."
    modules = [{"idx": 0, "name": "0", "path": "", "type": kinds + "Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": kinds + "Pooling"}]  # fmt: skip
    width = 32 * len(modes)
    if dense:
        torch.manual_seed(1)
        (out / "2_Dense").mkdir()
        linear = torch.nn.Linear(width, 16)
        from safetensors.torch import save_file

        save_file({f"linear.{k}": v.contiguous() for k, v in linear.state_dict().items()},
                  str(out / "2_Dense/model.safetensors"))  # fmt: skip
        (out / "2_Dense/config.json").write_text(json.dumps({
            "in_features": width, "out_features": 16, "bias": True,
            "activation_function": "torch.nn.modules.activation.Tanh"}))  # fmt: skip
        modules.append({"idx": 2, "name": "2", "path": "2_Dense",
                        "type": "sentence_transformers.models.Dense"})  # fmt: skip
    if normalize:
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": "3_Normalize",
                        "type": "sentence_transformers.models.Normalize"})  # fmt: skip
    (out / "modules.json").write_text(json.dumps(modules))
    bert = json.loads((out / "sentence_bert_config.json").read_text())
    (out / "sentence_bert_config.json").write_text(json.dumps({**bert, "do_lower_case": lower}))
    st = json.loads((out / "config_sentence_transformers.json").read_text())
    if prompts:
        st["prompts"] = prompts
    if similarity:
        st["similarity_fn_name"] = similarity
    (out / "config_sentence_transformers.json").write_text(json.dumps(st))
    return out


def engine_for(path: Path):
    config = RuntimeConfig(model_id="tiny/sbert", revision="0" * 40, task="sentence-similarity",
                           loader="sentence-transformers", model_path=str(path))  # fmt: skip
    return load_engine(config, str(path))


def sentence_transformers_model(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


CASES = {
    **{mode: {"modes": (mode,)} for mode in MODES},
    "all modes": {"modes": tuple(MODES), "normalize": False},
    "dense": {"modes": ("mean_tokens",), "dense": True},
    "lower case": {"lower": True},
    "prompt excluded from pooling": {"prompts": {"query": "query: "}, "include_prompt": False},
}


@pytest.mark.parametrize("case", list(CASES))
def test_pooling_matches_sentence_transformers(tiny_models, tmp_path, case):
    source = tiny_models["sentence-similarity"].path
    path = variant(source, tmp_path / "model", **CASES[case])
    engine = engine_for(path)
    reference = sentence_transformers_model(path)
    prompt = "query" if "prompts" in CASES[case] else None
    params = engine.Parameters(normalize=False, prompt_name=prompt)
    with engine.backend.running():
        got = engine.encode(list(TEXTS), params)
    want = reference.encode(TEXTS, convert_to_tensor=True, prompt_name=prompt).float()
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions_match_sentence_transformers(tiny_models, tmp_path, name):
    path = variant(tiny_models["sentence-similarity"].path, tmp_path / "m", similarity=name)
    engine = engine_for(path)
    reference = sentence_transformers_model(path)
    item = {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}
    with engine.backend.running():
        (got,) = engine.predict([item], engine.Parameters())
    vectors = reference.encode(TEXTS, convert_to_tensor=True)
    want = reference.similarity(vectors[:1], vectors[1:])[0].tolist()
    assert got == pytest.approx(want, abs=1e-5)


def test_an_unsupported_module_is_refused_by_name(tiny_models, tmp_path):
    path = variant(tiny_models["sentence-similarity"].path, tmp_path / "m")
    modules = json.loads((path / "modules.json").read_text())
    modules.append({"idx": 9, "name": "9", "path": "9_X", "type": "my_package.Reranker"})
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"my_package\.Reranker"):
        engine_for(path)
