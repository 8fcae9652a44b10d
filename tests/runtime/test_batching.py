"""The dynamic batcher, driven by a plain Python model function on a real event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from modelport.runtime.batching import Batcher
from modelport.runtime.errors import Busy, InputError


class Model:
    """Records each batch; an input "gate" blocks the model thread until `release()`."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.threads: set[str] = set()
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items: list[Any], params: Any) -> list[Any]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        if "gate" in items:
            self.started.set()
            self.gate.wait(10)
        if "bad" in items:
            raise InputError("bad input")
        if "boom" in items:
            raise RuntimeError("the model broke")
        return [f"{params}:{item}" for item in items]

    def release(self) -> None:
        self.gate.set()

    def ran(self) -> list[Any]:
        return [item for batch in self.batches for item in batch]


def make_batcher(model: Model, **kwargs: Any) -> Batcher:
    settings = {"max_batch": 8, "max_delay_s": 0.0, "max_queued": 100, **kwargs}
    batcher = Batcher(model, **settings)
    batcher.start()
    return batcher


@contextlib.asynccontextmanager
async def running(model: Model, **kwargs: Any) -> AsyncIterator[Batcher]:
    """A started batcher, stopped (its model thread joined) on the way out."""
    batcher = make_batcher(model, **kwargs)
    try:
        yield batcher
    finally:
        await batcher.stop()


async def block(batcher: Batcher, model: Model) -> asyncio.Task[list[Any]]:
    """Occupy the model thread with a lone "gate" input; queue behind it until released."""
    task = asyncio.create_task(batcher.submit(["gate"], [0], "p", "p"))
    while not model.started.is_set():
        await asyncio.sleep(0.001)
    return task


def submit(batcher: Batcher, values: list[Any], key: str = "p", sizes: list[int] | None = None):
    sizes = sizes if sizes is not None else [len(str(v)) for v in values]
    return asyncio.create_task(batcher.submit(values, sizes, key, key))


async def queued(batcher: Batcher, depth: int) -> None:
    for _ in range(1000):
        if batcher.depth == depth:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"queue depth {batcher.depth}, expected {depth}")


def test_concurrent_requests_with_the_same_key_share_a_batch():
    model = Model()

    async def main():
        async with running(model, max_batch=4) as batcher:
            gate = await block(batcher, model)
            tasks = [submit(batcher, [f"x{i}"]) for i in range(6)]
            await queued(batcher, 6)
            model.release()
            results = await asyncio.gather(gate, *tasks)
        return results

    results = asyncio.run(main())
    assert results == [["p:gate"], *([f"p:x{i}"] for i in range(6))]
    assert model.batches == [["gate"], ["x0", "x1", "x2", "x3"], ["x4", "x5"]]
    assert len(model.threads) == 1 and next(iter(model.threads)).startswith("model")


def test_one_request_with_many_inputs_is_split_into_batches_in_order():
    model = Model()

    async def main():
        async with running(model, max_batch=3) as batcher:
            return await batcher.submit(list("abcdefg"), [1] * 7, "p", "p")

    assert asyncio.run(main()) == [f"p:{c}" for c in "abcdefg"]
    assert model.batches == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_different_keys_never_share_a_batch():
    model = Model()

    async def main():
        async with running(model, max_batch=8) as batcher:
            gate = await block(batcher, model)
            tasks = [submit(batcher, [f"{key}{i}"], key) for i in range(3) for key in "xy"]
            await queued(batcher, 6)
            model.release()
            await gate
            return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    # every output was computed with its own request's parameters
    assert results == [[f"{key}:{key}{i}"] for i in range(3) for key in "xy"]
    assert model.batches[1:] == [["x0", "x1", "x2"], ["y0", "y1", "y2"]]


def test_a_full_queue_batches_the_oldest_with_the_nearest_in_size():
    model = Model()
    sizes = {"a": 10, "b": 100, "c": 12, "d": 50, "e": 9, "f": 11, "g": 49}

    async def main():
        async with running(model, max_batch=3) as batcher:
            gate = await block(batcher, model)
            tasks = [submit(batcher, [name], sizes=[size]) for name, size in sizes.items()]
            await queued(batcher, len(sizes))
            model.release()
            await gate
            await asyncio.gather(*tasks)

    asyncio.run(main())
    # a (the oldest, 10) with e (9) and f (11), in arrival order; then b (100) with d and g
    assert model.batches[1:] == [["a", "e", "f"], ["b", "d", "g"], ["c"]]


def test_equally_near_inputs_go_oldest_first():
    model = Model()

    async def main():
        async with running(model, max_batch=2) as batcher:
            gate = await block(batcher, model)
            tasks = [submit(batcher, [n], sizes=[s]) for n, s in [("a", 5), ("b", 7), ("c", 3)]]
            await queued(batcher, 3)
            model.release()
            await gate
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert model.batches[1:] == [["a", "b"], ["c"]]


def test_a_lone_request_is_not_delayed():
    model = Model()

    async def main():
        async with running(model, max_batch=8, max_delay_s=0.5) as batcher:
            began = time.monotonic()
            result = await batcher.submit(["only"], [4], "p", "p")
            return result, time.monotonic() - began

    result, seconds = asyncio.run(main())
    assert result == ["p:only"]
    assert seconds < 0.4


