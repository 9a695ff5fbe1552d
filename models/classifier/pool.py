"""The student's pre-training data from the PTB-XL pool: lead I windows and the teacher's tokens of all 12.

Why: the student's feature-reconstruction module learns to map lead I to the frozen teacher's 12-lead
tokens, and that needs no labels; the pool (``ecgmon data ptbxl-full``: every PTB-XL record but the held-out
and validation ids) has ~7x the records of the labelled training split. Both arrays are built once per
teacher weight file and pool, in chunks, and cached beside the other classifier arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecgmon.dsp import resample
from models.classifier.preprocess import preprocess_windows

CHUNK_RECORDS = 512


def _key(pool: Path, teacher_path: Path, fs_hz: float, samples: int) -> str:
    h = hashlib.sha1()
    h.update((pool / "index.csv").read_bytes())  # the ecg_ids and their order: what the arrays hold
    h.update(teacher_path.read_bytes())
    h.update(f"{fs_hz}|{samples}".encode())
    return h.hexdigest()[:12]


def pool_student_arrays(
    pool: Path,
    teacher_path: Path,
    fs_hz: float,
    samples: int,
    cache_dir: Path,
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """``(lead I [n, 1, samples] float32 preprocessed, raw teacher tokens [n, tokens, d] float16)`` of the pool.

    Raw tokens: normalise them with the same mean and std as the training split's tokens, so the
    pre-training and the joint training ask the module for the same targets.
    """
    import torch

    from models.classifier.nets import NetConfig, TeacherNet
    from models.datasets.ptbxl_full import load_pool

    pool, teacher_path = Path(pool), Path(teacher_path)
    cache = Path(cache_dir) / f"pool_student_{_key(pool, teacher_path, fs_hz, samples)}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return z["lead_i"], z["tokens"]
    data = load_pool(pool)
    ckpt = torch.load(teacher_path, map_location="cpu", weights_only=True)
    teacher = TeacherNet(NetConfig.from_dict(ckpt["net_config"]))
    teacher.load_state_dict(ckpt["state_dict"])
    teacher.eval()
    leads, toks = [], []
    for i in range(0, len(data), CHUNK_RECORDS):
        mv = np.asarray(data.x[i : i + CHUNK_RECORDS], dtype=np.float64) / 1000.0
        sig = resample(mv, data.fs_hz, fs_hz)
        if sig.shape[-1] < samples:
            sig = np.pad(sig, ((0, 0), (0, 0), (0, samples - sig.shape[-1])), mode="edge")
        x = preprocess_windows(sig[..., :samples], fs_hz)
        with torch.inference_mode():
            toks.append(teacher.features(torch.from_numpy(x)).numpy().astype(np.float16))
        leads.append(x[:, :1].copy())
        log(f"pool tokens: {min(i + CHUNK_RECORDS, len(data))}/{len(data)} records")
    lead_i, tokens = np.concatenate(leads), np.concatenate(toks)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, lead_i=lead_i, tokens=tokens)
    tmp.replace(cache)
    cache.with_suffix(".json").write_text(
        json.dumps({"pool": str(pool), "teacher": str(teacher_path), "records": len(data)}) + "\n"
    )
    return lead_i, tokens
