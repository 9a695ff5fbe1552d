"""Preprocessing physics: heart rate against a reference detector, quality, lead-off, pauses, shapes."""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
import wfdb
import wfdb.processing

from ecgmon.settings import Settings
from streams.preprocess import fit_length, prepare_batch

PHYSICS = {
    "flat_mv": Settings().lead_off_flat_mv,
    "clip_fraction": Settings().lead_off_clip_fraction,
    "min_peak_ratio": Settings().r_peak_min_ratio,
}


def _sim(hr_bpm: float, fs_hz: float, seed: int, duration_s: float = 10.0) -> np.ndarray:
    return np.asarray(nk.ecg_simulate(duration=duration_s, sampling_rate=fs_hz, heart_rate=hr_bpm, random_state=seed))


@pytest.mark.parametrize("record", ["A00001", "A00003", "A00006", "A00007"])
def test_heart_rate_matches_wfdb_xqrs_on_cinc2017(data_dir: Path, record: str) -> None:
    rec = wfdb.rdrecord(str(data_dir / "cinc2017" / record))
    fs = float(rec.fs)
    window = rec.p_signal[: int(10 * fs), 0]
    peaks = wfdb.processing.xqrs_detect(window, fs, verbose=False)
    reference_bpm = 60.0 / np.mean(np.diff(peaks) / fs)
    p = prepare_batch([window], [fs], model_fs_hz=100.0, model_window_samples=1000, **PHYSICS)
    assert abs(p.hr_bpm[0] - reference_bpm) < 2.0
    assert p.sqi[0] > 0.5 and not p.lead_off[0]


def test_heart_rate_of_seeded_simulations_across_rates() -> None:
    cases = [(45, 250.0, 1), (72, 300.0, 2), (130, 500.0, 3), (95, 128.0, 4)]
    p = prepare_batch(
        [_sim(hr, fs, seed) for hr, fs, seed in cases],
        [fs for _, fs, _ in cases],
        model_fs_hz=100.0,
        model_window_samples=1000,
        **PHYSICS,
    )
    for i, (hr, _, _) in enumerate(cases):
        assert abs(p.hr_bpm[i] - hr) < 2.0, (hr, p.hr_bpm[i])
        assert abs(1.0 / np.mean(p.rr_s[i]) * 60.0 - hr) < 2.0
    assert p.x.shape == (4, 1000) and p.x.dtype == np.float32


def test_resampled_model_input_keeps_the_signal() -> None:
    x = _sim(70, 500.0, 5)
    p = prepare_batch([x], [500.0], model_fs_hz=100.0, model_window_samples=1000, **PHYSICS)
    # Same waveform, five times fewer samples: the peak-to-peak amplitude survives resampling.
    assert np.ptp(p.x[0]) == pytest.approx(np.ptp(x), rel=0.15)


def test_quality_separates_ecg_from_noise_and_flags_lead_off() -> None:
    rng = np.random.default_rng(0)
    ecg = _sim(70, 250.0, 6)
    noise = rng.normal(0.0, 0.3, 2500)
    flat = np.full(2500, 0.2) + rng.normal(0, 0.002, 2500)
    saturated = np.clip(ecg * 20, -1.0, 1.0)
    p = prepare_batch(
        [ecg, noise, flat, saturated], [250.0] * 4, model_fs_hz=100.0, model_window_samples=1000, **PHYSICS
    )
    assert p.sqi[0] > 0.7 and p.sqi[1] < 0.3
    assert list(p.lead_off) == [False, False, True, True]
    assert p.sqi[2] == 0.0 and np.isnan(p.hr_bpm[2]) and np.isnan(p.max_rr_s[2])


def test_a_pause_shows_in_max_rr() -> None:
    fs = 250.0
    x = _sim(60, fs, 7)
    x[int(3.2 * fs) : int(7.2 * fs)] = np.median(x)  # four seconds without a beat
    p = prepare_batch([x, _sim(60, fs, 7)], [fs, fs], model_fs_hz=100.0, model_window_samples=1000, **PHYSICS)
    assert p.max_rr_s[0] > 3.5
    assert p.max_rr_s[1] < 1.5


def test_crop_and_pad_to_the_model_window() -> None:
    short = _sim(70, 250.0, 8, duration_s=6.0)
    long = _sim(70, 250.0, 9, duration_s=14.0)
    p = prepare_batch([short, long], [250.0, 250.0], model_fs_hz=100.0, model_window_samples=1000, **PHYSICS)
    assert p.x.shape == (2, 1000)
    assert np.all(p.x[0, 600:] == p.x[0, 999])  # padded with the window's median: a flat tail
    assert fit_length(np.arange(10.0)[None], 4).tolist() == [[0.0, 1.0, 2.0, 3.0]]


def test_kurtosis_is_scipys_to_the_bit(data_dir: Path) -> None:
    """``signal_quality``'s kurtosis skips SciPy's wrapper (issue 24) but must give SciPy's numbers exactly."""
    import warnings

    from scipy.stats import kurtosis

    from streams.preprocess import _bandpass, _kurtosis

    rng = np.random.default_rng(0)
    rec = wfdb.rdrecord(str(data_dir / "cinc2017" / "A00001"))
    real = np.stack([rec.p_signal[i * 1500 : i * 1500 + 3000, 0] for i in range(4)])
    batches = [
        rng.normal(size=(64, 2500)) ** 3,
        rng.normal(size=(1, 2500)),
        np.zeros((2, 2500)),  # flat: NaN, as SciPy
        np.full((1, 2500), 3.0) + 1e-18 * rng.normal(size=(1, 2500)),
        _bandpass(real, 300.0),
        real,
    ]
    for x in batches:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # SciPy's precision-loss note on the near-flat row
            expected = kurtosis(x, axis=-1, fisher=False)
        np.testing.assert_array_equal(_kurtosis(x), expected)


def test_bandpass_and_resampler_are_scipys_to_the_bit(data_dir: Path) -> None:
    """The band-pass and resampler keep their designs between calls (issue 24); the outputs must not change."""
    from fractions import Fraction

    from scipy.signal import butter, resample_poly, sosfiltfilt

    from ecgmon.dsp import resample
    from streams.preprocess import _bandpass

    rng = np.random.default_rng(1)
    rec = wfdb.rdrecord(str(data_dir / "cinc2017" / "A00001"))
    real = np.stack([rec.p_signal[i * 1500 : i * 1500 + 3000, 0] for i in range(4)])
    for x, fs in ((real, 300.0), (rng.normal(size=(64, 2500)), 250.0), (rng.normal(size=(1, 20)), 128.0)):
        sos = butter(4, [0.5, min(40.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
        padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
        np.testing.assert_array_equal(_bandpass(x, fs), sosfiltfilt(sos, x, axis=-1, padlen=padlen))
        for out_hz in (100.0, 50.0, 125.0, 257.0):
            ratio = Fraction(out_hz / fs).limit_denominator(1000)
            expected = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
            np.testing.assert_array_equal(resample(x, fs, out_hz), expected)
