"""Ingress: turn one Kafka record into a ``Window`` or a dead-letter envelope, never an exception.

A bad message must not stop the worker: whatever the bytes are (random, empty, truncated, too
large, a wrong schema version, text), the answer is a ``DeadLetter`` carrying the reason, the
original key and bytes (hex) and where the record came from, sent to ``ecg.deadletter`` under the
original key so an operator can find, fix and replay it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ecgmon.contracts import DeadLetter, Window, decode_window
from ecgmon.errors import ContractError


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record: raw key and value with its origin."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int


def key_text(key: bytes | None) -> str | None:
    """The record key as text (invalid UTF-8 replaced), or None when the record had no key."""
    if key is None:
        return None
    return bytes(key).decode("utf-8", "replace")


KEEP_BYTES = 262_144
"""Default for ``Settings.deadletter_keep_bytes``: original bytes kept in an envelope (hex doubles them)."""


def dead_letter(
    record: Record, reason: str, *, keep_bytes: int = KEEP_BYTES, t_ns: int | None = None, **extra: object
) -> DeadLetter:
    """The envelope for ``record`` refused for ``reason``; ``extra`` adds context (JSON-able).

    At most ``keep_bytes`` of the original value are kept, so the envelope itself always fits in a
    Kafka message; a cut envelope says ``truncated`` and the original ``size_bytes``.
    """
    value = b"" if record.value is None else bytes(record.value)
    if len(value) > keep_bytes:
        extra = {**extra, "truncated": True, "size_bytes": len(value)}
        value = value[:keep_bytes]
    return DeadLetter(
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key_text(record.key),
        value_hex=value.hex(),
        t_ns=time.time_ns() if t_ns is None else t_ns,
        extra=dict(extra),
    )


def decode_or_dead_letter(record: Record, *, max_bytes: int, keep_bytes: int = KEEP_BYTES) -> Window | DeadLetter:
    """Decode and validate ``record.value``; a defect becomes a ``DeadLetter`` with the reason.

    Oversized values are refused before decoding. A window whose patient id differs from the
    record key is refused too: the key decides the partition, and so which worker keeps the
    patient's alert state.
    """
    value = record.value
    if value is None or len(value) == 0:
        return dead_letter(record, "empty message: a window payload was expected.", keep_bytes=keep_bytes)
    if len(value) > max_bytes:
        reason = f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit; refused before decoding."
        return dead_letter(record, reason, keep_bytes=keep_bytes)
    try:
        window = decode_window(bytes(value), max_bytes=max_bytes)
    except ContractError as exc:
        return dead_letter(record, str(exc), keep_bytes=keep_bytes)
    key = key_text(record.key)
    if key is not None and key != window.patient_id:
        reason = f"record key {key!r:.80} differs from the window's patient id {window.patient_id!r}."
        return dead_letter(record, reason, keep_bytes=keep_bytes)
    return window
