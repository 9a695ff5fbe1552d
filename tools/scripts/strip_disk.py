"""What full disclosure costs on disk: the worker's points for some patient-hours in a real influxd (docs/capacity.md).

    .venv/bin/python -m tools.scripts.strip_disk [--patients 4] [--hours 6] [--live] [--json docs/strip_disk.json]

Starts an embedded influxd of its own (``ecgmon.stack``, a temporary state dir, free port) told to
snapshot its cache to TSM and fully compact a shard one second after the last write, instead of 10 min
and 4 h. Makes ``--patients`` x ``--hours`` of consecutive 10 s windows of real single-lead ECG
(cinc2017 resampled to 250 Hz and sent as int16 at the wire's default gain, as a wearable would), and
turns them into InfluxDB points exactly as the worker does: ``streams.inference.Inference`` with the
settings' models (the ``prediction`` point and the packed ``ecg_strip`` lead I of every window, formatted
by ``ecgmon.points``), the same batch size, written in requests of ``influx_batch_points``. With ``--live``
the first patient has an open AF alert throughout, so its windows also get what the worker writes then
(``streams.reconstruction_policy``: the live ``ecg_lead_i`` points at ``display_hz`` and, by default,
the packed reconstruction). Then waits until the cache is on disk and each shard is one TSM generation,
and reports the bytes on disk by part (TSM, WAL, index, series file; allocated, as ``du`` counts them)
and the TSM bytes by what they hold, read from the TSM files' own index (blocks and index entries per
series key), so the prediction, the lead I strip and the alert's extras are measured apart in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ecgmon import points, stack
from ecgmon.contracts import Window, decode_window, encode_window
from ecgmon.influx import InfluxClient
from ecgmon.jsonout import print_and_write
from ecgmon.settings import Settings
from simulators.replay import whole_windows

if TYPE_CHECKING:
    from streams.inference import Request

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cinc2017"
FS_HZ = 250.0
T0_NS = 1_700_000_000 * 10**9
DAY_S = 86_400.0
INFLUX_DATA = {"cache-snapshot-write-cold-duration": "1s", "compact-full-write-cold-duration": "1s"}
"""The ``[data]`` options of the measuring influxd: snapshot and fully compact one second after the last write."""
ALERT_TYPES = ("af",)
"""The open alerts of the patient in alert with ``--live``: a rhythm alert, so the default policy reconstructs."""
_TSM_ENTRY = 28  # min time, max time, offset (int64 each), size (uint32)
_TSM_HEADER, _TSM_FOOTER = 5, 8  # magic + version; index offset


# --- the windows -------------------------------------------------------------------------------


def ecg_windows(folder: Path, n: int, *, fs_hz: float, window_s: float) -> list[np.ndarray]:
    """``n`` consecutive windows ``[window_s * fs_hz]`` (mV) of the records in ``folder``, in replay order.

    When the folder has fewer than ``n``, they are used again from the first.
    """
    out = list(itertools.islice(whole_windows(folder, fs_hz=fs_hz, window_s=window_s), n))
    if not out:
        raise SystemExit(f"No record of {window_s:g} s or more in {folder}; pass --data a folder of ECG records.")
    return [out[i % len(out)] for i in range(n)]


def patient_id(p: int) -> str:
    """The id of the ``p``-th measured patient."""
    return f"disk-{p:05d}"


# --- influxd -----------------------------------------------------------------------------------


@contextlib.contextmanager
def measuring_influxd(base: Settings) -> Iterator[tuple[Settings, Path]]:
    """An influxd of its own (``INFLUX_DATA``) in a temporary state dir: its settings and its data root."""
    state = Path(tempfile.mkdtemp(prefix="ecgmon-strip-disk-"))
    s = base.model_copy(
        update={"state_dir": state, "influx_port": stack.free_port(), "influx_url": "", "influx_version": 1}
    )
    try:
        stack.up(s, "influxdb", influx_data=INFLUX_DATA)
        yield s, state / "influxdb"
    finally:
        stack.down(s, "influxdb")
        shutil.rmtree(state, ignore_errors=True)


def _engine_stats(s: Settings) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(s.influx + "/debug/vars", timeout=10) as resp:
        stats: dict[str, Any] = json.loads(resp.read())
    return {k: v.get("values", {}) for k, v in stats.items() if k.startswith(("tsm1_engine:", "tsm1_cache:"))}


def _tsm_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted((root / "data").rglob("*.tsm*"))}


def _idle(s: Settings, root: Path) -> bool:
    """Nothing in the cache, no compaction running or queued, no temporary TSM file, one generation per shard."""
    for name, values in _engine_stats(s).items():
        if name.startswith("tsm1_cache:") and values.get("memBytes", 0):
            return False
        busy = [v for k, v in values.items() if k.endswith(("CompactionsActive", "CompactionQueue"))]
        if name.startswith("tsm1_engine:") and any(busy):
            return False
    files = _tsm_files(root)
    if any(not f.endswith(".tsm") for f in files):
        return False
    generations: dict[str, set[str]] = {}
    for f in files:
        shard, _, name = f.rpartition("/")
        generations.setdefault(shard, set()).add(name.split("-", 1)[0])
    return all(len(g) == 1 for g in generations.values())


def settle(s: Settings, root: Path, *, stable_s: float = 3.0, timeout_s: float = 300.0) -> tuple[float, bool]:
    """Wait until the shards are snapshotted and fully compacted (``_idle`` with the same TSM files for ``stable_s``).

    Returns the seconds it took and whether it got there before ``timeout_s`` (the figures are reported either way).
    """
    t0 = time.monotonic()
    since, seen = None, None
    while time.monotonic() - t0 < timeout_s:
        files = _tsm_files(root)
        if _idle(s, root) and files == seen:
            since = since or time.monotonic()
            if time.monotonic() - since >= stable_s:
                return time.monotonic() - t0, True
        else:
            since, seen = None, files
        time.sleep(0.5)
    return time.monotonic() - t0, False


# --- bytes on disk -----------------------------------------------------------------------------


def _part(rel: Path) -> str:
    parts = rel.parts
    if parts[0] == "wal":
        return "wal"
    if parts[0] != "data":
        return "meta_and_config"
    if "_series" in parts:
        return "series_file"
    if "index" in parts or parts[-1] == "fields.idx":
        return "index"
    return "tsm" if parts[-1].endswith(".tsm") else "other"


def disk_bytes(root: Path) -> dict[str, dict[str, int]]:
    """Bytes under an influxd's ``root`` by part: ``allocated`` (blocks, as ``du`` counts) and ``apparent``."""
    allocated: Counter[str] = Counter()
    apparent: Counter[str] = Counter()
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            part = _part(path.relative_to(root))
            allocated[part] += st.st_blocks * 512
            apparent[part] += st.st_size
    return {
        "allocated": {**dict(sorted(allocated.items())), "total": sum(allocated.values())},
        "apparent": {**dict(sorted(apparent.items())), "total": sum(apparent.values())},
    }