def test_under_load_a_batch_waits_to_fill():
    """After a batch of more than one input, the next batch may wait up to max_delay_s."""
    model = Model()

    async def main():
        async with running(model, max_batch=3, max_delay_s=5.0) as batcher:
            await batcher.submit(["a", "b"], [1, 1], "p", "p")  # the last batch held two
            first = submit(batcher, ["c"])
            await asyncio.sleep(0.05)
            second = submit(batcher, ["d", "e"])  # fills the batch: no need to wait
            return await asyncio.wait_for(asyncio.gather(first, second), 3)

    assert asyncio.run(main()) == [["p:c"], ["p:d", "p:e"]]
    assert model.batches == [["a", "b"], ["c", "d", "e"]]


def test_a_failing_input_fails_only_its_own_request():
    model = Model()

    async def main():
        async with running(model, max_batch=8) as batcher:
            gate = await block(batcher, model)
            tasks = [submit(batcher, [v]) for v in ("ok1", "bad", "ok2", "boom", "ok3")]
            await queued(batcher, 5)
            model.release()
            await gate
            return await asyncio.gather(*tasks, return_exceptions=True)

    ok1, bad, ok2, boom, ok3 = asyncio.run(main())
    assert (ok1, ok2, ok3) == (["p:ok1"], ["p:ok2"], ["p:ok3"])
    assert isinstance(bad, InputError) and str(bad) == "bad input"
    assert isinstance(boom, RuntimeError) and str(boom) == "the model broke"
    # the whole batch once, then one input at a time
    assert model.batches[1:] == [
        ["ok1", "bad", "ok2", "boom", "ok3"],
        ["ok1"],
        ["bad"],
        ["ok2"],
        ["boom"],
        ["ok3"],
    ]


def test_a_request_with_a_failing_input_raises_its_error():
    model = Model()

    async def main():
        async with running(model) as batcher:
            with pytest.raises(InputError, match="bad input"):
                await batcher.submit(["fine", "bad"], [4, 3], "p", "p")
            return await batcher.submit(["after"], [5], "p", "p")  # the loop still runs

    assert asyncio.run(main()) == ["p:after"]


def test_a_run_returning_the_wrong_number_of_outputs_fails():
    async def main():
        batcher = Batcher(lambda items, params: [], max_batch=4, max_delay_s=0, max_queued=10)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="0 outputs for 1 inputs"):
                await batcher.submit(["a", "b"], [1, 1], None, "k")
        finally:
            await batcher.stop()

    asyncio.run(main())


def test_more_than_max_queued_inputs_is_busy():
    model = Model()

    async def main():
        async with running(model, max_queued=3) as batcher:
            gate = await block(batcher, model)
            first = submit(batcher, ["a", "b"])
            await queued(batcher, 2)
            with pytest.raises(Busy, match="more than 3 inputs") as caught:
                await batcher.submit(["c", "d"], [1, 1], "p", "p")
            assert caught.value.status == 503
            last = submit(batcher, ["c"])  # exactly full is fine
            await queued(batcher, 3)
            model.release()
            return await asyncio.gather(gate, first, last)

    assert asyncio.run(main()) == [["p:gate"], ["p:a", "p:b"], ["p:c"]]
    assert "d" not in model.ran()


def test_a_cancelled_request_leaves_the_queue_unrun():
    model = Model()
    depths: list[int] = []

    async def main():
        batcher = make_batcher(model, max_batch=8)
        batcher.on_depth = depths.append
        try:
            gate = await block(batcher, model)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(batcher.submit(["late1", "late2"], [5, 5], "p", "p"), 0.05)
            kept = submit(batcher, ["kept"])
            await asyncio.sleep(0)  # kept is queued
            model.release()
            return await asyncio.gather(gate, kept)
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [["p:gate"], ["p:kept"]]
    assert model.batches == [["gate"], ["kept"]]
    assert depths[-1] == 0


def test_call_runs_on_the_model_thread():
    model = Model()

    async def main():
        async with running(model) as batcher:
            await batcher.submit(["a"], [1], "p", "p")
            return await batcher.call(lambda: threading.current_thread().name)

    assert asyncio.run(main()) in model.threads


def test_observe_sees_each_batch_size():
    model = Model()
    seen: list[tuple[int, float]] = []

    async def main():
        batcher = Batcher(
            model,
            max_batch=2,
            max_delay_s=0,
            max_queued=10,
            observe=lambda n, s: seen.append((n, s)),
        )
        batcher.start()
        try:
            await batcher.submit(list("abcde"), [1] * 5, "p", "p")
        finally:
            await batcher.stop()

    asyncio.run(main())
    assert [size for size, _ in seen] == [2, 2, 1]
    assert all(seconds >= 0 for _, seconds in seen)


def test_timed_out_inputs_do_not_count_against_max_queued():
    model = Model()

    async def main():
        batcher = make_batcher(model, max_queued=2)
        try:
            gate = await block(batcher, model)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(batcher.submit(["x", "y"], [1, 1], "p", "p"), 0.05)
            kept = submit(batcher, ["kept"])
            await asyncio.sleep(0)
            model.release()
            return await asyncio.gather(gate, kept)
        finally:
            model.release()
            await batcher.stop()

    assert asyncio.run(main()) == [["p:gate"], ["p:kept"]]
