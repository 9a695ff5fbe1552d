"""The gateway: devices' windows onto Kafka, paced like real wearables, with bounded memory.

Every device is a small object with ``patient_id``, ``device_id``, ``fs_hz``, ``lead``, ``age``,
``sex`` and ``window(seq) -> WindowData | None``. The gateway keeps one heap of due times:

- device ``d`` sends window ``seq`` at wall time ``(phase_d + seq * hop_s) / speed`` after the
  start (``speed=0``: as fast as the producer goes), plus up to ``send_jitter_ms`` of delay;
  phases spread devices evenly over a hop so 10,000 devices make a steady stream;
- ``t_start_ns`` = start time + the device's constant clock error (``clock_jitter_ms`` SD) +
  ``seq * hop_samples / fs_hz``: consecutive windows of a device step by exactly one hop;
- optional faults, off by default: a window arrives ``late_s`` (simulated) late with
  ``late_prob``, twice with ``dup_prob``, or after its successor with ``reorder_prob``.

Sends go through one ``AIOKafkaProducer`` keyed by patient id; at most ``max_in_flight``
unacknowledged sends exist at a time (the loop waits for acknowledgements beyond that), so
memory stays bounded at any speed. ``stop`` (set on Ctrl-C) ends the run cleanly: pending sends
are flushed and the summary is returned.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ecgmon.contracts import Window, encode_window, wire_encoding
from ecgmon.errors import ConfigError, StackError
from ecgmon.settings import Settings
from simulators.synthetic import WindowData

_LAG_EDGES_S = np.concatenate(([0.0], np.geomspace(0.001, 1000.0, 61)))  # lag histogram bins, wall s


class Device(Protocol):
    """What the gateway needs from a simulated or replayed wearable."""

    patient_id: str
    device_id: str
    fs_hz: float
    lead: str
    age: float | None
    sex: int | None

    def window(self, seq: int) -> WindowData | None: ...


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    """Pacing and delivery faults; times in the units their names say.

    No defaults here: each comes from ``Settings`` or the command line (``simulators.run.gateway_options``).
    """

    window_s: float
    hop_s: float
    speed: float
    start_ns: int | None
    send_jitter_ms: float
    clock_jitter_ms: float
    late_prob: float
    late_s: float
    dup_prob: float
    reorder_prob: float
    max_in_flight: int

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise ConfigError(f"--speed {self.speed:g} must be 0 (as fast as possible) or positive.")
        for name in ("late_prob", "dup_prob", "reorder_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} {value:g} must be a probability between 0 and 1.")


@dataclass
class PatientStats:
    """What one patient's device sent."""

    windows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    truth: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    reordered: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "windows": self.windows,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "truth": dict(self.truth),
            "duplicates": self.duplicates,
            "late": self.late,
            "reordered": self.reordered,
        }


@dataclass
class RunStats:
    """Running totals; ``summary()`` gives the JSON the CLI writes."""

    patients: int
    speed: float
    asked_rate: float
    per_patient: dict[str, PatientStats] = field(default_factory=dict)
    windows: int = 0
    messages: int = 0
    bytes: int = 0
    acked: int = 0
    errors: int = 0
    first_error: str = ""
    started: float = field(default_factory=time.monotonic)
    last_window_at: float = 0.0
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    lag_counts: np.ndarray = field(default_factory=lambda: np.zeros(_LAG_EDGES_S.size + 1, dtype=np.int64))
    max_lag_s: float = 0.0

    def add_lag(self, lag_s: float) -> None:
        """Record how late (wall s) a window left against its schedule; bounded memory (a histogram)."""
        self.lag_counts[int(np.searchsorted(_LAG_EDGES_S, lag_s))] += 1
        self.max_lag_s = max(self.max_lag_s, lag_s)

    def lag_quantile_s(self, q: float) -> float | None:
        """Upper bin edge below which a fraction ``q`` of the lags fall (None before any window)."""
        total = int(self.lag_counts.sum())
        if total == 0:
            return None
        i = int(np.searchsorted(np.cumsum(self.lag_counts), q * total))
        return float(_LAG_EDGES_S[min(i, _LAG_EDGES_S.size - 1)])

    def elapsed_s(self) -> float:
        """Wall seconds from the start to the last window generated."""
        end = self.last_window_at or time.monotonic()
        return max(end - self.started, 1e-9)

    def rate(self) -> float:
        """Windows generated per wall second."""
        return self.windows / self.elapsed_s()

    def summary(self) -> dict[str, Any]:
        """``{"patients", "windows", "per_patient", "rate_windows_per_s", ...}``."""
        return {
            "patients": self.patients,
            "windows": self.windows,
            "rate_windows_per_s": round(self.rate(), 3),
            "asked_rate_windows_per_s": round(self.asked_rate, 3) if self.speed > 0 else None,
            "speed": self.speed,
            "elapsed_s": round(self.elapsed_s(), 3),
            "lag_p50_s": _round(self.lag_quantile_s(0.5)) if self.speed > 0 else None,
            "lag_p99_s": _round(self.lag_quantile_s(0.99)) if self.speed > 0 else None,
            "lag_max_s": round(self.max_lag_s, 4) if self.speed > 0 else None,
            "messages": self.messages,
            "acked": self.acked,
            "bytes": self.bytes,
            "errors": self.errors,
            "first_error": self.first_error,
            "interrupted": self.interrupted,
            **self.extra,
            "per_patient": {pid: s.as_dict() for pid, s in self.per_patient.items()},
        }


