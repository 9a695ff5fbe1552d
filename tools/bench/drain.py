"""A fixed backlog through one worker, for profiling: where a window's CPU goes, without the load sweep.

``python -m tools.bench.drain --windows 4000 --patients 400 --torch-threads 1 [--profile out.txt]``
starts its own broker and influxd (as ``ecgmon bench`` does), one ``ecgmon worker``, warms it up,
then sends ``windows`` synthetic windows as fast as the producer goes and waits until every
prediction is back. It prints the worker's, the models', InfluxDB's and the broker's CPU ms per
window (``tools.bench.pipeline.run_load``) and the windows/s drained. With ``--profile`` it runs
``py-spy record`` on the worker for ``--profile-s`` seconds of the drain (``pip install py-spy``)
and writes the collapsed stacks there, plus a summary (``<file>.top``): the functions with the most
samples, self and inclusive.

Issue 24's before/after figures in BENCHMARKS.md come from this command.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from ecgmon import stack
from ecgmon.jsonout import print_and_write
from ecgmon.settings import get_settings


def summarise(collapsed: Path, top: int = 40) -> str:
    """Self and inclusive sample shares of the most sampled functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack_text.split(";")]  # a function, not its lines
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    rows = [f"{total} samples"]
    rows.append("self:")
    rows += [f"  {100 * n / total:5.1f} %  {f}" for f, n in own.most_common(top)]
    rows.append("inclusive:")
    rows += [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run one drain; prints its figures as JSON."""
    from tools.bench import _group_settings, _stack
    from tools.bench.model import synthetic_windows
    from tools.bench.pipeline import Workers, run_load

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=4000)
    ap.add_argument("--patients", type=int, default=400)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--profile", type=Path, default=None, help="py-spy collapsed stacks of the worker here")
    ap.add_argument("--profile-s", type=float, default=12.0)
    ap.add_argument("--profile-after-s", type=float, default=2.0, help="start py-spy this long into the drain")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    base = get_settings()
    s0 = base.model_copy(update={"torch_threads": args.torch_threads})
    log_dir = base.state_dir / "bench-logs"
    out: dict[str, object] = {}
    with _stack(s0, False) as st:
        tag = f"drain{uuid.uuid4().hex[:6]}"
        g = _group_settings(st, tag)
        stack.create_topics(g.bootstrap, g.topics(), g.partitions)
        workers = Workers(g, 1, torch_threads=args.torch_threads, log_dir=log_dir)
        try:
            workers.start(240.0)
            warm = synthetic_windows(g, 4 * g.partitions, patients=4 * g.partitions, prefix=f"{tag}w")
            run_load(g, warm, rate=50.0, duration_s=0, patients=len(warm), prefix=f"{tag}w", drain_s=120.0)
            windows = synthetic_windows(g, args.windows, patients=args.patients, prefix=f"{tag}d", seed=0)
            spy: list[subprocess.Popen[bytes]] = []
            if args.profile is not None:
                pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                argv_spy = [pyspy, "record", "-p", str(workers.procs[0].pid), "-d", str(int(args.profile_s))]
                argv_spy += ["-r", "100", "--nonblocking", "--format", "raw", "-o", str(args.profile)]

                def later() -> None:
                    time.sleep(args.profile_after_s)
                    spy.append(subprocess.Popen(argv_spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

                threading.Thread(target=later, daemon=True).start()
            t0 = time.monotonic()
            res = run_load(
                g,
                windows,
                rate=1e6,
                duration_s=0,
                patients=args.patients,
                prefix=f"{tag}d",
                drain_s=600.0,
                tick=lambda sent, got: workers.procs[0].check_alive(),  # a dead worker ends the drain at once
                cpu_parts=workers.cpu_parts(),
                worker_tags=workers.tags(),
            )
            wall = time.monotonic() - t0
            for p in spy:
                p.wait(timeout=args.profile_s + 30)
        finally:
            workers.stop()
    out = {
        "windows": res.sent,
        "delivered": res.delivered,
        "drain_windows_per_s": round(res.delivered / wall, 1) if wall > 0 else None,
        "reconstructed": res.reconstructed,
        "cpu_ms_per_window": res.cpu_ms_per_window,
        "influx_points_per_window": res.influx_points_per_window,
    }
    print_and_write(out, args.json, indent=1)
    if args.profile is not None and args.profile.exists():
        summary = summarise(args.profile)
        args.profile.with_suffix(args.profile.suffix + ".top").write_text(summary + "\n")
        print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
