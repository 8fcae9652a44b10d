"""The harness itself: memory limits and OOM per batch size, the model cache, the sampler,
the timing window, peak FLOP/s, and that the API side imports no torch."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from modelport.benchmarking import BenchmarkConfig, run_benchmark
from modelport.benchmarking.flops import listed_peak, peak_flops
from modelport.benchmarking.memwatch import RssSampler, estimate_batch_bytes, rss_bytes
from modelport.benchmarking.modelcache import ModelCache, estimate_bytes, load_model
from modelport.benchmarking.timing import time_window
from modelport.core.errors import BenchmarkFailed
from modelport.core.modelref import ModelRef
from modelport.packaging.facts import resolve
from modelport.packaging.options import optimization_settings

MiB, GiB = 2**20, 2**30


@pytest.fixture(scope="module")
def sbert(tiny_models):
    """The tiny sentence-transformers model's facts."""
    return resolve(ModelRef(tiny_models["sentence-similarity"].repo_id))


def hooked_loader(hook):
    """A loader that loads for real, then adds `hook(batch_size)` before the encoder runs."""

    def load(facts, device, level):
        loaded = load_model(facts, device, level)
        # hook the encoder's embeddings, the first module the engine's forward calls
        embeddings = loaded.model.embeddings

        def pre_hook(module, args, kwargs):
            ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
            hook(ids.shape[0])

        embeddings.register_forward_pre_hook(pre_hook, with_kwargs=True)
        return loaded

    return load


def config(sizes, **kw):
    kw.setdefault("iterations", 4)
    kw.setdefault("warmup", 1)
    kw.setdefault("sequence_length", 16)
    kw.setdefault("max_memory_bytes", 16 * GiB)
    return BenchmarkConfig(batch_sizes=sizes, **kw)


@pytest.mark.parametrize("level", ["none", "aggressive"])
def test_the_benchmark_loads_the_bundle_runtime_engine(tiny_models, level):
    """The benchmark times the module the bundle's engine serves, loaded by that engine."""
    from modelport.packaging.bundle import runtime_config
    from modelport.packaging.options import GenerateOptions
    from modelport.runtime.engine import Engine, load_engine

    items = {
        "sentence-similarity": {"source_sentence": "A cat.", "sentences": ["A dog.", "A cat."]},
        "text-generation": "Paris is the capital of",
        "question-answering": {"question": "Where?", "context": "The cat sat on the mat."},
    }
    for task, item in items.items():
        facts = resolve(ModelRef(tiny_models[task].repo_id))
        loaded = load_model(facts, "cpu", level)
        assert isinstance(loaded.engine, Engine) and loaded.model is loaded.engine.model
        assert loaded.applied is loaded.engine.backend.applied
        config = runtime_config(facts, GenerateOptions(optimizationLevel=level))
        bundle = load_engine(config, facts.local_path or str(tiny_models[task].snapshot))
        assert type(bundle) is type(loaded.engine)
        assert bundle.backend.applied == loaded.applied
        with bundle.backend.running():
            params = bundle.Parameters()
            want = bundle.predict([item], params)
            got = loaded.engine.predict([item], params)
        assert got == want


def test_out_of_memory_is_recorded_per_batch_and_the_sweep_goes_on(sbert):
    def hook(batch_size):
        if batch_size == 4:
            raise torch_oom("CUDA out of memory. Tried to allocate 20.00 GiB")
        if batch_size == 8:
            raise MemoryError("cannot allocate")

    cache = ModelCache(GiB, loader=hooked_loader(hook))
    report = run_benchmark(sbert, config([1, 4, 8, 2]), cache=cache)
    assert [r.status for r in report.rows] == ["ok", "oom", "oom", "ok"]
    assert "out of memory at batch 4: CUDA out of memory" in report.row(4).message
    assert report.row(4).throughput is None and report.row(2).throughput > 0
    spec = report.to_spec()
    assert [v is None for v in spec["results"]["throughput"]] == [False, True, True, False]
    assert any("Batch size 4 ran out of memory" in s for s in report.recommendations)


def torch_oom(message):
    import torch

    return torch.OutOfMemoryError(message)


def test_peak_rss_over_the_limit_after_running_is_recorded(sbert):
    hog: list[np.ndarray] = []

    def hook(batch_size):
        if batch_size == 2 and not hog:
            hog.append(np.ones(400 * MiB, dtype=np.uint8))  # touched: resident at once

    cache = ModelCache(GiB, loader=hooked_loader(hook))
    loaded = cache.get(sbert, "cpu", "standard")
    need = estimate_batch_bytes(loaded, 2, 16, 0)
    limit = rss_bytes() + need + 150 * MiB  # passes the estimate, not the real run
    try:
        report = run_benchmark(sbert, config([1, 2], max_memory_bytes=limit), cache=cache)
    finally:
        hog.clear()
    one, two = report.row(1), report.row(2)
    assert one.status == "ok"
    assert two.status == "over_memory_limit"
    assert two.peak_rss_mb * MiB > limit
    assert "went over the memory limit" in two.message
    assert [m["batch_size"] for m in report.metric_rows()] == [1]


def test_errors_are_recorded_and_a_sweep_with_nothing_measured_fails(sbert):
    def hook(batch_size):
        if batch_size > 1:
            raise ValueError("shape mismatch")

    cache = ModelCache(GiB, loader=hooked_loader(hook))
    report = run_benchmark(sbert, config([1, 3]), cache=cache)
    assert report.row(3).status == "error"
    assert report.row(3).message == "ValueError: shape mismatch"
    with pytest.raises(BenchmarkFailed, match="No batch size"):
        run_benchmark(sbert, config([2, 3]), cache=cache)


