"""The models' cost in the worker and what the cheaper options do to the held-out figures (issue 24).

    taskset -c 0 .venv/bin/python -m tools.scripts.model_cost_check [--rounds 7] [--json OUT] [--no-accuracy]

Everything goes through the worker's own calls with per-window seeds (the replayable path), one torch
thread: ``Inference.classify`` for the classifier (8 head-MC passes, bf16 where the CPU has it) and
``reconstruct`` of the registry's reconstructor for each variant below.

- **Speed.** CPU ms per window, alternating the variants round by round (the machine is shared, so the
  figures are medians over rounds, every sample in the JSON): the classifier at the pipeline's batch
  (``max_batch``), and the reconstructor on ``k`` windows of a batch (the worker reconstructs about
  6.6 % of 64, so 4; and a full batch).
- **Accuracy.** Classifier: mean-rule F1 over N/A/O of the 1,159 cinc2017 hold-out records (every 10 s
  window, 5 s hop), as ``tools.scripts.classifier_precision_check``. Reconstructor: ptbxl_z ``val``
  (130 records), mean Pearson r, Spearman(std, RMSE) and the share of samples within 2 std, per variant.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgmon.jsonout import print_and_write
from ecgmon.settings import Settings
from models import registry
from models.classifier.metrics import f1_nao
from models.interfaces import PatientMeta

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
RECON_VARIANTS: dict[str, dict[str, Any]] = {
    "head T8, chunk 16 (before)": {"mc_mode": "head", "replay_chunk": 16},
    "head T8, chunk 4": {"mc_mode": "head", "replay_chunk": 4},
    "variance, chunk 4 (after)": {"mc_mode": "variance", "replay_chunk": 4},
    "variance, chunk 16": {"mc_mode": "variance", "replay_chunk": 16},
}


def _seeds(n: int, tag: str) -> list[int]:
    from streams.inference import window_seed

    return [window_seed(f"{tag}{i}", 0) for i in range(n)]


def _ms(fn: Callable[[], object], windows: int, reps: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times) / windows


def _holdout_windows(
    fs_hz: float, window_samples: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window (5 s hop) of the first ``limit`` hold-out records, where each one's windows end, their classes."""
    from models.classifier.data import read_record_list
    from models.classifier.evaluate import load_records
    from models.classifier.fit_aggregator import VAL_LIST
    from models.classifier.preprocess import record_windows

    rs = load_records("cinc2017", DATA / "cinc2017", fs_hz, read_record_list(VAL_LIST)[:limit])
    wins = [record_windows(s, window_samples, round(5.0 * fs_hz)) for s in rs.signals]
    return np.concatenate(wins), np.cumsum([len(w) for w in wins])[:-1], rs.y


def classifier_accuracy(settings: Settings) -> dict[str, Any]:
    """Hold-out mean-rule F1 N/A/O of the worker's classifier call at 8 and 1 head-MC passes."""
    from streams.inference import Inference

    engine = Inference.load(settings.model_copy(update={"reconstruction_policy": "never"}))
    clf = engine.classifier
    x, cuts, truth = _holdout_windows(clf.fs_hz, clf.window_samples)
    seeds = _seeds(len(x), "holdout")
    out: dict[str, Any] = {"records": len(truth), "windows": len(x), "bf16": engine.classifier_bf16}
    probs = {}
    for passes in (settings.mc_samples, 1):
        probs[passes] = np.asarray(engine.classify(x, mc_samples=passes, seeds=seeds).probs)
        per_record = np.stack([w.mean(0) for w in np.split(probs[passes], cuts)]).argmax(1)
        out[f"f1_mean_nao_mean_rule_T{passes}"] = round(float(np.mean(f1_nao(truth, per_record))), 4)
    out["window_label_agreement_T1_vs_T8"] = float((probs[1].argmax(1) == probs[settings.mc_samples].argmax(1)).mean())
    return out


