"""Inference cost of each reconstructor and MC variant: ms per window, batch 32, one torch thread.

``python -m models.reconstructor.bench --json out/recon_bench.json``; prints and writes the figures
(median of 5 timed calls after a warm-up, on real ptbxl_z windows). Times depend on the machine and
its load; the card quotes the JSON it was given.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch

from models.reconstructor.data import load_eval_folder
from models.reconstructor.evaluate import cost_ms_per_window

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptbxl_z"


def bench(path: Path = DATA, split: str = "val", samples: int = 8, threads: int = 1) -> dict[str, Any]:
    """ms per window for every model x (deterministic, full MC, head MC) at ``samples`` passes."""
    from models import registry

    torch.set_num_threads(threads)
    out: dict[str, Any] = {
        "threads": threads,
        "batch": 32,
        "mc_samples": samples,
        "cpu": platform.processor(),
    }
    for name in ("dual_branch", "unet", "linear"):
        model = registry.load(name)
        data = load_eval_folder(path, split, model.fs_hz, model.window_samples)
        row = {"deterministic": cost_ms_per_window(model, data, 1, repeats=5)}
        for mode in ("full", "head") if hasattr(model, "mc_mode") else ("full",):
            if hasattr(model, "mc_mode"):
                model.mc_mode = mode
            row[f"mc_{mode}"] = cost_ms_per_window(model, data, samples, repeats=5)
        out[name] = row
    return out


def main() -> None:
    """Print and write the benchmark JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", type=Path, default=Path("out/recon_bench.json"))
    p.add_argument("--samples", type=int, default=8)
    a = p.parse_args()
    res = bench(samples=a.samples)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
