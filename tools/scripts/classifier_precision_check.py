"""The classifier in bf16 against fp32 on the cinc2017 hold-out (the figures behind ECGMON_CLASSIFIER_PRECISION).

    .venv/bin/python -m tools.scripts.classifier_precision_check [--json OUT]

Runs the committed student through the worker's own ``Inference.classify`` (1 torch thread, 8 head-MC
passes) at both precisions on every 10 s window (5 s hop) of the 1,159 hold-out records and reports
window label agreement, probability differences, and per-record F1 over N/A/O with the mean rule.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ecgmon.settings import Settings
from models.classifier.metrics import f1_nao
from models.classifier.preprocess import record_windows
from models.datasets.cinc2017 import load_cinc2017
from streams.inference import Inference

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("N", "A", "O", "~")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cinc2017")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    listing = (ROOT / "models" / "weights" / "classifier_cinc2017_val_records.txt").read_text().splitlines()
    names = [n.strip() for n in listing if n.strip() and not n.startswith("#")]
    engines = {
        p: Inference.load(Settings(classifier_precision=p, reconstruction_policy="never", device="cpu"))
        for p in ("fp32", "bf16")
    }
    data = load_cinc2017(args.data, engines["fp32"].classifier.fs_hz, names)
    clf = engines["fp32"].classifier
    wins = [record_windows(s, clf.window_samples, round(5.0 * clf.fs_hz)) for s in data.signals]
    x = np.concatenate(wins)
    cuts = np.cumsum([len(w) for w in wins])[:-1]
    probs = {p: np.asarray(e.classify(x).probs) for p, e in engines.items()}
    truth = np.array([CLASSES.index(label) for label in data.labels])
    per_record = {p: np.stack([w.mean(0) for w in np.split(v, cuts)]).argmax(1) for p, v in probs.items()}
    diff = np.abs(probs["fp32"] - probs["bf16"])
    out = {
        "records": len(names),
        "windows": len(x),
        "window_label_agreement": float((probs["fp32"].argmax(1) == probs["bf16"].argmax(1)).mean()),
        "mean_abs_prob_diff": float(diff.mean()),
        "max_abs_prob_diff": float(diff.max()),
        "record_label_agreement": float((per_record["fp32"] == per_record["bf16"]).mean()),
        "f1_nao_mean_rule": {p: [round(v, 4) for v in f1_nao(truth, r)] for p, r in per_record.items()},
        "f1_mean_nao_mean_rule": {p: round(float(np.mean(f1_nao(truth, r))), 4) for p, r in per_record.items()},
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
