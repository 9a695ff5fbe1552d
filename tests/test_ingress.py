"""Ingress: every malformed record becomes a dead-letter envelope with its origin; good ones decode."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgmon.contracts import DeadLetter, Window, encode_window
from streams.ingress import Record, dead_letter, decode_or_dead_letter

MAX = 65_536


def _window(patient: str = "p-1") -> Window:
    t = np.arange(2500) / 250.0
    return Window(patient_id=patient, device_id="dev", seq=7, t_start_ns=10**18, fs_hz=250.0, samples=np.sin(t))


def _record(value: bytes | None, key: bytes | None = b"p-1") -> Record:
    return Record(key=key, value=value, topic="ecg.windows", partition=3, offset=42)


def test_valid_window_decodes() -> None:
    w = _window()
    out = decode_or_dead_letter(_record(encode_window(w)), max_bytes=MAX)
    assert isinstance(out, Window) and out.patient_id == "p-1" and out.seq == 7


def test_envelope_keeps_origin_key_bytes_and_reason() -> None:
    env = dead_letter(_record(b"\x00\x01junk"), "because", t_ns=5, note="x")
    back = DeadLetter.from_bytes(env.to_bytes())
    assert back == env
    assert (back.topic, back.partition, back.offset, back.key) == ("ecg.windows", 3, 42, "p-1")
    assert bytes.fromhex(back.value_hex) == b"\x00\x01junk"
    assert back.reason == "because" and back.t_ns == 5 and back.extra == {"note": "x"}


def test_every_kind_of_malformed_message_is_dead_lettered_with_a_reason() -> None:
    good = encode_window(_window())
    nan = bytearray(encode_window(_window(), encoding="float32"))
    nan[-4:] = struct.pack("<f", float("nan"))
    wrong_version = bytearray(good)
    wrong_version[4] = 99
    cases = {
        "random": (np.random.default_rng(0).bytes(300), "magic"),
        "empty": (b"", "empty"),
        "none": (None, "empty"),
        "truncated": (good[:-10], "announces"),
        "header only": (good[:20], "shorter than"),
        "nan": (bytes(nan), "NaN"),
        "oversized": (b"ECGW" + b"\x00" * MAX, "exceeds"),
        "wrong version": (bytes(wrong_version), "schema version 99"),
        "text": (b'{"patient_id": "p-1", "device_id": "d", "samples": [1.0, 2.0, 3.0, 4.0]}', "magic"),
    }
    for name, (value, reason) in cases.items():
        out = decode_or_dead_letter(_record(value), max_bytes=MAX, keep_bytes=1024)
        assert isinstance(out, DeadLetter), name
        assert reason in out.reason, (name, out.reason)
        assert out.key == "p-1" and out.partition == 3 and out.offset == 42
        original = b"" if value is None else value
        assert bytes.fromhex(out.value_hex) == original[:1024], name
        assert out.extra.get("truncated", False) == (len(original) > 1024), name


def test_key_must_match_patient_id() -> None:
    out = decode_or_dead_letter(_record(encode_window(_window("p-2"))), max_bytes=MAX)
    assert isinstance(out, DeadLetter) and "differs" in out.reason


def test_record_without_key_is_accepted() -> None:
    assert isinstance(decode_or_dead_letter(_record(encode_window(_window()), key=None), max_bytes=MAX), Window)


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=400), key=st.one_of(st.none(), st.binary(max_size=70)))
def test_arbitrary_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    out = decode_or_dead_letter(_record(value, key), max_bytes=MAX)
    assert isinstance(out, (Window, DeadLetter))
    if isinstance(out, DeadLetter):
        DeadLetter.from_bytes(out.to_bytes())  # the envelope is always valid JSON


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=0, max_value=5047), flip=st.integers(min_value=0, max_value=255))
def test_corrupted_windows_never_raise(cut: int, flip: int) -> None:
    data = bytearray(encode_window(_window()))
    if cut < len(data):
        data[cut] ^= flip
    out = decode_or_dead_letter(_record(bytes(data)), max_bytes=MAX)
    assert isinstance(out, (Window, DeadLetter))
