"""The byte layout of an EDF/EDF+/BDF/BDF+ file, read independently of MNE.

An archive that can hand back the very file it was made from needs what MNE's
reader does not keep: the header bytes verbatim, the record layout (samples per
record of every signal, annotation signals included) and any bytes after the
last complete record. Data records are ``n_records`` repetitions of every
signal's ``samples_per_record`` little-endian integers (2 bytes in EDF, 3 in
BDF), signal after signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError

ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")
_TIMEKEEPING = re.compile(rb"^([+-]\d+(?:\.\d*)?)\x14\x14")
_BDF_MAGIC = b"\xffBIOSEMI"


@dataclass
class EdfLayout:
    header: bytes  # 256 · (n_signals + 1) bytes, verbatim
    width: int  # bytes per sample: 2 (EDF) or 3 (BDF)
    samples_per_record: np.ndarray  # int64 per signal
    labels: list[str]
    n_records: int  # complete data records in the file (the header's count may differ)
    file_size: int

    @property
    def n_signals(self) -> int:
        return len(self.labels)

    @property
    def data_offset(self) -> int:
        return len(self.header)

    @property
    def record_bytes(self) -> int:
        return int(self.samples_per_record.sum()) * self.width

    @property
    def signal_offsets(self) -> np.ndarray:
        """Byte offset of each signal inside a data record."""
        return np.concatenate([[0], np.cumsum(self.samples_per_record)[:-1]]).astype(np.int64) * self.width

    @property
    def tail_offset(self) -> int:
        """Where the bytes after the last complete record start."""
        return self.data_offset + self.n_records * self.record_bytes

    @property
    def header_records(self) -> int:
        """The record count the header states (-1: unknown), as written."""
        return int(self.header[236:244].decode("ascii", "replace").strip() or -1)

    @property
    def kind(self) -> str:
        base = "BDF" if self.width == 3 else "EDF"
        reserved = self.header[192:197].decode("ascii", "replace")
        return f"{base}+{reserved[4]}" if reserved[:4] in ("EDF+", "BDF+") and reserved[4:5] in "CD" else base

    def is_annotation(self, s: int) -> bool:
        return self.labels[s] in ANNOTATION_LABELS


def _field(path: Path, raw: bytes, what: str) -> int:
    try:
        return int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise BadInputError(path, f"garbled EDF/BDF header: {what} is {raw!r}, not a number") from None


def read_layout(path) -> EdfLayout:
    """Parse the header of an EDF/BDF file; BadInputError names the field that is wrong."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
        if len(head) < 256:
            raise BadInputError(path, f"the EDF/BDF header is cut: the file has {len(head)} bytes, "
                                "a header needs at least 256")
        # like MNE's reader, the extension decides the sample width
        width = 3 if path.suffix.lower() == ".bdf" or head[:8] == _BDF_MAGIC else 2
        n_signals = _field(path, head[252:256], "the number of signals")
        header_bytes = _field(path, head[184:192], "the header size")
        if not 0 < n_signals <= 100_000:
            raise BadInputError(path, f"garbled EDF/BDF header: {n_signals} signals")
        if header_bytes != 256 * (n_signals + 1):
            raise BadInputError(path, f"EDF/BDF header says it is {header_bytes} bytes; "
                                f"{n_signals} signals make it {256 * (n_signals + 1)}")
        rest = f.read(256 * n_signals)
    if len(rest) < 256 * n_signals:
        raise BadInputError(path, f"the EDF/BDF header is cut: the file has {size} bytes, its header "
                            f"({n_signals} signals) needs {header_bytes}; the file was cut short or its header is garbled")
    header = head + rest
    labels = [rest[16 * i : 16 * (i + 1)].decode("latin-1").strip() for i in range(n_signals)]
    base = 216 * n_signals  # label, transducer, dimension, 4 ranges, prefiltering precede it
    spr = np.array([_field(path, rest[base + 8 * i : base + 8 * (i + 1)], f"samples per record of signal {i}")
                    for i in range(n_signals)], np.int64)
    if (spr < 1).any():
        raise BadInputError(path, f"garbled EDF/BDF header: signal {int(np.argmin(spr))} has "
                            f"{int(spr.min())} samples per record")
    record = int(spr.sum()) * width
    n_records = (size - len(header)) // record
    return EdfLayout(header, width, spr, labels, int(n_records), size)


def is_edf(path) -> bool:
    return Path(path).suffix.lower() in (".edf", ".bdf", ".rec")


def read_records(path, layout: EdfLayout, r0: int = 0, r1: int | None = None) -> np.ndarray:
    """Data records [r0, r1) as uint8 (r1 - r0, record_bytes)."""
    r1 = layout.n_records if r1 is None else r1
    if r1 <= r0:
        return np.zeros((0, layout.record_bytes), np.uint8)
    data = np.memmap(path, np.uint8, mode="r", offset=layout.data_offset + r0 * layout.record_bytes,
                     shape=(r1 - r0, layout.record_bytes))
    return np.array(data)


def signal_values(path, layout: EdfLayout, s: int, r0: int = 0, r1: int | None = None,
                  records: np.ndarray | None = None) -> np.ndarray:
    """Digital values of signal ``s`` in records [r0, r1) as int64 (``records``: those
    records, already read)."""
    b = signal_bytes(path, layout, s, r0, r1, records).reshape(-1, layout.width)
    if layout.width == 2:
        return b.copy().view("<i2").ravel().astype(np.int64)
    v = b.astype(np.int64)
    v = v[:, 0] | (v[:, 1] << 8) | (v[:, 2] << 16)
    return np.where(v >= 1 << 23, v - (1 << 24), v)


def signal_bytes(path, layout: EdfLayout, s: int, r0: int = 0, r1: int | None = None,
                 records: np.ndarray | None = None) -> np.ndarray:
    """Bytes of signal ``s`` in records [r0, r1): uint8 (r1 - r0, samples_per_record · width)."""
    records = read_records(path, layout, r0, r1) if records is None else records
    first = int(layout.signal_offsets[s])
    return np.ascontiguousarray(records[:, first : first + int(layout.samples_per_record[s]) * layout.width])


def values_to_bytes(values: np.ndarray, width: int) -> np.ndarray:
    """Little-endian two's-complement bytes of integer samples, ``width`` bytes each."""
    v = np.asarray(values, np.int64)
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"sample values outside the {8 * width}-bit range")
    if width == 2:
        return v.astype("<i2").view(np.uint8)
    u = (v & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
    return np.ascontiguousarray(u).ravel()


def assemble_records(layout: EdfLayout, columns: list[np.ndarray]) -> bytes:
    """Data records from each signal's bytes (uint8 (n, samples_per_record · width) each)."""
    n = columns[0].shape[0] if columns else 0
    out = np.empty((n, layout.record_bytes), np.uint8)
    for s, (first, col) in enumerate(zip(layout.signal_offsets, columns)):
        out[:, first : first + col.shape[1]] = col
    return out.tobytes()


def record_onsets(path, layout: EdfLayout) -> np.ndarray | None:
    """EDF+/BDF+ record start times (s) from each record's time-keeping annotation, or
    None without an annotation signal. In EDF+D files, gaps show as jumps between them."""
    tal = [s for s in range(layout.n_signals) if layout.is_annotation(s)]
    if not tal or layout.n_records == 0:
        return None
    onsets = np.full(layout.n_records, np.nan)
    for r, rec in enumerate(signal_bytes(path, layout, tal[0])):
        m = _TIMEKEEPING.match(rec.tobytes())
        if m:
            onsets[r] = float(m.group(1))
    return onsets
