"""The executor's flush rules: by size, by age, a bounded queue that blocks, errors per batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from streams.batching import BatchExecutor


def _recording() -> tuple[list[list[int]], Callable[[list[int]], list[int]]]:
    batches: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        batches.append(list(items))
        return [x * 10 for x in items]

    return batches, process


async def test_flushes_at_max_batch_without_waiting_for_the_delay() -> None:
    batches, process = _recording()
    ex: BatchExecutor[int, int] = BatchExecutor(process, max_batch=4, max_delay_ms=600_000, queue_items=64)
    futures = [await ex.submit(i) for i in range(8)]
    # The delay is ten minutes: only the size rule can complete these within the timeout.
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
    await ex.stop()
    assert results == [i * 10 for i in range(8)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]]


async def test_flushes_a_partial_batch_after_max_delay() -> None:
    batches, process = _recording()
    ex: BatchExecutor[int, int] = BatchExecutor(process, max_batch=1000, max_delay_ms=20, queue_items=64)
    futures = [await ex.submit(i) for i in range(3)]
    assert await asyncio.wait_for(asyncio.gather(*futures), timeout=30) == [0, 10, 20]
    await ex.stop()
    assert batches == [[0, 1, 2]]
    assert ex.stats.items == 3 and ex.stats.batches == 1


async def test_full_queue_makes_submit_wait_until_inference_frees_it() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        seen.append(list(items))
        release.wait(30)
        return items

    ex = BatchExecutor(process, max_batch=1, max_delay_ms=0, queue_items=2)
    first = await ex.submit(0)
    while not seen:  # the batcher took item 0 and is blocked inside process
        await asyncio.sleep(0.01)
    queued = [await ex.submit(1), await ex.submit(2)]  # fills the queue of 2
    assert ex.queue_depth == 2
    blocked = asyncio.ensure_future(ex.submit(3))
    await asyncio.sleep(0.2)
    assert not blocked.done(), "submit must wait while the queue is full"
    release.set()
    fourth = await asyncio.wait_for(blocked, timeout=30)
    assert await asyncio.wait_for(asyncio.gather(first, *queued, fourth), timeout=30) == [0, 1, 2, 3]
    await ex.stop()


async def test_a_failing_batch_fails_only_its_own_futures() -> None:
    def process(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("bad window")
        return items

    ex = BatchExecutor(process, max_batch=2, max_delay_ms=10_000, queue_items=8)
    bad = [await ex.submit(13), await ex.submit(1)]
    good = [await ex.submit(2), await ex.submit(3)]
    for f in bad:
        with pytest.raises(ValueError, match="bad window"):
            await asyncio.wait_for(f, timeout=30)
    assert await asyncio.wait_for(asyncio.gather(*good), timeout=30) == [2, 3]
    await ex.stop()


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchExecutor(lambda items: items, max_batch=0, max_delay_ms=1, queue_items=1)
