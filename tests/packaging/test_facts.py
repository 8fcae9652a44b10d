"""Model facts: from a (fake, real-HTTP) Hub through huggingface_hub, and from the local cache."""

from __future__ import annotations

import json
from math import prod
from pathlib import Path

import pytest
from safetensors import safe_open

from modelport.core.errors import GatedModel, InvalidModel, ModelNotFound, UnsupportedModel
from modelport.core.modelref import ModelRef, parse_model_url
from modelport.packaging.catalog import SUPPORTED_TASKS
from modelport.packaging.facts import resolve
from modelport.packaging.hfcache import install_local_model, repo_folder
from tests.fixtures.hf import OTHER_TOKEN, VALID_TOKEN
from tests.fixtures.tiny_models import copy_model

TASKS = list(SUPPORTED_TASKS)


def param_count(folder: Path) -> int:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return sum(prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118


# -- from the Hub ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_hub_facts_for_every_task(fake_hub, tiny_models, task):
    model = tiny_models[task]
    facts = resolve(parse_model_url(model.repo_id), token="")
    assert facts.source == "hub"
    assert (facts.repo_id, facts.revision, facts.task) == (model.repo_id, model.commit, task)
    assert facts.pipeline_tag == task
    assert facts.parameters == param_count(model.path) and facts.dtype == "F32"
    assert facts.config == json.loads((model.path / "config.json").read_text())
    assert facts.architectures == facts.config["architectures"]
    assert facts.license == "apache-2.0" and "tiny-random" in facts.tags
    assert facts.description.startswith("A tiny randomly initialised")
    assert "model.safetensors" in facts.files and not facts.gated
    expected_library = "sentence-transformers" if task == "sentence-similarity" else "transformers"
    assert facts.library_name == expected_library


def test_hub_is_asked_only_at_the_endpoint_and_files_at_the_pinned_commit(
    fake_hub, tiny_models, connections
):
    model = tiny_models["text-classification"]
    resolve(ModelRef(model.repo_id), token="")
    port = int(fake_hub.url.rsplit(":", 1)[1])
    assert connections and {addr[:2] for addr in connections} == {("127.0.0.1", port)}
    paths = [(r.method, r.path) for r in fake_hub.requests]
    assert paths[0] == ("GET", f"/api/models/{model.repo_id}")
    files = {p.split(f"/resolve/{model.commit}/")[1] for _, p in paths[1:]}
    assert files == {"config.json", "README.md"}  # at the sha model_info gave, not "main"
    assert all(r.host == fake_hub.url.removeprefix("http://") for r in fake_hub.requests)
    assert not any("authorization" in r.headers for r in fake_hub.requests)


def test_unknown_model_on_the_hub(fake_hub):
    with pytest.raises(ModelNotFound) as err:
        resolve(ModelRef("nobody/no-such-model"), token="")
    assert "'nobody/no-such-model' was not found on the Hugging Face Hub" in err.value.message
    assert err.value.status == 404


@pytest.fixture
def gated_repo(fake_hub, tiny_models):
    repo_id = "tiny-random/gated-bert"
    if repo_id not in fake_hub.repos:
        fake_hub.add_repo(
            repo_id, tiny_models["fill-mask"].path, gated="manual", allowed_tokens={VALID_TOKEN}
        )
    return repo_id


def test_gated_without_token_says_accept_terms_and_set_hf_token(fake_hub, gated_repo):
    with pytest.raises(GatedModel) as err:
        resolve(ModelRef(gated_repo), token="")
    message = err.value.message
    assert gated_repo in message and "accept its terms" in message and "HF_TOKEN" in message
    assert f"{fake_hub.url}/{gated_repo}" in message and err.value.status == 403


def test_gated_with_a_token_that_lacks_access(fake_hub, gated_repo):
    with pytest.raises(GatedModel) as err:
        resolve(ModelRef(gated_repo), token=OTHER_TOKEN)
    assert "has no access" in err.value.message and "accept its terms" in err.value.message
    sent = {r.headers.get("authorization") for r in fake_hub.requests}
    assert sent == {f"Bearer {OTHER_TOKEN}"}


def test_gated_with_an_accepted_token(fake_hub, gated_repo):
    facts = resolve(ModelRef(gated_repo), token=VALID_TOKEN)
    assert facts.gated and facts.task == "fill-mask" and facts.source == "hub"


def test_token_from_settings(fake_hub, gated_repo, monkeypatch):
    from modelport.core.settings import reset_settings

    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    reset_settings()
    assert resolve(ModelRef(gated_repo)).gated


def test_rejected_token(fake_hub, tiny_models):
    with pytest.raises(InvalidModel) as err:
        resolve(ModelRef(tiny_models["fill-mask"].repo_id), token="hf_not_a_real_token")
    assert "rejected HF_TOKEN" in err.value.message


@pytest.fixture
def two_revisions(fake_hub, tiny_models, tmp_path_factory):
    """tiny-random/versioned: main is text-classification, tag v1.0 an older token classifier."""
    repo_id = "tiny-random/versioned"
    if repo_id not in fake_hub.repos:
        fake_hub.add_repo(repo_id, tiny_models["text-classification"].path, ref="main")
        fake_hub.add_repo(repo_id, tiny_models["token-classification"].path, ref="v1.0")
    return repo_id, fake_hub.repos[repo_id].refs


def test_revision_from_the_url_is_pinned(fake_hub, two_revisions):
    repo_id, refs = two_revisions
    old = resolve(parse_model_url(f"{fake_hub.url}/{repo_id}/tree/v1.0"), token="")
    assert old.revision == refs["v1.0"] != refs["main"]
    assert old.task == "token-classification"
    assert any(f"/resolve/{refs['v1.0']}/config.json" in r.path for r in fake_hub.requests)
    by_sha = resolve(parse_model_url(f"hf://{repo_id}@{refs['v1.0']}"), token="")
    assert by_sha.revision == refs["v1.0"]
    latest = resolve(parse_model_url(f"{fake_hub.url}/{repo_id}"), token="")
    assert (latest.revision, latest.task) == (refs["main"], "text-classification")


def test_unknown_revision_on_the_hub(fake_hub, two_revisions):
    repo_id, _ = two_revisions
    with pytest.raises(ModelNotFound) as err:
        resolve(ModelRef(repo_id, "v9"), token="")
    assert "Revision 'v9'" in err.value.message and repo_id in err.value.message


def test_unsupported_pipeline_tag_on_the_hub(fake_hub, tiny_models, tmp_path):
    folder = copy_model(
        tiny_models["feature-extraction"].path, tmp_path / "tts", pipeline_tag="text-to-speech"
    )
    fake_hub.add_repo("tiny-random/speaker", folder)
    with pytest.raises(UnsupportedModel) as err:
        resolve(ModelRef("tiny-random/speaker"), token="")
    assert "'text-to-speech'" in err.value.message
    assert all(task in err.value.message for task in SUPPORTED_TASKS)


# -- from the cache -------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_cache_facts_for_every_task(tiny_models, task):
    model = tiny_models[task]
    facts = resolve(ModelRef(model.repo_id))  # HF_HUB_OFFLINE=1 for the session
    assert facts.source == "cache" and facts.local_path == str(model.snapshot)
    assert (facts.revision, facts.task, facts.pipeline_tag) == (model.commit, task, task)
    assert facts.parameters == param_count(model.path) and facts.dtype == "F32"
    assert facts.config["architectures"] == facts.architectures
    assert facts.license == "apache-2.0"


def test_hub_and_cache_agree(fake_hub, tiny_models, hf_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))  # the cache the models are in
    model = tiny_models["summarization"]
    online = resolve(ModelRef(model.repo_id), token="").to_dict()
    offline = resolve(ModelRef(model.repo_id), offline=True).to_dict()
    assert (online.pop("source"), offline.pop("source")) == ("hub", "cache")
    assert set(offline.pop("tags")) < set(online.pop("tags"))  # the Hub adds its own tags
    assert (online.pop("local_path"), offline.pop("local_path")) == (None, str(model.snapshot))
    assert online == offline


