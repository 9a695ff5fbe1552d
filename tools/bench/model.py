"""Model-only figures, in process: batched and unbatched throughput, stage timings, FLOPs.

Everything runs through ``streams.inference.Inference`` (the worker's batch function, models from
``models.registry.load`` by the names in settings), so the bench times what the worker runs. Inputs
are synthetic patients from ``simulators.synthetic`` at ``sim_fs_hz``, preprocessed with the worker's
own ``Inference.prepare``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ecgmon.contracts import Window, decode_window, encode_window, wire_encoding
from ecgmon.settings import Settings
from models.interfaces import PatientMeta
from streams.inference import Inference, Request
from streams.preprocess import fit_length, resample


def synthetic_windows(settings: Settings, n: int, *, patients: int, prefix: str, seed: int = 0) -> list[Window]:
    """``n`` windows of ``patients`` synthetic wearers (round robin, seq counting up), as the gateway renders them."""
    from simulators.synthetic import SyntheticPatient

    devices = [
        SyntheticPatient(
            f"{prefix}-{i:04d}",
            np.random.default_rng([seed, i]),
            fs_hz=settings.sim_fs_hz,
            window_s=settings.window_s,
            hop_s=settings.hop_s,
            event_rate_per_h=settings.sim_event_rate_per_h,
            artefact_rate_per_h=settings.sim_artefact_rate_per_h,
            noise_mv=settings.sim_noise_mv,
        )
        for i in range(min(patients, n))
    ]
    hop_ns = round(settings.hop_s * 1e9)
    out = []
    for k in range(n):
        d = devices[k % len(devices)]
        seq = k // len(devices)
        data = d.window(seq)
        out.append(
            Window(
                patient_id=d.patient_id,
                device_id=d.device_id,
                seq=seq,
                t_start_ns=1_700_000_000_000_000_000 + seq * hop_ns,
                fs_hz=d.fs_hz,
                samples=data.samples,
                age=d.age,
                sex=d.sex,
                truth=data.truth,
            )
        )
    return out


def _rate(fn: Callable[[int, int], object], n: int, batch: int, min_s: float) -> float:
    """Windows per second of ``fn(start, stop)`` over ``n`` windows in slices of ``batch`` (repeats until ``min_s``)."""
    fn(0, min(batch, n))  # warm-up: allocator, lazy init, autotuning
    done = 0
    t0 = time.perf_counter()
    while True:
        for i in range(0, n, batch):
            fn(i, min(i + batch, n))
        done += n
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return done / elapsed


@dataclass(frozen=True)
class ModelFigures:
    """Model-only throughputs (windows/s) and per-window stage times (ms); see ``measure``."""

    classifier_windows_per_s: float
    classifier_unbatched_windows_per_s: float
    reconstructor_windows_per_s: float | None
    stages_ms: dict[str, float]
    mc_sweep: dict[int, float]
    flops_per_window: dict[str, float]
    samples: dict[str, list[float]]


def _reconstructor_input(engine: Inference, windows: list[Window], x_clf: np.ndarray) -> np.ndarray:
    rec = engine.reconstructor
    assert rec is not None
    if rec.fs_hz == engine.classifier.fs_hz and rec.window_samples == engine.classifier.window_samples:
        return x_clf
    return np.stack([fit_length(resample(w.samples[None], w.fs_hz, rec.fs_hz), rec.window_samples)[0] for w in windows])


def flops_per_window(engine: Inference, x: np.ndarray, x_rec: np.ndarray | None, mc_samples: int) -> dict[str, float]:
    """Floating-point operations per window at ``mc_samples`` passes (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, float] = {}
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            engine.classify(x[:1], mc_samples)
        out["classifier"] = float(counter.get_total_flops())
        if engine.reconstructor is not None and x_rec is not None:
            counter = FlopCounterMode(display=False)
            with counter:
                engine.reconstructor.reconstruct(x_rec[:1], PatientMeta.unknown(1), samples=mc_samples)
            out["reconstructor"] = float(counter.get_total_flops())
    return out


def model_input(engine: Inference, windows: list[Window]) -> np.ndarray:
    """The classifier's input ``[n, window_samples]`` for ``windows``, prepared as the worker does."""
    return engine.prepare(windows).x


