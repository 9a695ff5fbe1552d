"""The InfluxDB sink: async, batched line protocol (gzip with ``influx_gzip``) to the v1-compatible ``/write``.

``write(lines)`` puts a chunk of points into a bounded buffer and returns at once with a future
that resolves when the chunk is stored; when the buffer holds ``influx_buffer_points`` the call
waits, so a slow or absent InfluxDB slows consumption instead of growing memory. One flusher task
sends a request when ``influx_batch_points`` are buffered or the oldest chunk is ``influx_flush_ms``
old. Retriable failures (connection errors, 5xx, 429) are retried with exponential back-off capped
at ``influx_retry_max_s``, for as long as it takes; a refusal that no retry can fix (4xx) fails the
futures of that request with a non-retriable ``SinkError``. InfluxDB 2.x gets an
``Authorization: Token`` header; the token is never logged.

Rendering: chunks hold lines (a window's packed ``ecg_strip`` included) and the live ``Waveform``
arrays of windows of patients with an open alert; the flusher turns a batch into one body in a
thread of its own, so neither the inference thread nor the event loop formats a live window's 500
to 6,000 floats (nor gzips the body when ``influx_gzip`` is on; zlib releases the GIL). A spawned
render process was tried to take the formatting off the GIL too: it did not raise the measured
throughput on 2 cores, and
its first render after a kill -9 restart sometimes never returned, so it was removed.

Outages: the choice is back-pressure, not spill to disk. While InfluxDB is down the buffer fills
(at most ``influx_buffer_points``), then ``write`` waits, the pipeline's completion waits, the
bounded inference queue fills and the Faust consumer stops taking records: memory stays bounded
and the windows not yet written simply stay in Kafka, uncommitted (Kafka is the durable spill;
a second, local one would only duplicate it and could be lost with the container). When
InfluxDB answers again, the buffer drains in order and consumption resumes. ``down_s()`` says
how long writes have been failing (health reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from ecgmon.errors import SinkError
from ecgmon.influx import write_retriable
from ecgmon.points import Line, count_points, render_body
from ecgmon.settings import Settings

log = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.1


@dataclass
class _Chunk:
    lines: list[Line]
    points: int
    future: asyncio.Future[None]
    t_in: float


@dataclass
class SinkStats:
    """What the sink did since the last ``take``: points written, requests, retries, failures."""

    points: int = 0
    requests: int = 0
    retries: int = 0
    failed_points: int = 0


class InfluxSink:
    """Batched async writer; ``start`` inside the event loop, ``stop`` flushes what is buffered."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"{settings.influx}/write"
        self.params = {"db": settings.influx_database, "precision": "ms"}
        self.batch_points = settings.influx_batch_points
        self.flush_s = settings.influx_flush_ms / 1000.0
        self.buffer_points = settings.influx_buffer_points
        self.retry_max_s = settings.influx_retry_max_s
        self.gzip = settings.influx_gzip
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            self._headers["Content-Encoding"] = "gzip"
        if settings.influx_version == 2:
            self._headers["Authorization"] = f"Token {settings.influx_token.get_secret_value()}"
        self._chunks: deque[_Chunk] = deque()
        self._buffered = 0
        self._changed: asyncio.Condition | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing_since: float | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.stats = SinkStats()

    def __repr__(self) -> str:  # the headers hold the token: never show them
        return f"InfluxSink({self.url!r}, db={self.params['db']!r})"

    @property
    def buffered_points(self) -> int:
        """Points waiting to be written."""
        return self._buffered

    def down_s(self) -> float:
        """Seconds since InfluxDB began failing the current write (0.0 while writes succeed)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def start(self) -> None:
        """Open the HTTP session and start the flusher (idempotent)."""
        if self._task is not None:
            return
        self._changed = asyncio.Condition()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgmon-influx-render")
        self._task = asyncio.get_running_loop().create_task(self._flusher(), name="ecgmon-influx-sink")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Flush what is buffered (up to ``timeout_s``), then close; unwritten chunks fail."""
        if self._task is None or self._changed is None:
            return
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for chunk in self._chunks:
            if not chunk.future.done():
                chunk.future.set_exception(SinkError("The sink stopped before this write.", retriable=True))
        self._chunks.clear()
        if self._session is not None:
            await self._session.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._task = None

    async def _render(self, chunks: list[list[Line]]) -> bytes:
        """The request body of ``chunks`` (``ecgmon.points.render_body``), in the sink's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, render_body, chunks, self.gzip)

    async def write(self, lines: list[Line]) -> asyncio.Future[None]:
        """Buffer ``lines`` (one chunk, written in one request); waits while the buffer is full."""
        if self._changed is None:
            await self.start()
        assert self._changed is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not lines:
            future.set_result(None)
            return future
        n = count_points(lines)
        async with self._changed:
            # A chunk larger than the whole buffer still goes in once the buffer is empty.
            await self._changed.wait_for(lambda: self._buffered == 0 or self._buffered + n <= self.buffer_points)
            self._chunks.append(_Chunk(lines, n, future, time.monotonic()))
            self._buffered += n
            self._changed.notify_all()
        return future

    def _ready(self) -> bool:
        if not self._chunks:
            return False
        return (
            self._closing
            or self._buffered >= self.batch_points
            or time.monotonic() - self._chunks[0].t_in >= self.flush_s
        )

    async def _flusher(self) -> None:
        assert self._changed is not None
        while True:
            async with self._changed:
                while not self._ready():
                    if self._closing and not self._chunks:
                        return
                    timeout = self.flush_s - (time.monotonic() - self._chunks[0].t_in) if self._chunks else None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout)
                batch: list[_Chunk] = []
                points = 0
                while self._chunks and (not batch or points + self._chunks[0].points <= self.batch_points):
                    chunk = self._chunks.popleft()
                    batch.append(chunk)
                    points += chunk.points
            error = await self._send_with_retries(batch, points)
            async with self._changed:
                self._buffered -= points
                self._changed.notify_all()
            for chunk in batch:
                if chunk.future.done():
                    continue
                if error is None:
                    chunk.future.set_result(None)
                else:
                    chunk.future.set_exception(error)

    async def _send_with_retries(self, batch: list[_Chunk], points: int) -> SinkError | None:
        body = await self._render([chunk.lines for chunk in batch])
        backoff_s = _FIRST_BACKOFF_S
        while True:
            try:
                await self._post(body)
            except SinkError as exc:
                if not exc.retriable:
                    self._failing_since = None  # it answered
                    log.error("InfluxDB refused %d points: %s", points, exc)
                    self.stats.failed_points += points
                    return exc
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                if self._closing and backoff_s >= self.retry_max_s:
                    return exc
                log.warning("InfluxDB write failed (%s); retrying in %.1f s.", exc, backoff_s)
                self.stats.retries += 1
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.retry_max_s)
                continue
            if self._failing_since is not None:
                log.warning("InfluxDB answers again after %.1f s; writing the buffered points.", self.down_s())
                self._failing_since = None
            self.stats.points += points
            self.stats.requests += 1
            return None

    async def _post(self, body: bytes) -> None:
        assert self._session is not None
        try:
            async with self._session.post(self.url, params=self.params, data=body, headers=self._headers) as resp:
                if resp.status == 204 or resp.status == 200:
                    return
                detail = (await resp.text())[:300]
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SinkError(
                f"InfluxDB at {self.url} is unreachable: {type(exc).__name__} {exc}.", retriable=True
            ) from None
        raise SinkError(f"InfluxDB answered {resp.status}: {detail}", retriable=write_retriable(resp.status, detail))
