"""One bounded inference executor per worker process: micro-batches across every partition.

Windows from all partitions a worker owns go into ONE bounded queue. A batch flushes when it
holds ``max_batch`` items or when its oldest item has waited ``max_delay_ms``, whichever comes
first; under load the queue refills while a batch runs, so batches grow by themselves, and at low
load a lone window waits at most ``max_delay_ms``. The batch function runs in ONE thread, off the
event loop (torch and NumPy release the GIL in their kernels, so Kafka I/O keeps flowing). A full
queue makes ``submit`` wait, which slows consumption instead of growing memory.

Each item gets an ``asyncio.Future`` with its own result, so results go back to their windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """Counters the health reporter reads and resets: batches, items, inference time."""

    batches: int = 0
    items: int = 0
    busy_s: float = 0.0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1024))

    def take(self) -> BatchStats:
        """A copy of the counters, which are then reset."""
        copy = BatchStats(self.batches, self.items, self.busy_s, deque(self.sizes))
        self.batches, self.items, self.busy_s = 0, 0, 0.0
        self.sizes.clear()
        return copy


@dataclass
class _Item(Generic[T, R]):
    value: T
    future: asyncio.Future[R]
    t_in: float


class BatchExecutor(Generic[T, R]):
    """Bounded queue + micro-batching + one worker thread for ``process(batch) -> results``.

    ``process`` receives a list of items and must return one result per item, in order. If it
    raises, every future of that batch gets the exception (the caller dead-letters those windows).
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_delay_ms: float,
        queue_items: int,
        thread_name: str = "ecgmon-inference",
    ) -> None:
        if max_batch < 1 or queue_items < 1 or max_delay_ms < 0:
            raise ValueError(
                f"max_batch ({max_batch}) and queue_items ({queue_items}) must be >= 1 and max_delay_ms >= 0."
            )
        self.process = process
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self._queue: asyncio.Queue[_Item[T, R]] = asyncio.Queue(maxsize=queue_items)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch (not counting the batch running now)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the batching loop on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ecgmon-batcher")

    async def stop(self) -> None:
        """Stop batching; waiting futures are cancelled and the thread is released."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def submit(self, value: T) -> asyncio.Future[R]:
        """Queue ``value``; waits while the queue is full. Returns the future of its result."""
        self.start()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(value, future, time.monotonic()))
        return future

    async def _next_batch(self) -> list[_Item[T, R]]:
        first = await self._queue.get()
        batch = [first]
        deadline = first.t_in + self.max_delay_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [item for item in batch if not item.future.cancelled()]
            if not live:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._pool, self.process, [item.value for item in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
            except asyncio.CancelledError:
                for item in live:
                    item.future.cancel()
                raise
            except Exception as exc:
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                for item, result in zip(live, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
            finally:
                self.stats.batches += 1
                self.stats.items += len(live)
                self.stats.busy_s += time.perf_counter() - t0
                self.stats.sizes.append(len(live))