def reconstructor_accuracy(settings: Settings) -> dict[str, Any]:
    """ptbxl_z val figures of each reconstructor variant through the seeded (worker) path."""
    from models.reconstructor.evaluate import load_dataset
    from models.reconstructor.metrics import pearson, rmse, uncertainty_error_spearman

    rec = registry.load(settings.reconstructor, device="cpu")
    data = load_dataset("ptbxl_z", DATA / "ptbxl_z", "val", rec.fs_hz, rec.window_samples)
    y = data.x[:, 1:]
    seeds = _seeds(len(data), "ptbxl_z")
    meta = PatientMeta(data.age, data.sex)
    out: dict[str, Any] = {"records": len(data)}
    for name, kw in RECON_VARIANTS.items():
        if kw["replay_chunk"] != 4:  # the chunk changes bits, not figures
            continue
        rec.mc_mode, rec.replay_chunk = kw["mc_mode"], kw["replay_chunk"]
        mean, std = rec.reconstruct(data.x[:, 0], meta, samples=settings.mc_samples, seeds=seeds)
        e = rmse(y, mean)
        out[name] = {
            "pearson_r_mean": round(float(pearson(y, mean).mean()), 4),
            "uncertainty_error_spearman": round(uncertainty_error_spearman(std, e), 4),
            "coverage_2std": round(float((np.abs(y - mean) <= 2.0 * std).mean()), 4),
            "mean_std": round(float(std.mean()), 4),
        }
    return out


def speed(settings: Settings, rounds: int) -> dict[str, Any]:
    """Alternating per-window timings (ms) of the classifier batch and of each reconstructor variant."""
    from streams.inference import Inference

    engine = Inference.load(settings.model_copy(update={"reconstruction_policy": "never"}))
    clf, n = engine.classifier, settings.max_batch
    x = _holdout_windows(clf.fs_hz, clf.window_samples, limit=n)[0][:n]
    seeds = _seeds(n, "speed")
    rec = registry.load(settings.reconstructor, device="cpu")
    tasks: dict[str, Callable[[], float]] = {
        f"classifier, batch {n}": lambda: _ms(lambda: engine.classify(x, seeds=seeds), n),
    }
    for k in (4, n):
        meta = PatientMeta(np.full(k, 60.0), np.zeros(k))
        for name, kw in RECON_VARIANTS.items():

            def run(k: int = k, meta: PatientMeta = meta, kw: dict[str, Any] = kw) -> float:
                rec.mc_mode, rec.replay_chunk = kw["mc_mode"], kw["replay_chunk"]
                return _ms(lambda: rec.reconstruct(x[:k], meta, samples=settings.mc_samples, seeds=seeds[:k]), k)

            tasks[f"reconstructor {k} windows, {name}"] = run
    tasks.update(_batch_function_tasks(settings))
    samples: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            samples[name].append(round(task(), 3))
    return {name: {"median_ms_per_window": round(statistics.median(v), 3), "samples": v} for name, v in samples.items()}


def _batch_function_tasks(settings: Settings) -> dict[str, Callable[[], float]]:
    """The worker's whole batch function (``Inference.__call__``) on ``max_batch`` synthetic windows, ``k`` of
    them reconstructed (the bench's 6.6 % share, rounded: 4 of 64), with the reconstructor before and after."""
    from streams.inference import Inference, Request
    from tools.bench.model import synthetic_windows

    n = settings.max_batch
    k = max(1, round(0.066 * n))
    windows = synthetic_windows(settings, n, patients=n, prefix="cost")
    requests = [Request(w, i < k, 0.0) for i, w in enumerate(windows)]
    engines = {
        "before (head T8, chunk 16)": Inference.load(
            settings.model_copy(update={"reconstructor_mc_mode": "head", "reconstructor_replay_chunk": 16})
        ),
        "after (variance, chunk 4)": Inference.load(settings),
    }

    def timer(engine: Inference) -> Callable[[], float]:
        return lambda: _ms(lambda: engine(requests), n)

    return {f"batch function, {n} windows, {k} reconstructed, {name}": timer(e) for name, e in engines.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Alternations of the timed variants.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-accuracy", action="store_true", help="Timings only.")
    parser.add_argument("--no-speed", action="store_true", help="Held-out figures only.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = Settings(torch_threads=1, device="cpu")
    out: dict[str, Any] = {"torch_threads": 1, "mc_samples": settings.mc_samples, "max_batch": settings.max_batch}
    if not args.no_speed:
        out["speed_ms_per_window"] = speed(settings, args.rounds)
    if not args.no_accuracy:
        out["classifier_holdout"] = classifier_accuracy(settings)
        out["reconstructor_ptbxl_z_val"] = reconstructor_accuracy(settings)
    print_and_write(out, args.json, indent=1)


if __name__ == "__main__":
    main()
