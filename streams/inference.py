"""The batch function the executor runs in its thread: preprocess, classify, reconstruct, format.

Models come only through ``models.registry.load`` by the names in settings (``classifier``,
``reconstructor``); the stream never imports training or evaluation code. Everything that is pure
computation on a window (preprocessing, the RR evidence, the InfluxDB line and Kafka record of the
prediction, the packed ``ecg_strip`` points of every window, the live waveforms as arrays) happens
here, in the inference thread, so the event loop only routes; the sink formats the live waveforms'
points in its own thread (``streams.sink``). Every window's lead I is stored packed at its native
rate, and each reconstructed lead at the reconstructor's rate (``ecgmon.points.strip_lines``); the
display-rate points Grafana draws are made only for requests marked ``live``.

Replay gives the same outputs: every window's MC-dropout masks come from its own seed
(``window_seed``: patient id and seq) and the models run the replayable path (fixed chunks,
``models.mc_dropout``), so a window's probabilities, uncertainty and reconstruction are the same bits
whichever batch it lands in, and a replayed window cannot flip an uncertainty gate.

On CUDA the models run under autocast after a warm-up batch (the reconstructor pins its inputs and
copies them non-blocking); on CPU there is no warm-up, and torch gets ``torch_threads`` threads
(default: every core but one, which the event loop needs for Kafka and InfluxDB I/O; measured on the
shared 2-core dev machine, two intra-op threads ran a 64-window batch 8x slower than one).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgmon import points
from ecgmon.contracts import Prediction, Reconstruction, Window
from ecgmon.rr import rr_irregularity
from ecgmon.settings import Settings
from models import registry
from models.interfaces import CLASSES, OUTPUT_LEADS, Classifier, PatientMeta, Reconstructor
from streams.preprocess import Prepared, fit_length, prepare_batch, resample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A window to run, whether to reconstruct it, when it entered the worker (monotonic s), and whether
    it also gets live per-sample waveform points (``streams.reconstruction_policy.live_waveform``)."""

    window: Window
    reconstruct: bool
    t_in: float
    live: bool = False


@dataclass(frozen=True)
class Result:
    """Everything the pipeline needs after inference for one window (formatted outputs included)."""

    window: Window
    prediction: Prediction
    max_rr_s: float | None
    lead_off: bool
    lines: list[points.Line]
    reconstruction: bytes | None = None


@dataclass(frozen=True)
class _Reconstructed:
    """One window's reconstruction: ``(mean, std)`` ``[11, k]`` at the model's ``fs_hz``, and at display rate."""

    native: tuple[np.ndarray, np.ndarray]
    fs_hz: float
    display: tuple[np.ndarray, np.ndarray]


