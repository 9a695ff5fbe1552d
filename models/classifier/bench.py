"""Does TorchScript or ``torch.compile`` speed up the classifier's forward pass on this CPU?

``python -m models.classifier.bench --model student --batch 64`` times the network's forward pass
(preprocessing excluded, it is the same for all three) in eager mode, traced with TorchScript, and
compiled with ``torch.compile`` (inductor), and prints and writes the medians as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ecgmon.jsonout import print_and_write


def _interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each function, timed round-robin so a shared machine's load
    changes hit every mode alike."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000.0)
    return {f"{k}_ms": statistics.median(v) for k, v in times.items()}


def bench(model_name: str, batch: int, threads: int, repeats: int) -> dict[str, object]:
    """Median forward-pass milliseconds per batch for eager, TorchScript (trace) and torch.compile."""
    from models.registry import load

    torch.set_num_threads(threads)
    clf = load(model_name)
    net = clf.net.eval()
    leads = getattr(clf, "leads", 1)
    shape = (batch, leads, clf.window_samples)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    out: dict[str, object] = {
        "model": model_name,
        "version": clf.version,
        "batch": batch,
        "threads": threads,
        "repeats": repeats,
        "torch": torch.__version__,
    }
    fns: dict[str, Callable[[], object]] = {}
    with torch.inference_mode():
        ref = net(x)
        fns["eager"] = lambda: net(x)
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(net, x))
        out["torchscript_max_abs_diff"] = float((traced(x) - ref).abs().max())
        fns["torchscript"] = lambda: traced(x)
    try:
        compiled = torch.compile(net)
        with torch.inference_mode():
            t0 = time.perf_counter()
            compiled(x)
            out["compile_first_call_s"] = time.perf_counter() - t0
            out["compile_max_abs_diff"] = float((compiled(x) - ref).abs().max())
        fns["compile"] = lambda: compiled(x)
    except Exception as exc:  # report why compile is unavailable, do not fail
        out["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    with torch.inference_mode():
        out.update(_interleaved_ms(fns, repeats))
    return out


def main() -> None:
    """Command line: print the figures and write them to ``--json``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="student")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    result = bench(a.model, a.batch, a.threads, a.repeats)
    print_and_write(result, a.json, indent=2)


if __name__ == "__main__":
    main()