def test_reraised_exceptions_end_the_sweep(sbert):
    class Stop(Exception):
        pass

    def hook(batch_size):
        raise Stop()

    cache = ModelCache(GiB, loader=hooked_loader(hook))
    with pytest.raises(Stop):
        run_benchmark(sbert, config([1, 2]), cache=cache, reraise=(Stop,))


def test_torch_threads_follow_the_cores_and_are_restored(sbert):
    import torch

    seen: list[int] = []
    cache = ModelCache(GiB, loader=hooked_loader(lambda size: seen.append(torch.get_num_threads())))
    before = torch.get_num_threads()
    report = run_benchmark(sbert, config([1], cpu_cores=1.5), cache=cache)
    assert set(seen) == {1} and report.device["threads"] == 1
    assert torch.get_num_threads() == before


def test_model_cache_is_lru_within_its_byte_budget(tiny_models):
    facts = {t: resolve(ModelRef(tiny_models[t].repo_id)) for t in
             ("text-classification", "token-classification", "fill-mask")}  # fmt: skip
    sizes = {t: load_model(f, "cpu", "standard").nbytes for t, f in facts.items()}
    settings = optimization_settings("standard", gpu=False)
    assert estimate_bytes(facts["fill-mask"], settings) > 0
    cache = ModelCache(2 * max(sizes.values()) + 1)
    a, b, c = facts["text-classification"], facts["token-classification"], facts["fill-mask"]
    first = cache.get(a, "cpu", "standard")
    cache.get(b, "cpu", "standard")
    assert cache.get(a, "cpu", "standard") is first  # a hit, and now the most recent
    assert cache.loads == 2
    cache.get(c, "cpu", "standard")  # over budget: the least recently used (b) goes
    assert cache.loads == 3 and cache.evictions == 1
    assert [k[0] for k in cache.cached_keys()] == [a.repo_id, c.repo_id]
    assert cache.total_bytes <= cache.budget_bytes
    # another level is another entry
    cache.get(a, "cpu", "none")
    assert cache.loads == 4
    assert (a.repo_id, a.revision, a.task, "cpu", "none") in cache.cached_keys()


def test_sampler_sleeps_between_reads():
    started, started_cpu = time.perf_counter(), time.process_time()
    with RssSampler(interval_s=0.02) as sampler:
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    used_cpu = time.process_time() - started_cpu
    assert elapsed / 0.02 / 2 <= sampler.samples <= elapsed / 0.02 + 3  # ~one read per 20 ms
    assert used_cpu < 0.1  # a polling loop would burn ~0.5 s of CPU here


def test_sampler_sees_the_peak():
    with RssSampler(interval_s=0.02) as sampler:
        base = rss_bytes()
        block = np.ones(200 * MiB, dtype=np.uint8)
        time.sleep(0.1)
        del block
    assert sampler.peak_bytes - base >= 190 * MiB
    assert not sampler.exceeded


def test_sampler_flags_the_limit():
    with RssSampler(limit_bytes=rss_bytes() + 50 * MiB, interval_s=0.01) as sampler:
        block = np.ones(150 * MiB, dtype=np.uint8)
        time.sleep(0.05)
        del block
    assert sampler.exceeded


def test_time_window_turns_gc_off_and_can_stop_early():
    seen = []

    def step():
        seen.append(gc.isenabled())
        time.sleep(0.002)

    spans = time_window(step, 10, device="cpu")
    assert len(spans) == 10 and all(s >= 2.0 for s in spans) and max(spans) < 50
    assert seen == [False] * 10 and gc.isenabled()
    spans = time_window(step, 10, device="cpu", between=lambda done: done == 3)
    assert len(spans) == 3


def test_peak_flops_listed_and_probed():
    assert listed_peak("NVIDIA H100 80GB HBM3", "bfloat16").flops_per_s == 989.4e12
    assert listed_peak("NVIDIA H100 PCIe", "float16").flops_per_s == 756e12
    assert listed_peak("NVIDIA H200", "float32", tf32=True).flops_per_s == 494.7e12
    assert listed_peak("NVIDIA A100-SXM4-40GB", "float32").flops_per_s == 19.5e12
    assert listed_peak("Tesla T4", "bfloat16") is None  # not listed: probed instead
    assert listed_peak("NVIDIA L40S", "float16") is None
    first = peak_flops("cpu")
    assert 1e9 < first.flops_per_s < 1e14 and first.source.startswith("probe")
    assert peak_flops("cpu") is first  # measured once per process
    # in the dtype the model runs (a bfloat16 model was set against the float32 peak)
    half = peak_flops("cpu", "bfloat16")
    assert "bfloat16 matmul" in half.source and half.flops_per_s > 0
    assert half is not first


def test_flop_formulas_for_sdpa_with_grouped_heads_and_int8_linear():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from modelport.benchmarking.flops import register_formulas

    register_formulas()
    q, kv = torch.randn(2, 4, 16, 8), torch.randn(2, 2, 32, 8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
    assert counter.get_total_flops() == 2 * (2 * 4) * 16 * 32 * (8 + 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(64, 32)), dtype=torch.qint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        layer(torch.randn(3, 5, 64))
    assert counter.get_total_flops() == 2 * 15 * 64 * 32


def test_api_side_imports_stay_light():
    code = (
        "import sys\n"
        "import modelport.benchmarking, modelport.benchmarking.analysis\n"
        "import modelport.benchmarking.cost, modelport.benchmarking.report\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