class Sender(Protocol):
    """Where encoded windows go: ``send(key, value)`` returns a future acknowledging delivery."""

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]: ...


class KafkaSender:
    """An ``AIOKafkaProducer`` on ``settings.topic_windows`` with the settings' security and batching."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.settings = settings
        self.topic = topic or settings.topic_windows
        self._producer: Any = None

    async def start(self) -> None:
        """Connect; raises ``StackError`` with what to do when the broker cannot be reached."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        s = self.settings
        kwargs: dict[str, Any] = {
            **s.aiokafka_options(),
            "acks": "all",
            "linger_ms": s.sim_linger_ms,
            "max_batch_size": s.sim_batch_bytes,
            "max_request_size": max(s.max_message_bytes, s.sim_batch_bytes),
            "enable_idempotence": s.sim_idempotence,
            "client_id": "ecgmon-simulate",
        }
        self._producer = AIOKafkaProducer(**kwargs)
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise StackError(
                f"cannot reach Kafka at {s.bootstrap} ({type(exc).__name__}); start it with `ecgmon up` "
                "or set ECGMON_KAFKA_BOOTSTRAP."
            ) from None

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]:
        """Queue one message; waits when the producer's buffer is full."""
        fut: asyncio.Future[Any] = await self._producer.send(self.topic, value=value, key=key)
        return fut

    async def stop(self) -> None:
        """Flush and close."""
        if self._producer is not None:
            await self._producer.stop()



def _n_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    """Windows a device sends for ``duration_s`` of signal (at least one)."""
    return max(1, int(np.floor((duration_s - window_s) / hop_s + 1e-9)) + 1)


def windows_for_duration(duration_s: float | None, window_s: float, hop_s: float) -> int | None:
    """``--duration`` in simulated seconds per patient -> windows per device (None = unlimited)."""
    if duration_s is None:
        return None
    if duration_s <= 0:
        raise ConfigError(f"--duration {duration_s:g} must be a positive number of seconds.")
    return _n_windows(duration_s, window_s, hop_s)