def test_minilm_offline(minilm):
    facts = resolve(parse_model_url(f"https://huggingface.co/{minilm.repo_id}"))
    assert (facts.repo_id, facts.revision, facts.source) == (minilm.repo_id, minilm.commit, "cache")
    assert facts.task == "sentence-similarity" and facts.library_name == "sentence-transformers"
    assert facts.parameters == 22_713_728 and facts.dtype == "F32"
    assert facts.architectures == ["BertModel"] and facts.license == "apache-2.0"
    assert facts.description.startswith("This is a sentence-transformers model: It maps sentences")
    assert "1_Pooling/config.json" in facts.files
    assert resolve(ModelRef(minilm.repo_id, minilm.commit)).revision == minilm.commit
    assert resolve(ModelRef(minilm.repo_id, minilm.commit[:10])).revision == minilm.commit


def test_offline_env_is_read_at_call_time(fake_hub, tiny_models, hf_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub's constant still says online
    facts = resolve(ModelRef(tiny_models["fill-mask"].repo_id))
    assert facts.source == "cache" and fake_hub.requests == []


def test_unreachable_hub_falls_back_to_the_cache(tiny_models, hub_online, closed_port):
    model = tiny_models["question-answering"]
    facts = resolve(ModelRef(model.repo_id), endpoint=f"http://127.0.0.1:{closed_port}", token="")
    assert (facts.source, facts.revision, facts.task) == ("cache", model.commit, model.task)


def test_unreachable_hub_and_not_cached(hf_home, hub_online, closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(ModelNotFound) as err:
        resolve(ModelRef("someone/elsewhere"), endpoint=endpoint, token="")
    message = err.value.message
    assert "'someone/elsewhere' is not in the platform's Hugging Face cache" in message
    assert f"the Hub at {endpoint} is unreachable" in message
    assert str(hf_home) not in message and str(hf_home) not in str(err.value.details)


def test_offline_and_not_cached(hf_home):
    with pytest.raises(ModelNotFound) as err:
        resolve(ModelRef("someone/not-downloaded"))
    message = err.value.message
    assert "'someone/not-downloaded' is not in the platform's Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1" in message and "HF_HOME / HF_HUB_CACHE" in message
    assert str(hf_home) not in message and str(hf_home) not in str(err.value.details)  # no paths
    assert "hf download someone/not-downloaded" in message


def test_offline_revision_not_cached(tiny_models):
    model = tiny_models["fill-mask"]
    with pytest.raises(ModelNotFound) as err:
        resolve(ModelRef(model.repo_id, "v2.0"))
    assert "Revision 'v2.0'" in err.value.message and model.commit in err.value.message
    assert "main" in err.value.details["cached"]
    assert "models--" not in err.value.message  # the cache's folder on the server: not said


def test_offline_branch_other_than_main(hf_home, tiny_models):
    model = tiny_models["fill-mask"]
    install_local_model(model.repo_id, model.path, ref="stable")
    assert resolve(ModelRef(model.repo_id, "stable")).revision == model.commit


@pytest.fixture
def cached_variant(hf_home, tiny_models, tmp_path):
    def make(repo_id: str, task: str, **card) -> str:
        folder = copy_model(tiny_models[task].path, tmp_path / repo_id.replace("/", "--"), **card)
        install_local_model(repo_id, folder)
        return repo_id

    return make


def test_offline_unsupported_task(cached_variant):
    repo_id = cached_variant("tiny-random/tts", "feature-extraction", pipeline_tag="text-to-speech")
    with pytest.raises(UnsupportedModel) as err:
        resolve(ModelRef(repo_id))
    assert repo_id in err.value.message and "text-to-speech" in err.value.message
    assert err.value.details["supportedTasks"] == list(SUPPORTED_TASKS)


def test_task_from_architectures_without_pipeline_tag(cached_variant):
    repo_id = cached_variant("tiny-random/untagged", "text-classification", license="mit")
    facts = resolve(ModelRef(repo_id))
    assert facts.pipeline_tag is None and facts.task == "text-classification"
    assert facts.library_name == "transformers" and facts.license == "mit"


def test_sentence_transformers_without_pipeline_tag(cached_variant):
    repo_id = cached_variant("tiny-random/untagged-sbert", "sentence-similarity", license="mit")
    assert resolve(ModelRef(repo_id)).task == "sentence-similarity"


def test_alias_pipeline_tag(cached_variant):
    repo_id = cached_variant("tiny-random/ner", "token-classification", pipeline_tag="ner")
    assert resolve(ModelRef(repo_id)).task == "token-classification"


def test_unknown_architecture_and_no_tag(hf_home, tiny_models, tmp_path):
    folder = copy_model(tiny_models["fill-mask"].path, tmp_path / "odd", license="mit")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Mystery"]}))
    install_local_model("tiny-random/odd", folder)
    with pytest.raises(UnsupportedModel) as err:
        resolve(ModelRef("tiny-random/odd"))
    assert "Cannot tell the task" in err.value.message and "Mystery" in err.value.message


def test_refs_built_by_hand_are_still_checked(hf_home):
    for ref in (ModelRef("../../etc/x"), ModelRef("a/b", "../../main"), ModelRef("a/b.git")):
        with pytest.raises(InvalidModel):
            resolve(ref)


# -- the cache layout ---------------------------------------------------------------------


def test_install_is_idempotent_and_loadable(hf_home, tiny_models):
    from huggingface_hub import snapshot_download

    model = tiny_models["text-generation"]
    assert install_local_model(model.repo_id, model.path) == model.commit
    storage = repo_folder(model.repo_id)
    assert (storage / "refs" / "main").read_text() == model.commit
    weights = model.snapshot / "model.safetensors"
    assert weights.is_symlink() and not Path(weights.readlink()).is_absolute()
    assert weights.resolve().parent == storage / "blobs"
    path = snapshot_download(model.repo_id, local_files_only=True)
    assert Path(path) == model.snapshot


def test_transformers_loads_from_the_cache_offline(tiny_models, minilm):
    from transformers import AutoConfig, AutoTokenizer

    model = tiny_models["text-classification"]
    config = AutoConfig.from_pretrained(model.repo_id)
    assert config.id2label[1] == "POSITIVE"
    assert AutoTokenizer.from_pretrained(model.repo_id)("I love it")["input_ids"][0] == 2
    assert AutoConfig.from_pretrained(minilm.repo_id, revision=minilm.commit).hidden_size == 384
