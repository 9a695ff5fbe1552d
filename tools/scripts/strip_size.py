"""What one window costs InfluxDB before and after packed strips (the figures behind docs/capacity.md).

    .venv/bin/python -m tools.scripts.strip_size [--records 200] [--json docs/strip_size.json]

Takes 10 s windows of real single-lead ECG (cinc2017, resampled to 250 Hz and sent as int16 at the
wire's default gain, as a wearable would), and the committed reconstructor's output for some of them,
and formats them the old way (one ``ecg_lead_i`` point per sample at ``ECGMON_DISPLAY_HZ``, 11 x 500
``reconstruction`` points) and the new way (one packed ``ecg_strip`` point per lead, ``ecgmon.points``):
points, line-protocol bytes, gzip level-1 bytes on the wire (the sink's compression, 100 windows per
request) and the CPU time to format, per window.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgmon.contracts import Window, decode_window, encode_window
from ecgmon.dsp import resample
from ecgmon.points import LIVE_LEAD_I, LIVE_RECONSTRUCTION, MEASURED_LEAD, prediction_line, strip_lines, waveform_lines
from ecgmon.settings import Settings
from simulators.replay import whole_windows

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cinc2017"
FS = 250.0


def _windows(folder: Path, records: int) -> list[Window]:
    out: list[Window] = []
    for x in whole_windows(folder, fs_hz=FS, window_s=10.0, records=records):
        w = Window(patient_id="sim-00001", device_id="d", seq=len(out), t_start_ns=1_700_000_000_000_000_000
                   + len(out) * 10**10, fs_hz=FS, samples=x)  # fmt: skip
        out.append(decode_window(encode_window(w)))
    return out


def _prediction(w: Window) -> str:
    return prediction_line(
        patient_id=w.patient_id, t_end_ns=w.t_end_ns, label="N", confidence=0.93, uncertainty=0.041,
        probs={"N": 0.93, "A": 0.02, "O": 0.04, "~": 0.01}, hr_bpm=71.3, sqi=0.91, seq=w.seq, model="student:1",
        extra={"rr_irregularity": 0.08, "max_rr_s": 0.91, "lead_off": False, "truth": "N"},
    )  # fmt: skip


def _measure(per_window: list[list[str]], seconds: float) -> dict[str, float]:
    n = len(per_window)
    text = [line for lines in per_window for line in lines]
    raw = sum(len(line) + 1 for line in text)
    wire = sum(
        len(gzip.compress("\n".join(line for lines in per_window[k : k + 100] for line in lines).encode(), 1))
        for k in range(0, n, 100)
    )
    return {
        "points": len(text) / n,
        "bytes": raw / n,
        "gzip_bytes": wire / n,
        "format_ms": 1000 * seconds / n,
    }


def _timed(fn: Callable[[Any], list[str]], items: Sequence[Any]) -> tuple[list[list[str]], float]:
    t = time.process_time()
    out = [fn(x) for x in items]
    return out, time.process_time() - t


def main() -> None:
    """Print the figures and write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--reconstructed", type=int, default=64, help="Windows run through the reconstructor.")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    s = Settings()
    windows = _windows(args.data, args.records)
    display = int(10 * s.display_hz)

    def before_i(w: Window) -> list[str]:
        live = resample(w.samples, w.fs_hz, s.display_hz)
        return [_prediction(w), *waveform_lines(LIVE_LEAD_I, {"patient_id": w.patient_id}, {"value": live},
                                                fs_hz=s.display_hz, t_start_ns=w.t_start_ns)]  # fmt: skip

    def after_i(w: Window) -> list[str]:
        return [_prediction(w), *strip_lines(patient_id=w.patient_id, lead=MEASURED_LEAD, t_start_ns=w.t_start_ns,
                                             fs_hz=w.fs_hz, samples=w.samples)]  # fmt: skip

    old, t_old = _timed(before_i, windows)
    new, t_new = _timed(after_i, windows)
    strip_chars = [len(lines[1].split('data="', 1)[1].split('"', 1)[0]) for lines in new]
    figures = {
        "windows": len(windows),
        "display_hz": s.display_hz,
        "lead_i_before": _measure(old, t_old),
        "lead_i_after": _measure(new, t_new),
        "strip_data_chars_mean": float(np.mean(strip_chars)),
        "strip_data_chars_p99": float(np.percentile(strip_chars, 99)),
        "strip_line_bytes_mean": float(np.mean([len(lines[1]) for lines in new])),
    }

    from models import registry
    from models.interfaces import OUTPUT_LEADS, PatientMeta

    rec = registry.load(s.reconstructor, device="cpu", weights=True, mc_mode="head")
    batch = windows[: args.reconstructed]
    lead_i = np.stack([resample(w.samples, w.fs_hz, rec.fs_hz)[: rec.window_samples] for w in batch]).astype(np.float32)
    mean, std = rec.reconstruct(lead_i, PatientMeta.unknown(len(batch)), samples=8, seeds=list(range(len(batch))))
    mean, std = np.asarray(mean, np.float64), np.maximum(np.asarray(std, np.float64), 0.0)

    def before_r(k: int) -> list[str]:
        m, d = resample(mean[k], rec.fs_hz, s.display_hz), np.maximum(resample(std[k], rec.fs_hz, s.display_hz), 0)
        return [line for j, lead in enumerate(OUTPUT_LEADS) for line in waveform_lines(
            LIVE_RECONSTRUCTION, {"patient_id": "sim-00001", "lead": lead}, {"value": m[j], "uncertainty": d[j]},
            fs_hz=s.display_hz, t_start_ns=batch[k].t_start_ns)]  # fmt: skip

    def after_r(k: int) -> list[str]:
        return [line for j, lead in enumerate(OUTPUT_LEADS) for line in strip_lines(
            patient_id="sim-00001", lead=lead, t_start_ns=batch[k].t_start_ns, fs_hz=rec.fs_hz, samples=mean[k, j],
            sd=std[k, j], model="dual_branch:1")]  # fmt: skip

    old_r, t_old_r = _timed(before_r, list(range(len(batch))))
    new_r, t_new_r = _timed(after_r, list(range(len(batch))))
    figures.update(
        reconstruction_before=_measure(old_r, t_old_r),
        reconstruction_after=_measure(new_r, t_new_r),
        reconstructor_fs_hz=rec.fs_hz,
        reconstructed_windows=len(batch),
        display_points_per_window=display,
    )
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
