"""The packed waveform codec (``ecgmon.waveform_codec``): exact round trips, one clear error for bad payloads."""

from __future__ import annotations

import base64
import zlib

import neurokit2 as nk
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ecgmon.contracts import Window, decode_window, encode_window
from ecgmon.errors import ContractError
from ecgmon.waveform_codec import MAX_SAMPLES, RESOLUTION_MV, waveform_decode, waveform_encode

samples_mv = hnp.arrays(
    np.float64,
    st.integers(1, 3000),
    elements=st.one_of(st.floats(-100.0, 100.0, allow_nan=False), st.just(float("nan"))),
)


@given(samples_mv)
@settings(max_examples=200, deadline=None)
def test_round_trip_is_exact_to_the_quantisation_step(x: np.ndarray) -> None:
    packed = waveform_encode(x)
    y = waveform_decode(packed.data, n=packed.n, scale=packed.scale)
    assert packed.n == len(x) and y.shape == x.shape
    assert np.array_equal(np.isnan(y), np.isnan(x))
    finite = ~np.isnan(x)
    assert packed.scale >= RESOLUTION_MV
    assert np.all(np.abs(y[finite] - x[finite]) <= packed.scale / 2 * (1 + 1e-9))
    expected = np.clip(np.rint(x[finite] / packed.scale), -32767, 32767) * packed.scale
    assert np.array_equal(y[finite], expected)  # bit for bit what the quantised counts say


@given(hnp.arrays(np.int16, st.integers(1, 2000), elements=st.integers(-32767, 32767)))
@settings(max_examples=100, deadline=None)
def test_int16_windows_at_the_default_gain_come_back_exactly(counts: np.ndarray) -> None:
    """A window sent as int16 counts at 1 µV (the wire default) is stored without any loss."""
    x = counts.astype(np.float32) / np.float32(1000.0)  # what decode_window hands the worker
    packed = waveform_encode(x)
    y = waveform_decode(packed.data, n=packed.n, scale=packed.scale)
    assert packed.scale == RESOLUTION_MV
    assert np.array_equal(np.rint(y * 1000).astype(np.int16), counts)


def test_a_real_window_is_about_three_kilobytes_and_lossless() -> None:
    ecg = nk.ecg_simulate(duration=10, sampling_rate=250, heart_rate=72, random_state=4)
    window = Window(patient_id="p1", device_id="d1", seq=0, t_start_ns=0, fs_hz=250.0, samples=ecg)
    received = decode_window(encode_window(window))
    packed = waveform_encode(received.samples)
    assert len(packed.data) < 4000 < 2 * len(received.samples) * 4 / 3  # under 60 % of raw int16 in base64
    y = waveform_decode(packed.data, n=packed.n, scale=packed.scale)
    assert np.max(np.abs(y - received.samples)) < 1e-6


def test_bad_arrays_are_refused_when_encoding() -> None:
    for bad in (np.zeros(0), np.zeros((2, 3)), np.zeros(MAX_SAMPLES + 1), np.array([1.0, np.inf])):
        with pytest.raises(ValueError):
            waveform_encode(bad)


def _payload(raw: bytes, codec: int = 1) -> str:
    return base64.b64encode(bytes([codec]) + raw).decode()


def test_malformed_payloads_raise_one_clear_error() -> None:
    good = waveform_encode(np.linspace(-1, 1, 100))
    shuffled_zeros = zlib.compress(bytes(200))
    cases = {
        "not base64": ("@@@", 100, good.scale),
        "too short": (base64.b64encode(b"\x01").decode(), 100, good.scale),
        "codec 7 is unknown": (_payload(shuffled_zeros, codec=7), 100, good.scale),
        "corrupt": (_payload(b"not zlib at all"), 100, good.scale),
        "exactly 100 samples": (_payload(zlib.compress(bytes(198))), 100, good.scale),
        "exactly 99 samples": (good.data, 99, good.scale),  # more bytes than asked for
        "n 0": (good.data, 0, good.scale),
        "scale": (good.data, 100, -1.0),
    }
    for what, (data, n, scale) in cases.items():
        with pytest.raises(ContractError) as info:
            waveform_decode(data, n=n, scale=scale)
        assert info.value.args[0].startswith("packed waveform:"), what
    bomb = _payload(zlib.compress(bytes(10_000_000)))  # inflates to 10 MB: stopped at 2 * n bytes
    with pytest.raises(ContractError, match="exactly 100 samples"):
        waveform_decode(bomb, n=100, scale=0.001)


@given(st.text(max_size=200), st.integers(-5, MAX_SAMPLES + 5), st.floats(allow_nan=True))
@settings(max_examples=300, deadline=None)
def test_any_text_decodes_or_raises_contract_error(data: str, n: int, scale: float) -> None:
    try:
        out = waveform_decode(data, n=n, scale=scale)
    except ContractError:
        return
    assert out.shape == (n,)


@given(st.binary(max_size=64), st.data())
@settings(max_examples=300, deadline=None)
def test_damaged_payloads_decode_or_raise_contract_error(junk: bytes, data: st.DataObject) -> None:
    good = waveform_encode(np.sin(np.linspace(0, 20, 500)))
    raw = bytearray(base64.b64decode(good.data))
    cut = data.draw(st.integers(0, len(raw)))
    damaged = bytes(raw[:cut]) + junk + bytes(raw[cut + len(junk) :])
    try:
        out = waveform_decode(base64.b64encode(damaged).decode(), n=good.n, scale=good.scale)
    except ContractError:
        return
    assert out.shape == (good.n,)
