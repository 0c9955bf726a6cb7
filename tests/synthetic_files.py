"""Recordings written byte by byte for tests that need a file of a given shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _field(value, width: int) -> bytes:
    text = str(value).encode("ascii")
    assert len(text) <= width, (value, width)
    return text.ljust(width)


def write_edf(path, codes: np.ndarray, sfreq: int, *, labels=None, record_s: int = 1) -> Path:
    """A plain EDF file holding ``codes`` (n_signals, n_samples) int16 as its digital values,
    ``record_s``-second records (samples beyond the last whole record are dropped)."""
    path = Path(path)
    n_sig, n = codes.shape
    per_record = sfreq * record_s
    n_records = n // per_record
    labels = labels or [f"EEG{i:04d}" for i in range(n_sig)]

    def each(value, width):
        return b"".join(_field(value, width) for _ in range(n_sig))

    header = (_field(0, 8) + _field("X X X X", 80) + _field("Startdate 01-JAN-2020 X X X", 80)
              + _field("01.01.20", 8) + _field("00.00.00", 8) + _field(256 * (n_sig + 1), 8) + _field("", 44)
              + _field(n_records, 8) + _field(record_s, 8) + _field(n_sig, 4))
    header += b"".join(label.encode("utf-8").ljust(16)[:16] for label in labels)
    header += each("AgAgCl electrode", 80) + each("uV", 8) + each(-3276.8, 8) + each(3276.7, 8)
    header += each(-32768, 8) + each(32767, 8) + each("", 80) + each(per_record, 8) + each("", 32)
    data = codes[:, : n_records * per_record].astype("<i2")
    records = data.reshape(n_sig, n_records, per_record).transpose(1, 0, 2)
    path.write_bytes(header + records.tobytes())
    return path


def random_walk_codes(n_signals: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """EEG-like int16 codes: a random walk per signal."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.integers(-20, 21, (n_signals, n_samples), dtype=np.int64), axis=1)
    return np.clip(walk, -32768, 32767).astype(np.int16)