def classifier_rates(
    engine: Inference,
    x: np.ndarray,
    *,
    unbatched_windows: int,
    min_s: float,
    repeats: int,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[float], list[float]]:
    """Classifier windows/s at ``max_batch`` and at batch 1 (``mc_samples`` passes), ``repeats`` alternated timings.

    Alternating means a neighbour's burst of work on a shared machine hits both alike.
    """
    s = engine.settings
    batch, mc = s.max_batch, s.mc_samples

    def classify(a: int, b: int) -> object:
        return engine.classify(x[a:b], mc)

    batched, unbatched = [], []
    for r in range(repeats):
        progress(f"classifier, batch {batch} and batch 1, {mc} MC passes ({r + 1}/{repeats})")
        batched.append(_rate(classify, len(x), batch, min_s))
        unbatched.append(_rate(classify, min(unbatched_windows, len(x)), 1, min_s))
    return batched, unbatched


def measure(
    engine: Inference,
    windows: list[Window],
    *,
    unbatched_windows: int,
    min_s: float,
    mc_sweep: tuple[int, ...] = (),
    repeats: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> ModelFigures:
    """Time the models at the pipeline's batch policy (``max_batch``, ``mc_samples``) and at batch 1.

    Batched and unbatched classifier rates are the medians of ``repeats`` alternated timings.

    Stage times (ms per window, at ``max_batch``): ``decode`` (Window codec), ``preprocess``
    (``prepare_batch``: resampling, filters, R peaks, SQI), ``classifier`` and ``reconstructor``
    (model calls), ``batch_function`` (the whole ``Inference.__call__`` without reconstruction:
    preprocessing, classifier, Prediction records, InfluxDB lines, display waveforms).
    """
    s = engine.settings
    batch, mc = s.max_batch, s.mc_samples
    n = len(windows)
    encoded = [encode_window(w, encoding=wire_encoding(w.samples)) for w in windows]
    stages: dict[str, float] = {}

    progress("decode and preprocess")
    t0 = time.perf_counter()
    for b in encoded:
        decode_window(b)
    stages["decode"] = 1e3 * (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        engine.prepare(windows[i : i + batch])
    stages["preprocess"] = 1e3 * (time.perf_counter() - t0) / n
    x = model_input(engine, windows)

    def classify(a: int, b: int, mc_samples: int = mc) -> object:
        return engine.classify(x[a:b], mc_samples)

    batched_rates, unbatched_rates = classifier_rates(
        engine, x, unbatched_windows=unbatched_windows, min_s=min_s, repeats=repeats, progress=progress
    )
    clf_rate = float(np.median(batched_rates))
    unbatched = float(np.median(unbatched_rates))
    stages["classifier"] = 1e3 / clf_rate

    rec_rate = None
    x_rec = None
    if engine.reconstructor is not None:
        rec = engine.reconstructor
        x_rec = _reconstructor_input(engine, windows, x)
        meta = PatientMeta.unknown(n)

        def reconstruct(a: int, b: int) -> object:
            with torch.inference_mode():
                m = PatientMeta(meta.age_years[a:b], meta.sex[a:b])
                return rec.reconstruct(x_rec[a:b], m, samples=mc)

        progress(f"reconstructor, batch {batch}, {mc} MC passes")
        rec_rate = _rate(reconstruct, n, batch, min_s)
        stages["reconstructor"] = 1e3 / rec_rate

    progress("the worker's batch function (no reconstruction)")
    requests = [Request(w, False, 0.0) for w in windows]
    full_rate = _rate(lambda a, b: engine(requests[a:b]), n, batch, min_s)
    stages["batch_function"] = 1e3 / full_rate

    sweep: dict[int, float] = {}
    for k in mc_sweep:
        progress(f"classifier, batch {batch}, {k} MC passes")
        sweep[k] = _rate(lambda a, b, k=k: classify(a, b, k), n, batch, min_s)  # type: ignore[misc]
    progress("FLOPs")
    flops = flops_per_window(engine, x, x_rec, mc)
    samples = {"batched": batched_rates, "unbatched": unbatched_rates}
    return ModelFigures(clf_rate, unbatched, rec_rate, stages, sweep, flops, samples)
