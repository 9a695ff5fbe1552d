"""How well the 12-lead teacher does on 12-lead sets it never saw (external check for the card).

``python -m models.classifier.teacher_check --json OUT`` scores the committed teacher on the PTB-XL
validation splits and on the ludb, cinc2021_sample and cpsc2018_sample folders (first 10 s of each
record, resampled to the teacher's rate), with the labels of ``models.datasets.labels``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecgmon.jsonout import print_and_write
from models.classifier.metrics import score
from models.datasets.labels import class_index, to_class

DATA = Path("../shared/data")


def teacher_scores(data: Path, weights: Path | None = None) -> dict[str, dict[str, object]]:
    """Per-record metrics of the teacher (committed, or ``weights``) on every 12-lead folder under ``data``."""
    from ecgmon.dsp import resample
    from models.classifier.builders import from_file
    from models.datasets.ptbxl import TwelveLead, load_ptbxl100, load_ptbxl_z
    from models.datasets.wfdb12 import load_cinc2021, load_cpsc2018, load_ludb
    from models.registry import load

    teacher = load("teacher") if weights is None else from_file("teacher", weights)
    fs, n = teacher.fs_hz, teacher.window_samples
    sets: dict[str, tuple[str, TwelveLead]] = {}
    if (data / "ptbxl_z").is_dir():
        sets["ptbxl_z_val"] = ("ptbxl_z", load_ptbxl_z(data / "ptbxl_z", "val"))
    if (data / "ptbxl100").is_dir():
        sets["ptbxl100_val"] = ("ptbxl100", load_ptbxl100(data / "ptbxl100", "val"))
    for name, loader, tag in (
        ("ludb", load_ludb, "ludb"),
        ("cinc2021_sample", load_cinc2021, "cinc2021"),
        ("cpsc2018_sample", load_cpsc2018, "cpsc2018"),
    ):
        if (data / name).is_dir():
            sets[name] = (tag, loader(data / name, fs_hz=fs, window_s=n / fs))
    out = {}
    for name, (tag, tl) in sets.items():
        x = resample(tl.signals, tl.fs_hz, fs, dtype=np.float32)
        x = np.pad(x, ((0, 0), (0, 0), (0, max(0, n - x.shape[-1]))))[..., :n]
        y = np.array([class_index(to_class(tag, r)) for r in tl.rhythm])
        out[name] = score(y, teacher.predict(x).probs)
    return out


def main() -> None:
    """Print and write the teacher's external scores."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--weights", type=Path, default=None, help="Another teacher's .pt (default: the committed one).")
    a = p.parse_args()
    print_and_write(teacher_scores(a.data, a.weights), a.json, indent=2)


if __name__ == "__main__":
    main()
