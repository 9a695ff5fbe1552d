"""Rendering benchmarks without Kafka: ``python -m simulators.bench [--ltafdb DIR] [--json OUT]``.

Prints and writes windows per second for (1) synthetic patients (render + rhythm + truth, one
window at a time, as the gateway asks) and (2) ltafdb records rendered on their real beats in
chunks, as an evaluation would. The end-to-end figure (with Kafka) comes from
``ecgmon simulate --speed 0`` or the real-time run in ``simulators/README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def bench_synthetic(patients: int, windows: int, fs_hz: float, seed: int = 0) -> dict[str, float]:
    """Windows per second of ``patients`` synthetic patients, ``windows`` each, round-robin."""
    from simulators.synthetic import SyntheticPatient

    t0 = time.perf_counter()
    devices = [
        SyntheticPatient(f"b{i}", np.random.default_rng([seed, i]), fs_hz=fs_hz, window_s=10.0, hop_s=10.0)
        for i in range(patients)
    ]
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for seq in range(windows):
        for d in devices:
            d.window(seq)
    run_s = time.perf_counter() - t0
    n = patients * windows
    return {"patients": patients, "windows": n, "setup_s": round(setup_s, 3), "seconds": round(run_s, 3),
            "windows_per_s": round(n / run_s, 1), "us_per_window": round(1e6 * run_s / n, 1)}


def bench_ltafdb(path: Path, records: list[str], fs_hz: float, seed: int = 0) -> dict[str, float]:
    """Windows per second rendering whole ltafdb records (10 s windows, 60 per chunk)."""
    from simulators.ltafdb import iter_windows, load_timeline
    from simulators.render import Morphology

    load_s = render_s = 0.0
    n = 0
    hours = 0.0
    for record in records:
        t0 = time.perf_counter()
        tl = load_timeline(path, record)
        load_s += time.perf_counter() - t0
        rng = np.random.default_rng([seed, len(record)])
        t0 = time.perf_counter()
        for _ in iter_windows(tl, fs_hz=fs_hz, window_s=10.0, hop_s=10.0, morphology=Morphology.draw(rng), rng=rng):
            n += 1
        render_s += time.perf_counter() - t0
        hours += tl.duration_s / 3600.0
    return {"records": len(records), "hours": round(hours, 2), "windows": n, "load_s": round(load_s, 2),
            "render_s": round(render_s, 2), "windows_per_s": round(n / render_s, 1),
            "signal_hours_per_s": round(hours / render_s, 3)}


def main() -> None:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--fs", type=float, default=250.0)
    parser.add_argument("--ltafdb", type=Path, default=None, help="ltafdb folder; also time rendering its records")
    parser.add_argument("--records", default="00,01,03", help="ltafdb records to render")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out: dict[str, object] = {"synthetic": bench_synthetic(args.patients, args.windows, args.fs)}
    print(json.dumps(out["synthetic"]))
    if args.ltafdb is not None:
        out["ltafdb"] = bench_ltafdb(args.ltafdb, [r for r in args.records.split(",") if r], args.fs)
        print(json.dumps(out["ltafdb"]))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
