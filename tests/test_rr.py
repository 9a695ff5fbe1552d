"""COSEn RR-irregularity evidence on seeded synthetic RR and on real LTAFDB beat annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgmon.rr import cosen, rr_irregularity


def test_random_rr_scores_high_and_sinus_low() -> None:
    rng = np.random.default_rng(7)
    af = [rr_irregularity(rng.uniform(0.35, 1.0, 14)) for _ in range(200)]
    sinus = [rr_irregularity(0.85 + 0.02 * np.sin(np.arange(12) / 2.0) + rng.normal(0, 0.01, 12)) for _ in range(200)]
    assert all(v is not None for v in af + sinus)
    assert np.mean(np.array(af) > 0.5) > 0.9
    assert np.mean(np.array(sinus) > 0.5) < 0.05


def test_too_few_beats_give_none_and_scores_stay_in_range() -> None:
    assert rr_irregularity(np.array([0.8, 0.8, 0.8])) is None
    assert rr_irregularity(np.array([])) is None
    assert rr_irregularity(np.array([0.8] * 5 + [5.0, 0.05])) is None  # implausible intervals are dropped
    value = rr_irregularity(np.full(12, 0.8))
    assert value is not None and 0.0 <= value < 0.05  # perfectly regular
    rng = np.random.default_rng(1)
    for _ in range(50):
        v = rr_irregularity(rng.uniform(0.2, 3.0, rng.integers(7, 40)))
        assert v is not None and 0.0 <= v <= 1.0


def test_faster_af_scores_higher_at_equal_spread() -> None:
    """COSEn subtracts ln(mean RR): the same irregularity at a faster rate is more AF-like."""
    rng = np.random.default_rng(3)
    base = rng.uniform(-1, 1, 14)
    slow, fast = cosen(1.0 + 0.1 * base), cosen(0.5 + 0.1 * base)
    assert slow is not None and fast is not None and fast > slow


def _windows_by_rhythm(path: Path, record: str, window_s: float = 10.0) -> dict[str, list[float]]:
    ann = wfdb.rdann(str(path / record), "atr")
    fs = float(ann.fs or 128.0)
    symbols = np.array(ann.symbol)
    rhythm, current = [], ""
    for sym, aux in zip(symbols, ann.aux_note, strict=True):
        if sym == "+":
            current = aux.strip("\x00 ")
        rhythm.append(current)
    beat = np.isin(symbols, ["N", "A", "V", "Q"])
    t = ann.sample[beat] / fs
    r = np.array(rhythm)[beat]
    out: dict[str, list[float]] = {}
    for start in np.arange(t[0], t[-1] - window_s, window_s):
        lo, hi = np.searchsorted(t, [start, start + window_s])
        if hi - lo < 2 or len(set(r[lo:hi])) != 1:
            continue
        score = rr_irregularity(np.diff(t[lo:hi]))
        if score is not None:
            out.setdefault(str(r[lo]), []).append(score)
    return out


@pytest.mark.parametrize("record", ["00", "32"])
def test_real_ltafdb_afib_scores_above_sinus(data_dir: Path, record: str) -> None:
    scores = _windows_by_rhythm(data_dir / "ltafdb", record)
    afib, sinus = np.array(scores["(AFIB"]), np.array(scores["(N"])
    assert len(afib) > 50 and len(sinus) > 1000
    assert np.mean(afib > 0.5) > 0.9
    assert np.mean(sinus > 0.5) < 0.05