def _rounded(x: np.ndarray, decimals: int = 4) -> list[float]:
    """Short JSON numbers: float64 first, or float32 noise comes back as 17 digits."""
    return np.round(np.asarray(x, dtype=np.float64), decimals).tolist()  # type: ignore[no-any-return]


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def window_seed(patient_id: str, seq: int) -> int:
    """The MC-dropout seed of a window: 63 bits of BLAKE2b over its patient id and seq (same on every replay)."""
    digest = hashlib.blake2b(f"{patient_id}\x00{seq}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def cpu_bf16_wanted(precision: str) -> bool:
    """Whether the classifier runs bf16 on this CPU: ``bf16`` always, ``auto`` only with native bf16.

    Without AVX512-BF16 or AMX, oneDNN emulates bf16 and it is slower than fp32, hence ``auto``.
    """
    if precision != "auto":
        return precision == "bf16"
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Inference:
    """Holds the loaded models; ``__call__(requests) -> results`` is the executor's batch function."""

    def __init__(self, settings: Settings, classifier: Classifier, reconstructor: Reconstructor | None) -> None:
        self.settings = settings
        self.classifier = classifier
        self.reconstructor = reconstructor
        self.device = registry.resolve_device(settings.device)
        self.cuda = self.device.startswith("cuda")
        self.classifier_bf16 = not self.cuda and cpu_bf16_wanted(settings.classifier_precision)
        self.model_tag = f"{classifier.name}:{classifier.version}"
        self.recon_tag = "" if reconstructor is None else f"{reconstructor.name}:{reconstructor.version}"
        self.model_cpu_s = 0.0
        """CPU seconds the inference thread spent in model calls since the worker started (``thread_time``).

        The models' share of the worker's CPU (``ecgmon bench``); torch's own intra-op threads beyond the
        calling one are not counted, so it is exact at ``torch_threads`` 1."""

    @classmethod
    def load(cls, settings: Settings) -> Inference:
        """Load the classifier (and the reconstructor unless the policy is ``never``) by registry name."""
        threads = settings.torch_threads or max(1, (os.cpu_count() or 1) - 1)  # one core for the event loop
        torch.set_num_threads(threads)
        device = registry.resolve_device(settings.device)
        classifier = registry.load(
            settings.classifier,
            device=device,
            weights=settings.model_weights,
            mc_mode=settings.classifier_mc_mode,
            replay_chunk=settings.classifier_replay_chunk,
        )
        reconstructor = None
        if settings.reconstruction_policy != "never":
            reconstructor = registry.load(
                settings.reconstructor,
                device=device,
                weights=settings.model_weights,
                mc_mode=settings.reconstructor_mc_mode,
                replay_chunk=settings.reconstructor_replay_chunk,
            )
        engine = cls(settings, classifier, reconstructor)
        if engine.cuda:
            engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One full-size batch through both models, so CUDA kernels and memory pools exist before data."""
        n = self.settings.max_batch
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.cuda):
            self.classifier.predict(
                np.zeros((n, self.classifier.window_samples), np.float32),
                mc_samples=self.settings.mc_samples,
                seeds=[0] * n,
            )
            if self.reconstructor is not None:
                self.reconstructor.reconstruct(
                    np.zeros((n, self.reconstructor.window_samples), np.float32),
                    PatientMeta.unknown(n),
                    samples=self.settings.mc_samples,
                    seeds=[0] * n,
                )

    def classifier_precision(self) -> contextlib.AbstractContextManager[Any]:
        """The classifier's arithmetic: autocast on CUDA, bf16 autocast on CPU if chosen, else fp32.

        Only the classifier: the reconstructor's output moved by 12 % of its spread in bf16 (correlation
        0.986 with fp32), too much for a waveform, while the classifier's record labels stayed the same.
        """
        if self.cuda:
            return torch.autocast("cuda")
        if self.classifier_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def classify(self, x: np.ndarray, mc_samples: int | None = None, seeds: Sequence[int] | None = None) -> Any:
        """The classifier on a prepared batch ``[n, window_samples]`` at the worker's precision and MC passes.

        ``seeds`` (one per window, ``window_seed``): replayable outputs; without, torch's global generator.
        """
        samples = self.settings.mc_samples if mc_samples is None else mc_samples
        with torch.inference_mode(), self.classifier_precision():
            return self.classifier.predict(x, mc_samples=samples, seeds=seeds)

    def prepare(self, windows: Sequence[Window]) -> Prepared:
        """The batch's preprocessing at the classifier's rate and length (the bench times this same call)."""
        s, clf = self.settings, self.classifier
        return prepare_batch(
            [w.samples for w in windows],
            [w.fs_hz for w in windows],
            model_fs_hz=clf.fs_hz,
            model_window_samples=clf.window_samples,
            flat_mv=s.lead_off_flat_mv,
            clip_fraction=s.lead_off_clip_fraction,
            min_peak_ratio=s.r_peak_min_ratio,
        )

    def __call__(self, requests: Sequence[Request]) -> list[Result]:
        """Run one micro-batch; results in the order of ``requests``."""
        s = self.settings
        windows = [r.window for r in requests]
        seeds = [window_seed(w.patient_id, w.seq) for w in windows]
        prep = self.prepare(windows)
        t_cpu = time.thread_time()
        out = self.classify(prep.x, seeds=seeds)
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.cuda):
            recon = self._reconstruct(requests, prep.x, seeds)
        self.model_cpu_s += time.thread_time() - t_cpu
        display = self._display(windows, [r.live for r in requests])
        probs = np.asarray(out.probs, dtype=np.float64)
        uncertainty = np.asarray(out.uncertainty, dtype=np.float64).reshape(-1)
        results = []
        for i, w in enumerate(windows):
            k = int(np.argmax(probs[i]))
            prediction = Prediction(
                patient_id=w.patient_id,
                seq=w.seq,
                t_end_ns=w.t_end_ns,
                label=CLASSES[k],
                confidence=float(probs[i, k]),
                uncertainty=float(uncertainty[i]),
                probs={c: round(float(p), 6) for c, p in zip(CLASSES, probs[i], strict=True)},
                hr_bpm=_finite_or_none(prep.hr_bpm[i]),
                sqi=round(float(prep.sqi[i]), 4),
                model=self.model_tag,
                rr_irregularity=rr_irregularity(prep.rr_s[i]),
                truth=w.truth,
                p_wave_coherence=_finite_or_none(prep.p_wave_coherence[i]),
            )
            max_rr = _finite_or_none(prep.max_rr_s[i])
            lines: list[points.Line] = [
                points.prediction_line(
                    patient_id=w.patient_id,
                    t_end_ns=w.t_end_ns,
                    label=prediction.label,
                    confidence=prediction.confidence,
                    uncertainty=prediction.uncertainty,
                    probs=prediction.probs,
                    hr_bpm=prediction.hr_bpm,
                    sqi=prediction.sqi,
                    seq=w.seq,
                    model=prediction.model,
                    extra={
                        "rr_irregularity": prediction.rr_irregularity,
                        "max_rr_s": max_rr,
                        "lead_off": bool(prep.lead_off[i]),
                        "truth": w.truth,
                        "p_wave_coherence": prediction.p_wave_coherence,
                    },
                )
            ]
            lines += points.strip_lines(
                patient_id=w.patient_id,
                lead=points.MEASURED_LEAD,
                t_start_ns=w.t_start_ns,
                fs_hz=w.fs_hz,
                samples=w.samples,
            )
            if i in display:
                tags, fields = {"patient_id": w.patient_id}, {"value": display[i]}
                lines.append(points.Waveform(points.LIVE_LEAD_I, tags, fields, s.display_hz, w.t_start_ns))
            record = None
            if i in recon:
                mean, std = recon[i].display
                lines += self._reconstruction_lines(w, recon[i], live=requests[i].live and s.live_reconstruction)
                record = Reconstruction(
                    patient_id=w.patient_id,
                    seq=w.seq,
                    t_start_ns=w.t_start_ns,
                    fs_hz=s.display_hz,
                    leads={lead: _rounded(mean[j]) for j, lead in enumerate(OUTPUT_LEADS)},
                    uncertainty={lead: _rounded(std[j]) for j, lead in enumerate(OUTPUT_LEADS)},
                    model=self.recon_tag,
                ).to_bytes()
            results.append(Result(w, prediction, max_rr, bool(prep.lead_off[i]), lines, record))
        return results

    def _display(self, windows: Sequence[Window], live: Sequence[bool]) -> dict[int, np.ndarray]:
        """``{index: raw lead I at display_hz}`` of the ``live`` windows (one rate and length resampled together)."""
        out: dict[int, np.ndarray] = {}
        groups: dict[tuple[float, int], list[int]] = {}
        for i, w in enumerate(windows):
            if live[i]:
                groups.setdefault((w.fs_hz, w.samples.shape[0]), []).append(i)
        for (fs_hz, _), idx in groups.items():
            resampled = resample(np.stack([windows[i].samples for i in idx]), fs_hz, self.settings.display_hz)
            for row, i in enumerate(idx):
                out[i] = resampled[row]
        return out

    def _reconstruct(
        self, requests: Sequence[Request], x_clf: np.ndarray, seeds: Sequence[int]
    ) -> dict[int, _Reconstructed]:
        """``{index: reconstruction}`` (native and display rate) for the requests that ask for it."""
        rec = self.reconstructor
        idx = [i for i, r in enumerate(requests) if r.reconstruct]
        if rec is None or not idx:
            return {}
        if rec.fs_hz == self.classifier.fs_hz and rec.window_samples == self.classifier.window_samples:
            lead_i = x_clf[idx]
        else:
            lead_i = np.stack(
                [
                    fit_length(
                        resample(requests[i].window.samples[None], requests[i].window.fs_hz, rec.fs_hz),
                        rec.window_samples,
                    )[0]
                    for i in idx
                ]
            )
        meta = PatientMeta(
            np.array([np.nan if requests[i].window.age is None else requests[i].window.age for i in idx], np.float32),
            np.array([np.nan if requests[i].window.sex is None else requests[i].window.sex for i in idx], np.float32),
        )
        native_mean, native_std = rec.reconstruct(
            lead_i, meta, samples=self.settings.mc_samples, seeds=[seeds[i] for i in idx]
        )
        native_mean, native_std = np.asarray(native_mean, np.float32), np.asarray(native_std, np.float32)
        mean = resample(native_mean, rec.fs_hz, self.settings.display_hz)
        std = np.maximum(resample(native_std, rec.fs_hz, self.settings.display_hz), 0.0)
        native_std = np.maximum(native_std, 0.0)
        return {
            i: _Reconstructed((native_mean[j], native_std[j]), rec.fs_hz, (mean[j], std[j])) for j, i in enumerate(idx)
        }

    def _reconstruction_lines(self, w: Window, recon: _Reconstructed, *, live: bool) -> list[points.Line]:
        """The packed ``ecg_strip`` point of each reconstructed lead, and its live points when ``live``."""
        mean, std = recon.native
        out: list[points.Line] = []
        for j, lead in enumerate(OUTPUT_LEADS):
            out += points.strip_lines(
                patient_id=w.patient_id, lead=lead, t_start_ns=w.t_start_ns, fs_hz=recon.fs_hz,
                samples=mean[j], sd=std[j], model=self.recon_tag,
            )  # fmt: skip
        if live:
            mean_d, std_d = recon.display
            out += [
                points.Waveform(
                    points.LIVE_RECONSTRUCTION,
                    {"patient_id": w.patient_id, "lead": lead},
                    {"value": mean_d[j], "uncertainty": std_d[j]},
                    self.settings.display_hz,
                    w.t_start_ns,
                )
                for j, lead in enumerate(OUTPUT_LEADS)
            ]
        return out