def tsm_key_bytes(path: Path) -> Iterator[tuple[str, int]]:
    """``(series key#!~#field, bytes)`` of every key of one TSM file: its blocks (with checksums) and index entry."""
    with path.open("rb") as f:
        f.seek(-_TSM_FOOTER, os.SEEK_END)
        end = f.tell()
        (start,) = struct.unpack(">Q", f.read(_TSM_FOOTER))
        f.seek(start)
        index = f.read(end - start)
    pos = 0
    while pos < len(index):
        (klen,) = struct.unpack_from(">H", index, pos)
        key = index[pos + 2 : pos + 2 + klen].decode()
        (count,) = struct.unpack_from(">H", index, pos + 3 + klen)
        entries = pos + 5 + klen
        blocks = sum(struct.unpack_from(">I", index, entries + i * _TSM_ENTRY + 24)[0] for i in range(count))
        pos = entries + count * _TSM_ENTRY
        yield key, blocks + 5 + klen + count * _TSM_ENTRY


def series_group(key: str) -> str:
    """What a TSM key holds: ``prediction``, ``strip_lead_i``, ``strip_reconstructed``, ``live_lead_i``, ..."""
    series = key.partition("#!~#")[0]
    measurement, *tags = series.split(",")
    if measurement == points.STRIP:
        lead = dict(t.split("=", 1) for t in tags).get("lead")
        return "strip_lead_i" if lead == points.MEASURED_LEAD else "strip_reconstructed"
    names = {points.LIVE_LEAD_I: "live_lead_i", points.LIVE_RECONSTRUCTION: "live_reconstruction"}
    return names.get(measurement, measurement)


def tsm_bytes_by_group(root: Path) -> tuple[dict[str, int], int]:
    """TSM bytes by ``series_group`` (file headers and footers left out), and the files' total size as a check."""
    groups: Counter[str] = Counter()
    total = 0
    for path in sorted((root / "data").rglob("*.tsm")):
        total += path.stat().st_size
        groups["tsm_headers"] += _TSM_HEADER + _TSM_FOOTER
        for key, n in tsm_key_bytes(path):
            groups[series_group(key)] += n
    return dict(sorted(groups.items())), total


