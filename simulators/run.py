"""Build the devices a run asks for and drive the gateway; what ``ecgmon simulate`` calls.

Patient ``i`` gets its own generator ``np.random.default_rng([seed, i])``, so a patient is the
same whatever ``--patients`` is; the gateway's jitter and faults use ``[seed, GATEWAY_STREAM]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ecgmon.errors import ConfigError, DataError
from ecgmon.settings import Settings
from simulators.gateway import Device, GatewayOptions, KafkaSender, RunStats, run_gateway, windows_for_duration

GATEWAY_STREAM = 2**31 - 1
_RECORD_RE = r"[A-Za-z0-9._-]+"


@dataclass(frozen=True)
class SimulateOptions:
    """Everything ``ecgmon simulate`` takes; ``None`` means the source's default."""

    source: Literal["synthetic", "replay", "ltafdb"] = "synthetic"
    path: Path | None = None
    records: tuple[str, ...] | None = None
    start_h: float = 0.0
    patients: int | None = None
    duration_s: float | None = None
    speed: float = 1.0
    seed: int = 0
    lead: str = "I"
    fs_hz: float | None = None
    late_prob: float = 0.0
    dup_prob: float = 0.0
    reorder_prob: float = 0.0
    start_ns: int | None = None
    cast: bool = False
    """Synthetic: the first patients follow ``simulators.synthetic.cast_schedule`` (AF, sinus tachycardia,
    bradycardia, pauses), the rest are random; the demo uses it so every expected alert appears."""


def parse_records(text: str | None) -> tuple[str, ...] | None:
    """``"00, 01,03"`` -> ``("00", "01", "03")``; None or blank -> None (all records).

    Raises ``ConfigError`` for a name with characters other than A-Z a-z 0-9 . _ -.
    """
    import re

    if text is None or not text.strip():
        return None
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if not re.fullmatch(_RECORD_RE, name):
            raise ConfigError(f"record name {name!r} is malformed; --records takes names like 00,01,03.")
    return names or None


def patient_rng(seed: int, index: int) -> np.random.Generator:
    """Patient ``index``'s own generator."""
    return np.random.default_rng([seed, index])


def build_devices(settings: Settings, opts: SimulateOptions) -> tuple[list[Device], dict[str, object]]:
    """The devices of a run and what the summary should say about the source."""
    if opts.patients is not None and opts.patients < 1:
        raise ConfigError(f"--patients {opts.patients} must be at least 1.")
    if opts.fs_hz is not None and not 50 <= opts.fs_hz <= 2000:
        raise ConfigError(f"--fs {opts.fs_hz:g} must be between 50 and 2000 Hz.")
    max_windows = windows_for_duration(opts.duration_s, settings.window_s, settings.hop_s)
    if opts.source == "replay":
        return _replay_devices(settings, opts, max_windows)
    if opts.source == "ltafdb":
        return _ltafdb_devices(settings, opts, max_windows)
    from simulators.synthetic import SyntheticPatient, cast_schedule

    n = opts.patients or 1
    fs_hz = opts.fs_hz or settings.sim_fs_hz
    devices: list[Device] = [
        SyntheticPatient(
            f"sim-{i:05d}",
            patient_rng(opts.seed, i),
            fs_hz=fs_hz,
            window_s=settings.window_s,
            hop_s=settings.hop_s,
            event_rate_per_h=settings.sim_event_rate_per_h,
            artefact_rate_per_h=settings.sim_artefact_rate_per_h,
            noise_mv=settings.sim_noise_mv,
            schedule=cast_schedule(i) if opts.cast else None,
        )
        for i in range(n)
    ]
    return devices, {"source": "synthetic", "morphology": "synthetic (ECGSYN-like beats on simulated rhythms)"}


def _replay_devices(
    settings: Settings, opts: SimulateOptions, max_windows: int | None
) -> tuple[list[Device], dict[str, object]]:
    from simulators.replay import ReplayDevice, discover, safe_id

    if opts.path is None:
        raise ConfigError("--replay needs a path: a WFDB record without extension or a dataset folder.")
    items = discover(opts.path, lead=opts.lead)
    n = opts.patients or len(items)
    devices: list[Device] = []
    for i in range(n):
        item = items[i % len(items)]
        name = f"{item.dataset}-{item.name}" if item.dataset else item.name
        pid = safe_id(name if i < len(items) else f"{name}-{i // len(items)}")
        devices.append(
            ReplayDevice(
                pid, item, window_s=settings.window_s, hop_s=settings.hop_s, fs_out_hz=opts.fs_hz,
                max_windows=max_windows, lead=opts.lead,
            )
        )
    return devices, {"source": "replay", "path": str(opts.path), "records": len(items), "lead": opts.lead}