async def run_gateway(
    devices: Sequence[Device],
    sender: Sender,
    options: GatewayOptions,
    rng: np.random.Generator,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[RunStats, int], None] | None = None,
    max_windows: int | None = None,
) -> RunStats:
    """Send every device's windows through ``sender`` until all are done or ``stop`` is set.

    ``max_windows`` caps each device (None: until the device says it is done).
    ``on_progress(stats, in_flight)`` is called about twice a second.
    """
    stop = stop or asyncio.Event()
    hop_s, speed = options.hop_s, options.speed
    stats = RunStats(patients=len(devices), speed=speed, asked_rate=len(devices) * speed / hop_s)
    start_ns = options.start_ns if options.start_ns is not None else time.time_ns() - int(options.window_s * 1e9)
    phases = rng.uniform(0.0, hop_s, len(devices)) if devices else np.zeros(0)
    clock_ns = (rng.normal(0.0, options.clock_jitter_ms, len(devices)) * 1e6).astype(np.int64)
    # heap entries: (due_s, tie, kind, device index, seq or payload)
    heap: list[tuple[float, int, int, int, Any]] = []
    tie = 0
    for i in range(len(devices)):
        heap.append((float(phases[i]), tie, 0, i, 0))
        tie += 1
    heapq.heapify(heap)
    held: dict[int, tuple[bytes, bytes]] = {}
    pending: set[asyncio.Future[Any]] = set()
    wall0 = time.monotonic()
    stats.started = wall0
    last_progress = wall0

    def acked(fut: asyncio.Future[Any]) -> None:
        pending.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            stats.acked += 1
        else:
            stats.errors += 1
            stats.first_error = stats.first_error or f"{type(exc).__name__}: {exc}"

    async def deliver(key: bytes, value: bytes) -> None:
        while len(pending) >= options.max_in_flight:
            await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
        fut = await sender.send(key, value)
        stats.messages += 1
        stats.bytes += len(value)
        pending.add(fut)
        fut.add_done_callback(acked)

    def wall_due(sim_s: float) -> float:
        return sim_s / speed if speed > 0 else 0.0

    while heap and not stop.is_set():
        due_s, _, kind, i, item = heap[0]
        if speed > 0:
            wait = wall0 + wall_due(due_s) - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=min(wait, 0.5))
                except TimeoutError:
                    pass
                continue
        heapq.heappop(heap)
        dev = devices[i]
        key = dev.patient_id.encode()
        if kind == 1:  # a late or reordered message whose time has come
            await deliver(key, item)
        else:
            seq = int(item)
            data = None if max_windows is not None and seq >= max_windows else dev.window(seq)
            if data is None:
                if i in held:
                    await deliver(*held.pop(i))
            else:
                if speed > 0:
                    stats.add_lag(time.monotonic() - wall0 - wall_due(due_s))
                await _emit(dev, i, data, stats, options, rng, start_ns + int(clock_ns[i]), held, deliver, heap, due_s)
                stats.last_window_at = time.monotonic()
                jitter_s = rng.uniform(0.0, options.send_jitter_ms / 1000.0) * speed if speed > 0 else 0.0
                next_due = float(phases[i]) + (seq + 1) * hop_s + jitter_s
                if max_windows is not None and seq + 1 >= max_windows:
                    next_due = due_s  # done: only its held-back window (if any) is left to send, now
                heapq.heappush(heap, (next_due, tie, 0, i, seq + 1))
                tie += 1
        now = time.monotonic()
        if on_progress is not None and now - last_progress >= 0.5:
            last_progress = now
            on_progress(stats, len(pending))
        if speed == 0 and stats.windows % 256 == 0:
            await asyncio.sleep(0)  # let acknowledgements and Ctrl-C in
    stats.interrupted = stop.is_set()
    for i, (key, value) in list(held.items()):
        await deliver(key, value)
        held.pop(i)
    if pending:
        await asyncio.wait(set(pending), timeout=60)
    if on_progress is not None:
        on_progress(stats, len(pending))
    return stats


async def _emit(
    dev: Device,
    i: int,
    data: WindowData,
    stats: RunStats,
    options: GatewayOptions,
    rng: np.random.Generator,
    device_start_ns: int,
    held: dict[int, tuple[bytes, bytes]],
    deliver: Callable[[bytes, bytes], Any],
    heap: list[tuple[float, int, int, int, Any]],
    due_s: float,
) -> None:
    """Build, encode and send (or hold back) one window; count it."""
    hop_n = round(options.hop_s * dev.fs_hz)
    window = Window(
        patient_id=dev.patient_id,
        device_id=dev.device_id,
        seq=data.seq,
        t_start_ns=device_start_ns + round(data.seq * hop_n * 1e9 / dev.fs_hz),
        fs_hz=dev.fs_hz,
        samples=data.samples,
        lead=dev.lead,
        age=dev.age,
        sex=dev.sex,
        truth=data.truth,
    )
    value = encode_window(window, encoding=wire_encoding(window.samples))
    key = dev.patient_id.encode()
    ps = stats.per_patient.get(dev.patient_id)
    if ps is None:
        ps = stats.per_patient[dev.patient_id] = PatientStats()
    ps.windows += 1
    ps.first_seq = data.seq if ps.first_seq is None else ps.first_seq
    ps.last_seq = data.seq
    if data.truth is not None:
        ps.truth[data.truth] += 1
    stats.windows += 1

    previous = held.pop(i, None)
    if options.late_prob and rng.random() < options.late_prob:
        ps.late += 1
        heapq.heappush(heap, (due_s + options.late_s, -stats.windows, 1, i, value))
    elif options.reorder_prob and previous is None and rng.random() < options.reorder_prob:
        ps.reordered += 1
        held[i] = (key, value)  # goes out right after the device's next window
    else:
        await deliver(key, value)
    if previous is not None:
        await deliver(*previous)
    if options.dup_prob and rng.random() < options.dup_prob:
        ps.duplicates += 1
        await deliver(key, value)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