# --- the run -----------------------------------------------------------------------------------


def _requests(
    s: Settings, samples: Sequence[np.ndarray], *, patients: int, windows_per_patient: int, live: bool
) -> Iterator[Request]:
    """The worker's requests, time-ordered (every patient's k-th window, then the (k+1)-th), as a gateway sends."""
    from streams.inference import Request
    from streams.reconstruction_policy import live_waveform, should_reconstruct

    for k in range(windows_per_patient):
        for p in range(patients):
            x = samples[p * windows_per_patient + k]
            t_ns = T0_NS + round(k * s.window_s * 1e9)
            w = Window(
                patient_id=patient_id(p), device_id=f"dev-{p:05d}", seq=k, t_start_ns=t_ns, fs_hz=FS_HZ, samples=x
            )
            w = decode_window(encode_window(w))  # int16 at the wire's default gain, as a wearable sends
            open_types = ALERT_TYPES if live and p == 0 else ()
            reconstruct = should_reconstruct(
                s.reconstruction_policy, seq=k, every_k=s.reconstruction_every_k, open_alert_types=open_types
            )
            yield Request(w, reconstruct, 0.0, live=live_waveform(s.live_waveform, open_alert_types=open_types))


def _counts(client: InfluxClient) -> dict[str, int]:
    """Points InfluxDB holds per group, by ``COUNT`` queries."""
    strip = f'SELECT COUNT("n") FROM "{points.STRIP}" WHERE "lead"'
    return {
        "prediction": client.count(f'SELECT COUNT("confidence") FROM "{points.PREDICTION}"'),
        "strip_lead_i": client.count(f"{strip} = '{points.MEASURED_LEAD}'"),
        "strip_reconstructed": client.count(f"{strip} != '{points.MEASURED_LEAD}'"),
        "live_lead_i": client.count(f'SELECT COUNT("value") FROM "{points.LIVE_LEAD_I}"'),
    }


