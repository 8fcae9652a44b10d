"""module.yaml and the environment as the bundle's runtime reads them at start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport.packaging.bundle import render_bundle
from modelport.packaging.options import GenerateOptions
from modelport.runtime.config import (
    ConfigError,
    Limits,
    Optimization,
    cpu_quota,
    load_manifest,
    thread_count,
)
from tests.packaging.test_bundle_render import COMMIT, make_facts

USABLE = len(os.sched_getaffinity(0))


def write_manifest(tmp_path: Path, task: str = "text-classification", **options) -> Path:
    path = tmp_path / "module.yaml"
    path.write_text(render_bundle(make_facts(task), GenerateOptions(**options))["module.yaml"])
    return path


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


# ---------------------------------------------------------------- module.yaml


def test_load_manifest_reads_what_generation_wrote(tmp_path):
    path = write_manifest(tmp_path, "zero-shot-classification", batchSize=4)
    config = load_manifest(path)
    assert (config.model_id, config.revision, config.task) == (
        "acme/tiny-model",
        COMMIT,
        "zero-shot-classification",
    )
    assert (config.loader, config.optimization_level) == ("pipeline", "standard")
    assert (config.max_batch_size, config.max_delay_ms, config.port) == (4, 5.0, 8080)
    assert config.limits == Limits()
    assert config.optimization.device == "cpu"
    assert config.optimization.inference_mode is True


def test_load_manifest_reads_the_gpu_optimization_settings(tmp_path):
    path = write_manifest(tmp_path, gpu=True, optimizationLevel="aggressive")
    settings = load_manifest(path).optimization
    assert (settings.device, settings.dtype, settings.compile) == ("cuda", "bfloat16", True)
    assert settings.quantization == "none"


def test_load_manifest_reads_the_limits(tmp_path):
    path = write_manifest(tmp_path)
    path.write_text(path.read_text().replace("maxInputsPerRequest: 256", "maxInputsPerRequest: 3"))
    assert load_manifest(path).limits.max_inputs_per_request == 3


def test_sentence_transformers_loader(tmp_path):
    facts = make_facts("sentence-similarity", library_name="sentence-transformers")
    path = tmp_path / "module.yaml"
    path.write_text(render_bundle(facts, GenerateOptions())["module.yaml"])
    config = load_manifest(path)
    assert config.loader == "sentence-transformers" and config.sentence_transformers


def test_a_missing_manifest_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_manifest(tmp_path / "module.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "model: [unclosed",  # not YAML
        "",  # empty
        "- just\n- a list\n",
        "just a string",
        "model: {id: a/b, task: fill-mask}\n",  # no revision
        "model: {id: a/b, revision: r, task: t}\nbatching: {maxBatchSize: many}\n",
    ],
)
def test_a_malformed_manifest_is_a_config_error(tmp_path, text):
    path = tmp_path / "module.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"module\.yaml"):
        load_manifest(path)


@pytest.mark.parametrize(
    "text",
    [
        b"model: {id: a/b, revision: r, task: t}\nports: [8080]\n",
        b"\xff\xfe not utf-8",
    ],
)
def test_every_malformed_manifest_is_a_config_error(tmp_path, text):
    path = tmp_path / "module.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError):
        load_manifest(path)


@pytest.mark.parametrize("section", ["batching", "limits", "optimization"])
def test_a_section_left_empty_means_its_defaults(tmp_path, section):
    path = tmp_path / "module.yaml"
    path.write_text(f"model: {{id: a/b, revision: r, task: t}}\n{section}:\n")
    config = load_manifest(path)
    assert (config.max_batch_size, config.limits, config.optimization) == (
        8,
        Limits(),
        Optimization(),
    )


# ---------------------------------------------------------------- environment


def test_the_environment_overrides_deployment_knobs(tmp_path):
    config = load_manifest(write_manifest(tmp_path))
    changed = config.with_env(
        {
            "MODEL_REVISION": "f" * 40,
            "MAX_BATCH_SIZE": " 32 ",
            "MAX_BATCH_DELAY_MS": "2.5",
            "PORT": "9000",
            "HOST": "127.0.0.1",
            "MODEL_PATH": "/models/x",
        }
    )
    assert (changed.revision, changed.max_batch_size, changed.max_delay_ms) == ("f" * 40, 32, 2.5)
    assert (changed.port, changed.host, changed.model_path) == (9000, "127.0.0.1", "/models/x")
    assert changed.model_id == config.model_id
    assert config.max_batch_size == 8  # the original is unchanged


def test_empty_environment_values_are_ignored(tmp_path):
    config = load_manifest(write_manifest(tmp_path))
    assert config.with_env({"PORT": "", "MAX_BATCH_SIZE": "  ", "MODEL_ID": ""}) == config


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MAX_BATCH_SIZE", "eight"),
        ("MAX_BATCH_SIZE", "1.5"),
        ("PORT", "80a"),
        ("MAX_BATCH_DELAY_MS", "x"),
    ],
)
def test_an_unparsable_environment_value_names_the_variable(tmp_path, var, value):
    config = load_manifest(write_manifest(tmp_path))
    with pytest.raises(ConfigError, match=f"{var}={value!r}"):
        config.with_env({var: value})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_BATCH_SIZE": "0"}, "batch size"),
        ({"PORT": "0"}, "port"),
        ({"PORT": "65536"}, "port"),
        ({"MAX_BATCH_DELAY_MS": "-1"}, "delay"),
        ({"MAX_BATCH_DELAY_MS": "nan"}, "delay"),
        ({"MAX_BATCH_DELAY_MS": "inf"}, "delay"),
    ],
)
def test_an_out_of_range_environment_value_is_refused(tmp_path, env, message):
    config = load_manifest(write_manifest(tmp_path))
    with pytest.raises(ConfigError, match=message):
        config.with_env(env)


# ---------------------------------------------------------------- CPU quota and threads


def test_cgroup_v2_quota(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "150000 100000\n"})
    assert cpu_quota(root) == 1.5
    assert thread_count({}, root) == min(2, USABLE)


def test_cgroup_v2_without_a_quota(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "max 100000\n"})
    assert cpu_quota(root) is None
    assert thread_count({}, root) == USABLE


def test_a_fractional_quota_below_one_cpu_still_gives_one_thread(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "20000 100000"})
    assert cpu_quota(root) == pytest.approx(0.2)
    assert thread_count({}, root) == 1


def test_a_quota_above_the_usable_cpus_is_capped(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": f"{(USABLE + 3) * 100000} 100000"})
    assert thread_count({}, root) == USABLE


def test_cgroup_v1_quota(tmp_path):
    root = cgroup(
        tmp_path, {"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    )
    assert cpu_quota(root) == 0.5
    assert thread_count({}, root) == 1


def test_cgroup_v1_without_a_quota(tmp_path):
    root = cgroup(tmp_path, {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert cpu_quota(root) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cpu_quota(tmp_path) is None
    assert thread_count({}, tmp_path) == USABLE


def test_a_malformed_v2_file_falls_back_to_v1(tmp_path):
    root = cgroup(
        tmp_path,
        {"cpu.max": "garbage", "cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"},
    )
    assert cpu_quota(root) == 3.0
    assert thread_count({}, root) == min(3, USABLE)


def test_omp_num_threads_wins(tmp_path):
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})
    assert thread_count({"OMP_NUM_THREADS": " 7 "}, root) == 7


@pytest.mark.parametrize("value", ["0", "-2", "four", ""])
def test_an_unusable_omp_num_threads_is_ignored(tmp_path, value):
    root = cgroup(tmp_path, {"cpu.max": "100000 100000"})
    assert thread_count({"OMP_NUM_THREADS": value}, root) == 1
