"""parse_model_url: the four documented forms in, everything hostile out."""

from __future__ import annotations

import pytest

from modelport.core.errors import InvalidModel
from modelport.core.modelref import ModelRef, parse_model_url

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SHA = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


@pytest.fixture(autouse=True)
def _default_endpoint(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.mark.parametrize(
    ("text", "repo_id", "revision"),
    [
        ("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2", MINILM, None),
        ("https://huggingface.co/org/name/tree/v1.0", "org/name", "v1.0"),
        (f"https://huggingface.co/org/name/tree/{SHA}", "org/name", SHA),
        ("https://huggingface.co/org/name/tree/main/", "org/name", "main"),
        ("https://www.huggingface.co/org/name", "org/name", None),
        ("https://HuggingFace.co/org/name", "org/name", None),
        ("https://huggingface.co:443/org/name", "org/name", None),
        ("hf://org/name@rev_1", "org/name", "rev_1"),
        ("hf://org/name", "org/name", None),
        ("org/name", "org/name", None),
        ("org/name@" + SHA, "org/name", SHA),
        ("gpt2", "gpt2", None),
        ("Org-1/name_2.v3", "Org-1/name_2.v3", None),
        ("  org/name \n", "org/name", None),  # surrounding whitespace from copy-paste is trimmed
    ],
)  # fmt: skip
def test_accepted_forms(text, repo_id, revision):
    assert parse_model_url(text) == ModelRef(repo_id, revision)


HOSTILE = [
    # other hosts and userinfo tricks
    "https://evil.com/org/name",
    "https://huggingface.co@evil.com/org/name",
    "https://huggingface.co:x@evil.com/org/name",
    "https://user:pass@huggingface.co/org/name",
    "https://huggingface.co\\@evil.com/org/name",
    "https://huggingface.co%40evil.com/org/name",
    "https://evil.com#@huggingface.co/org/name",
    "https://evil.com?@huggingface.co/org/name",
    "https://huggingface.co.evil.com/org/name",
    "https://evilhuggingface.co/org/name",
    "https://huggingface.co:8443/org/name",
    "http://huggingface.co/org/name",
    "ftp://huggingface.co/org/name",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "//evil.com/org/name",
    "https:///org/name",
    # unicode lookalikes
    "https://huggingface.c\u03bf/org/name",  # Greek omicron
    "https://\uff48uggingface.co/org/name",  # fullwidth h
    "\uff4frg/name",  # fullwidth o
    "org/n\u0430me",  # Cyrillic a
    "org/name\u200b",
    "org/na\u0301me",
    # paths
    "../org/name",
    "org/../name",
    "org/name/../../etc",
    "https://huggingface.co/org/name/tree/../../x",
    "https://huggingface.co/org/name/tree/%2e%2e",
    "https://huggingface.co/org%2Fname/x",
    "https://huggingface.co/org/name/tree/refs%2Fpr%2F1",
    "org/name@../main",
    "/org/name",
    "org//name",
    "org/name/",
    "a/b/c",
    "org--x/name",
    "org/name.git",
    # shell metacharacters
    "a/b;rm -rf /",
    "a/b;id",
    "$(id)/name",
    "org/$(id)",
    "`id`/name",
    "org/name@$(id)",
    "org/name|cat",
    "org/name&&id",
    "org/name>out",
    "hf://org/name@rev;id",
    "https://huggingface.co/org/name/tree/main;id",
    # newlines, control characters
    "org/name\nhttps://evil.com/x/y",
    "org/na\nme",
    "org/name@main\r\nX-Injected: 1",
    "org/name\x00",
    "org/name\x1b[31m",
    "org/name\tx",
    # percent-encoded in a URL: unquoted, then checked whole (a trailing newline passed `$`)
    "https://huggingface.co/org/name%0A",
    "https://huggingface.co/org/name/tree/main%0A",
    "hf://org/name@main%0A",
    "https://huggingface.co/org%0A/name",
    # malformed hosts: these were 500s
    "http://[8.8.8.8]/org/name",
    "https://[::1/org/name",
    # length
    "a" * 10_000,
    "org/" + "n" * 10_000,
    "https://huggingface.co/org/" + "n" * 400,
    "org/" + "n" * 97,
    "org/name@" + "r" * 101,
    # not models
    "https://huggingface.co/datasets/org/name",
    "https://huggingface.co/spaces/org/name",
    "hf://datasets/org/name",
    "datasets/name",
    "spaces/name",
    "https://huggingface.co/org/name/blob/main/config.json",
    "https://huggingface.co/org/name/resolve/main/model.safetensors",
    "https://huggingface.co/api/models/org/name",
    "https://huggingface.co/org/name?x=1",
    "https://huggingface.co/org/name#x",
    "https://huggingface.co/org/name/tree/",
    "https://huggingface.co/",
    # empties and wrong types
    "",
    "   ",
    "hf://",
    "org/name@",
    "@main",
    None,
    42,
    ["org/name"],
    {"modelUrl": "org/name"},
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t)[:40])
def test_hostile_inputs_are_rejected(text):
    with pytest.raises(InvalidModel) as err:
        parse_model_url(text)
    assert err.value.status == 400 and "Accepted forms" in err.value.message
    shown = err.value.details.get("modelUrl", "")
    assert len(shown) <= 120  # a 10k-character input is not echoed back whole


def test_the_host_follows_hf_endpoint(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8123")
    assert parse_model_url("http://127.0.0.1:8123/org/name/tree/v1") == ModelRef("org/name", "v1")
    for other in ("https://huggingface.co/org/name", "http://127.0.0.1:8124/org/name"):
        with pytest.raises(InvalidModel):
            parse_model_url(other)
