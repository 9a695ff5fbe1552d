"""Packed waveforms: a window's samples as one short base64 string, for one InfluxDB point per lead.

Why: one point per sample made the raw lead I 500 of a window's ~501 InfluxDB points. Packed, a
10 s window at its native rate is one point of about 3 kB (``ecg_strip``, ``ecgmon.points``), and
full disclosure decodes it back (``ecgmon.full_disclosure``).

Encoding (codec 1), chosen by measurement on 651 ten-second cinc2017 windows at 250 Hz (1 µV steps):

* quantise to int16 counts of ``scale`` mV: ``scale`` is the resolution (1 µV, the wire contract's
  ``DEFAULT_GAIN``) unless the window's peak needs a coarser step to fit ±32,767 counts; -32,768
  stands for a missing sample (NaN). Windows sent as int16 at the default gain come back exactly.
* first differences (int16, wrapping), bytes shuffled (all low bytes, then all high bytes: the
  high bytes of ECG differences are nearly all 0x00 or 0xFF), zlib level 1, base64.

Measured: 2,936 characters per window on average (raw int16 base64: 6,668; differences + zlib
without the shuffle: 3,095; zlib level 6: 2,678 for 1.7x the CPU), 84 µs to encode on this machine.
Base64 holds no quote or backslash, so it needs no escaping in line protocol.

Payload bytes (before base64): one codec byte (1), then the zlib stream. ``decode`` checks each
part and raises ``ContractError`` saying what is wrong, and never inflates beyond ``2 * n`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from dataclasses import dataclass

import numpy as np

from ecgmon.contracts import DEFAULT_GAIN
from ecgmon.errors import ContractError

CODEC = 1
"""The payload's first byte: int16 differences, byte-shuffled, zlib, base64."""
RESOLUTION_MV = 1.0 / DEFAULT_GAIN
"""The finest step a packed sample keeps (1 µV): the wire contract's own int16 resolution."""
MAX_COUNT = 32_767
MISSING = -32_768
"""The count that stands for a missing (NaN) sample."""
MAX_SAMPLES = 16_384
"""Most samples in one payload: even incompressible, its text stays under InfluxDB's 64 KB string limit."""
_ZLIB_LEVEL = 1


@dataclass(frozen=True)
class Packed:
    """One packed waveform: ``data`` (base64 text), ``n`` samples, ``scale`` mV per count."""

    data: str
    n: int
    scale: float


def waveform_encode(x: np.ndarray, *, resolution_mv: float = RESOLUTION_MV) -> Packed:
    """Pack ``x`` (mV, ``[n]``, NaN = missing) to int16 counts of at least ``resolution_mv`` each.

    Each sample comes back within ``scale / 2`` (``scale`` = ``resolution_mv``, or the peak / 32,767
    when the peak needs it). Raises ``ValueError`` for an array that is not 1-D, empty, longer than
    ``MAX_SAMPLES`` or holds an infinity.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or not 1 <= arr.shape[0] <= MAX_SAMPLES:
        raise ValueError(f"a packed waveform holds 1 to {MAX_SAMPLES} samples in one row, got shape {arr.shape}.")
    if not (math.isfinite(resolution_mv) and resolution_mv > 0):
        raise ValueError(f"resolution_mv {resolution_mv!r} must be a positive number of mV.")
    if np.isinf(arr).any():
        raise ValueError("a packed waveform cannot hold an infinite sample.")
    missing = np.isnan(arr)
    peak = float(np.max(np.abs(arr[~missing]))) if not missing.all() else 0.0
    scale = max(float(resolution_mv), peak / MAX_COUNT)
    counts = np.clip(np.rint(np.where(missing, 0.0, arr) / scale), -MAX_COUNT, MAX_COUNT).astype("<i2")
    counts[missing] = MISSING
    diffs = np.diff(counts, prepend=np.int16(0)).astype("<i2")  # wraps modulo 2**16; the sum unwraps it
    shuffled = diffs.view(np.uint8).reshape(-1, 2).T.tobytes()
    payload = bytes([CODEC]) + zlib.compress(shuffled, _ZLIB_LEVEL)
    return Packed(base64.b64encode(payload).decode("ascii"), int(arr.shape[0]), scale)


def waveform_decode(data: str, *, n: int, scale: float) -> np.ndarray:
    """The ``n`` samples (mV, float64, NaN where missing) of a packed waveform; ``ContractError`` if malformed."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SAMPLES:
        raise ContractError(f"packed waveform: n {n!r} must be an integer from 1 to {MAX_SAMPLES}.")
    if not isinstance(scale, float | int) or not (math.isfinite(scale) and scale > 0):
        raise ContractError(f"packed waveform: scale {scale!r} must be a positive number of mV per count.")
    if not isinstance(data, str):
        raise ContractError(f"packed waveform: data must be base64 text, got {type(data).__name__}.")
    try:
        payload = base64.b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ContractError("packed waveform: data is not base64 text.") from None
    if len(payload) < 2:
        raise ContractError(f"packed waveform: {len(payload)} byte(s) of payload is too short for codec and samples.")
    if payload[0] != CODEC:
        raise ContractError(f"packed waveform: codec {payload[0]} is unknown (this ecgmon reads codec {CODEC}).")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload[1:], 2 * n)
    except zlib.error as exc:
        raise ContractError(f"packed waveform: the compressed samples are corrupt ({exc}).") from None
    if len(raw) != 2 * n or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise ContractError(f"packed waveform: the payload does not hold exactly {n} samples.")
    diffs = np.frombuffer(raw, dtype=np.uint8).reshape(2, n).T.copy().view("<i2").reshape(n)
    counts = np.cumsum(diffs, dtype=np.int16)
    out = counts.astype(np.float64) * float(scale)
    out[counts == MISSING] = np.nan
    return out