def _ltafdb_devices(
    settings: Settings, opts: SimulateOptions, max_windows: int | None
) -> tuple[list[Device], dict[str, object]]:
    from simulators.ltafdb import MORPHOLOGY_NOTE, BeatTimeline, LtafdbDevice, list_records, load_timeline

    if opts.path is None:
        raise ConfigError("--source ltafdb needs --path, the folder holding NAME.atr, NAME.hea and labels.csv.")
    if opts.start_h < 0:
        raise ConfigError(f"--start-h {opts.start_h:g} must be zero or positive.")
    known = list_records(opts.path)
    names = list(opts.records) if opts.records else known
    missing = [r for r in names if r not in known]
    if missing:
        raise DataError(f"records {', '.join(missing)} are not in {opts.path}; it has {', '.join(known[:8])}, ...")
    n = opts.patients or len(names)
    fs_hz = opts.fs_hz or settings.sim_fs_hz
    timelines: dict[str, BeatTimeline] = {}
    devices: list[Device] = []
    for i in range(n):
        record = names[i % len(names)]
        if record not in timelines:
            timelines[record] = load_timeline(opts.path, record)
        tl = timelines[record]
        start_s = opts.start_h * 3600.0
        if start_s >= tl.duration_s - settings.window_s:
            raise ConfigError(
                f"--start-h {opts.start_h:g} is past the end of record {record} ({tl.duration_s / 3600:.1f} h)."
            )
        pid = f"ltafdb-{record}" if i < len(names) else f"ltafdb-{record}-{i // len(names)}"
        seed = [opts.seed, zlib.crc32(record.encode()), i // len(names)]
        devices.append(
            LtafdbDevice(
                pid, tl, np.random.default_rng(seed), fs_hz=fs_hz, window_s=settings.window_s, hop_s=settings.hop_s,
                start_s=start_s, max_windows=max_windows, noise_mv=settings.sim_noise_mv,
            )
        )
    return devices, {"source": "ltafdb", "path": str(opts.path), "records": names, "morphology": MORPHOLOGY_NOTE}


def gateway_options(settings: Settings, opts: SimulateOptions) -> GatewayOptions:
    """Pacing and fault options from the settings and the command line."""
    return GatewayOptions(
        window_s=settings.window_s,
        hop_s=settings.hop_s,
        speed=opts.speed,
        start_ns=opts.start_ns,
        send_jitter_ms=settings.sim_send_jitter_ms,
        clock_jitter_ms=settings.sim_clock_jitter_ms,
        late_prob=opts.late_prob,
        late_s=settings.sim_late_s,
        dup_prob=opts.dup_prob,
        reorder_prob=opts.reorder_prob,
        max_in_flight=settings.sim_max_in_flight,
    )


async def simulate(
    settings: Settings,
    opts: SimulateOptions,
    *,
    devices: Sequence[Device] | None = None,
    on_progress: Callable[[RunStats, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, object]:
    """Run the devices (built from ``opts`` unless given) into ``settings.topic_windows``; the summary.

    SIGINT (Ctrl-C) sets ``stop``: the gateway stops generating, flushes what is in flight and
    the summary says ``"interrupted": true``.
    """
    extra: dict[str, object] = {}
    t_setup = time.monotonic()
    if devices is None:
        devices, extra = build_devices(settings, opts)
    extra["setup_s"] = round(time.monotonic() - t_setup, 3)
    gw = gateway_options(settings, opts)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    sender = KafkaSender(settings)
    await sender.start()
    try:
        stats = await run_gateway(
            devices, sender, gw, np.random.default_rng([opts.seed, GATEWAY_STREAM]), stop=stop,
            on_progress=on_progress, max_windows=windows_for_duration(opts.duration_s, gw.window_s, gw.hop_s),
        )
    finally:
        await sender.stop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)
    stats.extra.update(extra)
    stats.extra["topic"] = settings.topic_windows
    return stats.summary()
