"""What the features the student reconstructs know: a linear probe of PTB-XL's diagnostic statements.

    .venv/bin/python -m tools.scripts.classifier_token_probe --net teacher=PATH [--net NAME=PATH ...] [--json OUT]

Each network's tokens are mean- and max-pooled on the PTB-XL training records (12 leads for a teacher,
lead I for a student or baseline, whose tokens are the backbone's), one logistic regression per SCP code
(on >= 40 training records) is fitted on them, and the macro AUROC on the validation records is reported.
A teacher whose tokens probe well above a lead-I network's has 12-lead knowledge worth reconstructing;
one that probes like lead I has nothing to teach beyond it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from models.classifier.data import code_targets, code_vocabulary, twelve_lead_set
from models.classifier.nets import NetConfig, build_net
from models.classifier.train import code_auroc

DATA = Path("../shared/data")


@torch.inference_mode()
def pooled_tokens(path: Path, x12: np.ndarray) -> np.ndarray:
    """Mean- and max-pooled backbone tokens of the network in ``path`` -> ``[n, 2 d]``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = NetConfig.from_dict(ckpt["net_config"])
    net = build_net("teacher" if cfg.in_leads == 12 else "baseline", cfg)
    net.load_state_dict(ckpt["state_dict"], strict=False)  # only the backbone is read
    net.eval()
    x = x12 if cfg.in_leads == 12 else x12[:, :1]
    out = []
    for i in range(0, len(x), 256):
        t = net.backbone(torch.from_numpy(x[i : i + 256]))  # type: ignore[operator]
        out.append(torch.cat([t.mean(dim=1), t.amax(dim=1)], dim=1))
    return torch.cat(out).numpy()


def probe(train: np.ndarray, y_train: np.ndarray, val: np.ndarray, y_val: np.ndarray) -> float | None:
    """Macro validation AUROC of one L2 logistic regression per code column."""
    scaler = StandardScaler().fit(train)
    a, b = scaler.transform(train), scaler.transform(val)
    logits = np.zeros_like(y_val)
    for j in range(y_train.shape[1]):
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(a, y_train[:, j])
        logits[:, j] = clf.decision_function(b)
    return code_auroc(y_val, logits)


def main() -> None:
    """Probe every ``--net`` and print (and optionally write) the macro AUROC of each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", action="append", required=True, help="NAME=PATH of a classifier .pt file.")
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/classifier"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tr = twelve_lead_set(DATA / "ptbxl_z", DATA / "ptbxl100", "train", 100.0, 1000, a.cache_dir)
    va = twelve_lead_set(DATA / "ptbxl_z", DATA / "ptbxl100", "val", 100.0, 1000, a.cache_dir)
    vocab = code_vocabulary(tr.codes, 40)
    y_tr, y_va = code_targets(tr.codes, vocab), code_targets(va.codes, vocab)
    out: dict[str, object] = {"codes": vocab, "train_records": len(tr.y), "val_records": len(va.y)}
    for spec in a.net:
        name, _, path = spec.partition("=")
        auc = probe(pooled_tokens(Path(path), tr.x), y_tr, pooled_tokens(Path(path), va.x), y_va)
        out[name] = auc
        print(f"{name}: SCP-code linear-probe macro AUROC {auc:.3f} ({len(vocab)} codes, {len(va.y)} val records)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
