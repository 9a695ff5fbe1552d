"""The window codec: exact round trips, and every defect rejected with a reason, never a crash."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ecgmon.contracts import (
    HEADER_BYTES,
    LEADS,
    Alert,
    ContractError,
    DeadLetter,
    Prediction,
    Window,
    decode_window,
    encode_window,
)

ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
counts = hnp.arrays(np.int16, st.integers(1, 600), elements=st.integers(-32768, 32767))
floats32 = hnp.arrays(np.float32, st.integers(1, 600), elements=st.floats(-50, 50, allow_nan=False, width=32))


def _window(samples: np.ndarray, **kw: object) -> Window:
    base: dict[str, object] = dict(patient_id="p-1", device_id="d.1", seq=0, t_start_ns=0, fs_hz=250.0)
    base.update(kw)
    return Window(samples=samples, **base)  # type: ignore[arg-type]


@given(
    patient=ids,
    device=ids,
    seq=st.integers(0, 2**64 - 1),
    t0=st.integers(-(2**63), 2**63 - 1),
    fs=st.floats(50, 2000, allow_nan=False),
    lead=st.sampled_from(LEADS),
    age=st.none() | st.floats(0, 150, allow_nan=False, width=32),
    sex=st.sampled_from([None, 0, 1]),
    truth=st.none() | st.text(min_size=1, max_size=40),
    raw=counts,
)
def test_int16_windows_round_trip_exactly(patient, device, seq, t0, fs, lead, age, sex, truth, raw) -> None:
    samples = raw.astype(np.float32) / np.float32(1000.0)
    w = Window(patient, device, seq, t0, fs, samples, lead=lead, age=age, sex=sex, truth=truth)
    assert decode_window(encode_window(w)) == w


@given(samples=floats32, fs=st.floats(50, 2000, allow_nan=False))
def test_float32_windows_round_trip_exactly(samples: np.ndarray, fs: float) -> None:
    w = _window(samples, fs_hz=fs)
    assert decode_window(encode_window(w, encoding="float32")) == w


def test_int16_quantisation_error_is_half_a_count() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 1, 3000).astype(np.float32)
    decoded = decode_window(encode_window(_window(samples)))
    assert np.max(np.abs(decoded.samples - samples)) <= 0.0005 + 1e-6


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_rejected_with_a_reason(data: bytes) -> None:
    with pytest.raises(ContractError) as err:
        decode_window(data)
    assert str(err.value)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_decode_or_fail_cleanly(data: st.DataObject) -> None:
    good = bytearray(encode_window(_window(np.linspace(-1, 1, 250, dtype=np.float32), truth="AF")))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(good) - 1))
        good[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    blob = bytes(good[:cut]) if data.draw(st.booleans()) else bytes(good)
    try:
        w = decode_window(blob)
    except ContractError as exc:
        assert str(exc)
    else:
        assert decode_window(encode_window(w, encoding="float32")) == w


def _patch(blob: bytes, fmt: str, offset: int, value: object) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


GOOD = encode_window(_window(np.zeros(100, dtype=np.float32)))


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "shorter than"),
        (GOOD[:20], "shorter than"),
        (b"XXXX" + GOOD[4:], "bad magic"),
        (_patch(GOOD, "<B", 4, 9), "schema version 9"),
        (_patch(GOOD, "<B", 5, 7), "encoding"),
        (_patch(GOOD, "<B", 6, 40), "lead code"),
        (_patch(GOOD, "<d", 28, 20.0), "outside 50-2000 Hz"),
        (_patch(GOOD, "<d", 28, 5000.0), "outside 50-2000 Hz"),
        (_patch(GOOD, "<I", 40, 101), "announces"),
        (GOOD[:-2], "announces"),
        (GOOD + b"\0\0", "announces"),
        (b"x" * 2_000_000, "exceeds"),
        (b'{"patient_id": "p1"}' * 3, "bad magic"),
    ],
)
def test_each_defect_has_its_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode_window(blob)


def test_non_finite_samples_are_rejected_on_both_sides() -> None:
    with pytest.raises(ContractError, match="NaN"):
        _window(np.array([0.0, np.nan], dtype=np.float32))
    blob = bytearray(encode_window(_window(np.zeros(4, dtype=np.float32)), encoding="float32"))
    struct.pack_into("<f", blob, len(blob) - 4, float("nan"))
    with pytest.raises(ContractError, match="NaN"):
        decode_window(bytes(blob))


@pytest.mark.parametrize("bad", ["", "a" * 65, "has space", "semi;colon", "ü", "a,b"])
def test_malformed_patient_ids_are_refused(bad: str) -> None:
    with pytest.raises(ContractError, match="patient_id"):
        _window(np.zeros(10, dtype=np.float32), patient_id=bad)


def test_malformed_patient_id_in_bytes_is_refused() -> None:
    blob = encode_window(_window(np.zeros(10, dtype=np.float32), patient_id="abc"))
    mutated = blob[:HEADER_BYTES] + b"a c" + blob[HEADER_BYTES + 3 :]
    with pytest.raises(ContractError, match="patient_id"):
        decode_window(mutated)


def test_out_of_range_int16_asks_for_float32() -> None:
    with pytest.raises(ContractError, match="float32"):
        encode_window(_window(np.array([40.0], dtype=np.float32)))


def test_timing_properties() -> None:
    w = _window(np.zeros(2500, dtype=np.float32), t_start_ns=10**18)
    assert w.duration_s == 10.0
    assert w.t_end_ns == 10**18 + 10 * 10**9


def test_json_records_round_trip_and_reject_garbage() -> None:
    p = Prediction("p1", 3, 10, "A", 0.9, 0.1, {"N": 0.05, "A": 0.9, "O": 0.04, "~": 0.01}, 120.0, 0.8, "student")
    assert Prediction.from_bytes(p.to_bytes()) == p
    a = Alert("p1", "af", "opened", "high", 0.9, "AF in 3 of 4 windows", 10, "p1:af:3", 3)
    assert Alert.from_bytes(a.to_bytes()) == a
    d = DeadLetter("bad magic", "ecg.windows", 1, 7, "p1", "00ff", 5)
    assert DeadLetter.from_bytes(d.to_bytes()) == d
    for junk in (b"", b"[]", b"{}", b'{"schema": 99}', b"\xff"):
        with pytest.raises(ContractError):
            Prediction.from_bytes(junk)