def _influxd_version() -> str:
    out = subprocess.run([str(stack.influxd_binary()), "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def measure(
    s: Settings,
    *,
    patients: int,
    hours: float,
    live: bool,
    data: Path,
    console: Console | None = None,
) -> dict[str, Any]:
    """Write ``patients`` x ``hours`` of the worker's points to a fresh influxd, settle it, and measure the disk."""
    from streams.inference import Inference

    console = console or Console(stderr=True, quiet=True)
    per_patient = round(hours * 3600.0 / s.window_s)
    if patients < 1 or per_patient < 1:
        raise SystemExit("--patients and --hours must give at least one window.")
    t = time.perf_counter()
    samples = ecg_windows(data, patients * per_patient, fs_hz=FS_HZ, window_s=s.window_s)
    seconds = {"read_ecg": time.perf_counter() - t}
    engine = Inference.load(s)
    windows = patients * per_patient
    written: Counter[str] = Counter()
    line_bytes: Counter[str] = Counter()
    t_infer = t_write = 0.0
    with measuring_influxd(s) as (si, root):
        client = InfluxClient(si)
        pending: list[str] = []
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        with progress:
            task = progress.add_task("windows", total=windows)
            batch: list[Request] = []
            requests = _requests(s, samples, patients=patients, windows_per_patient=per_patient, live=live)
            for i, request in enumerate(requests, 1):
                batch.append(request)
                if len(batch) < s.max_batch and i < windows:
                    continue
                t = time.perf_counter()
                results = engine(batch)
                t_infer += time.perf_counter() - t
                written["reconstructed_windows"] += sum(r.reconstruct for r in batch)
                for result in results:
                    for item in result.lines:
                        lines = [item] if isinstance(item, str) else item.lines()
                        if lines:
                            pending += lines
                            line_bytes[series_group(lines[0].split(" ", 1)[0])] += sum(len(x) + 1 for x in lines)
                t = time.perf_counter()
                while len(pending) >= s.influx_batch_points or (pending and i == windows):
                    client.write_lines(pending[: s.influx_batch_points])
                    written["points"] += len(pending[: s.influx_batch_points])
                    del pending[: s.influx_batch_points]
                t_write += time.perf_counter() - t
                progress.update(task, completed=i)
                batch = []
        seconds.update(inference=t_infer, write=t_write)
        console.log("Waiting for the snapshot and the full compaction ...")
        seconds["settle"], settled = settle(si, root)
        counts = _counts(client)
        disk = disk_bytes(root)
        groups, tsm_total = tsm_bytes_by_group(root)
        tsm_files = len(list((root / "data").rglob("*.tsm")))
    return _figures(
        s,
        patients=patients,
        per_patient=per_patient,
        live=live,
        written=written,
        line_bytes=line_bytes,
        counts=counts,
        disk=disk,
        groups=groups,
        tsm_total=tsm_total,
        tsm_files=tsm_files,
        settled=settled,
        seconds=seconds,
        model=engine.model_tag,
        reconstructor=engine.recon_tag,
    )


def _figures(
    s: Settings,
    *,
    patients: int,
    per_patient: int,
    live: bool,
    written: Counter[str],
    line_bytes: Counter[str],
    counts: dict[str, int],
    disk: dict[str, dict[str, int]],
    groups: dict[str, int],
    tsm_total: int,
    tsm_files: int,
    settled: bool,
    seconds: dict[str, float],
    model: str,
    reconstructor: str,
) -> dict[str, Any]:
    windows = patients * per_patient
    per_day = DAY_S / s.window_s
    alert, recon = (per_patient if live else 0), written["reconstructed_windows"]
    alloc = disk["allocated"]
    extras = groups.get("live_lead_i", 0) + groups.get("strip_reconstructed", 0)
    every = (groups.get("prediction", 0) + groups.get("strip_lead_i", 0)) / windows
    in_alert = every + extras / alert if alert else None
    per_window = {
        "prediction": groups.get("prediction", 0) / windows,
        "strip_lead_i": groups.get("strip_lead_i", 0) / windows,
        "every_window": every,
        "shard_every_window": (alloc.get("tsm", 0) + alloc.get("index", 0) + alloc.get("wal", 0) - extras) / windows,
        "live_lead_i_per_alert_window": groups.get("live_lead_i", 0) / alert if alert else None,
        "strip_reconstructed_per_reconstructed_window": groups.get("strip_reconstructed", 0) / recon if recon else None,
        "in_alert": in_alert,
    }
    return {
        "influxd": _influxd_version(),
        "influx_data_options": INFLUX_DATA,
        "patients": patients,
        "hours_per_patient": per_patient * s.window_s / 3600.0,
        "patient_hours": windows * s.window_s / 3600.0,
        "windows": windows,
        "window_s": s.window_s,
        "fs_hz": FS_HZ,
        "display_hz": s.display_hz,
        "live": live,
        "reconstruction_policy": s.reconstruction_policy,
        "live_waveform": s.live_waveform,
        "alert_windows": alert,
        "reconstructed_windows": recon,
        "classifier": model,
        "reconstructor": reconstructor,
        "points_written": written["points"],
        "line_protocol_bytes": dict(sorted(line_bytes.items())),
        "influx_counts": counts,
        "settled": settled,
        "tsm_files": tsm_files,
        "disk_bytes": disk,
        "tsm_bytes_by_group": groups,
        "tsm_bytes_parsed": sum(groups.values()),
        "tsm_bytes_files": tsm_total,
        "bytes_per_window": {k: None if v is None else round(v, 1) for k, v in per_window.items()},
        "line_protocol_bytes_per_window": {
            "prediction": round(line_bytes["prediction"] / windows, 1),
            "strip_lead_i": round(line_bytes["strip_lead_i"] / windows, 1),
            "live_lead_i_per_alert_window": round(line_bytes["live_lead_i"] / alert, 1) if alert else None,
            "strip_reconstructed_per_reconstructed_window": round(line_bytes["strip_reconstructed"] / recon, 1)
            if recon
            else None,
        },
        "mb_per_patient_day": {
            "every_window": round(every * per_day / 1e6, 2),
            "in_alert": None if in_alert is None else round(in_alert * per_day / 1e6, 2),
        },
        "extrapolation": (
            f"per patient-day = TSM bytes per window x {per_day:g} windows, linear from the measured "
            f"{windows * s.window_s / 3600.0:g} patient-hours; the series file and index are per database, not per day"
        ),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures and write them as JSON."""
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--hours", type=float, default=6.0, help="Hours of windows per patient.")
    parser.add_argument("--live", action="store_true", help="The first patient has an open AF alert throughout.")
    parser.add_argument("--data", type=Path, default=DATA, help="A folder laid out like cinc2017.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    figures = measure(
        Settings(), patients=args.patients, hours=args.hours, live=args.live, data=args.data, console=console
    )
    print_and_write(figures, args.json)


if __name__ == "__main__":
    main()
