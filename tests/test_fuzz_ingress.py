"""Hostile input: thousands of generated and mutated messages through the worker's ingress function.

``decode_or_dead_letter`` is what the worker's ingest agent calls for every Kafka record. Whatever
the bytes, it must return a valid ``Window`` or a ``DeadLetter`` with a reason, the record's origin,
its original key and at most ``keep_bytes`` of its bytes; it must never raise; oversized messages
are refused before any decoding, with memory bounded by the envelope, not by the message.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.ingress as ingress
from ecgmon.contracts import HEADER_BYTES, DeadLetter, Window, check_patient_id, encode_window
from streams.ingress import Record, decode_or_dead_letter

MAX = 65_536
KEEP = 4096
IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1, max_size=64)


def _record(value: bytes | None, key: bytes | None) -> Record:
    return Record(key=key, value=value, topic="ecg.windows", partition=5, offset=1234)


def _check(record: Record) -> Window | DeadLetter:
    """The ingress answer for ``record``, with every property that must hold for any input."""
    out = decode_or_dead_letter(record, max_bytes=MAX, keep_bytes=KEEP)
    if isinstance(out, Window):
        assert check_patient_id(out.patient_id) == out.patient_id  # safe as a tag and a key
        assert np.isfinite(out.samples).all() and out.samples.ndim == 1 and out.samples.size > 0
        assert record.key is None or record.key.decode("utf-8", "replace") == out.patient_id
        return out
    assert isinstance(out, DeadLetter), type(out)
    assert out.reason.strip(), "a dead letter needs a reason"
    assert (out.topic, out.partition, out.offset) == ("ecg.windows", 5, 1234)
    assert out.key == (None if record.key is None else record.key.decode("utf-8", "replace"))
    value = record.value or b""
    assert bytes.fromhex(out.value_hex) == value[:KEEP]
    assert len(out.to_bytes()) < 2 * KEEP + 4096  # the envelope is bounded, whatever came in
    assert DeadLetter.from_bytes(out.to_bytes()) == out
    return out


@st.composite
def windows(draw: st.DrawFn) -> Window:
    n = draw(st.integers(1, 600))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))  # values from a seed: cheap to generate
    samples = np.clip(rng.normal(0.0, draw(st.floats(0.0, 10.0)), n), -30.0, 30.0)
    return Window(
        patient_id=draw(IDS),
        device_id=draw(IDS),
        seq=draw(st.integers(0, 2**64 - 1)),
        t_start_ns=draw(st.integers(-(2**63), 2**63 - 10**12)),
        fs_hz=draw(st.floats(50, 2000)),
        samples=samples,
        truth=draw(st.one_of(st.none(), st.sampled_from(["N", "A", "O", "~", "AFIB"]))),
    )


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """A valid message with one to four mutations: flips, cuts, insertions, header overwrites, splices."""
    w = draw(windows())
    data = bytearray(encode_window(w, encoding=draw(st.sampled_from(["int16", "float32"]))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header", "splice", "nan"]))
        if kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] if draw(st.booleans()) else data[i:]
        elif kind == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "header" and len(data) >= HEADER_BYTES:
            i = draw(st.integers(4, HEADER_BYTES - 1))
            data[i : i + 4] = draw(st.binary(min_size=4, max_size=4))
        elif kind == "splice":
            data += draw(st.binary(max_size=256))
        elif kind == "nan" and len(data) >= 4:
            data[-4:] = struct.pack("<f", draw(st.sampled_from([float("nan"), float("inf"), -float("inf")])))
    key_kind = draw(st.sampled_from(["same", "other", "none", "garbage"]))
    key = {
        "same": w.patient_id.encode(),
        "other": b"someone-else",
        "none": None,
        "garbage": draw(st.binary(max_size=80)),
    }[key_kind]
    return bytes(data[: 2 * MAX]), key


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.one_of(st.none(), st.binary(max_size=100)))
def test_random_bytes_never_crash_and_are_dead_lettered(value: bytes, key: bytes | None) -> None:
    out = _check(_record(value, key))
    assert isinstance(out, DeadLetter)  # random bytes never pass the magic, size and checks together


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_windows_decode_valid_or_are_dead_lettered(case: tuple[bytes, bytes | None]) -> None:
    value, key = case
    _check(_record(value, key))


@settings(max_examples=300, deadline=None)
@given(windows())
def test_every_valid_window_passes_unchanged(w: Window) -> None:
    data = encode_window(w, encoding="float32")
    out = _check(_record(data, w.patient_id.encode()))
    assert isinstance(out, Window) and out == Window(**{**out.__dict__, "samples": w.samples})


def test_oversized_message_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """32 MiB that look like a window: refused by size, the decoder never runs, memory stays small."""
    huge = encode_window(Window("p-1", "d", 0, 0, 250.0, np.zeros(2500)))[:HEADER_BYTES] + bytes(32 * 2**20)

    def must_not_decode(*args: object, **kwargs: object) -> Window:
        raise AssertionError("the decoder ran on an oversized message")

    monkeypatch.setattr(ingress, "decode_window", must_not_decode)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        out = _check(_record(huge, b"p-1"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(out, DeadLetter) and "refused before decoding" in out.reason
    assert out.extra == {"truncated": True, "size_bytes": len(huge)}
    assert peak - base < 1_000_000, f"{peak - base} bytes allocated for a {len(huge)}-byte message"
