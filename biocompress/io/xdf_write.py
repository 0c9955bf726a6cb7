"""Write XDF files: an archived XDF recording given back (``restore -o x.xdf``), and small
recordings made up for tests and fixtures.

The file holds the FileHeader, every StreamHeader and StreamFooter XML as given (verbatim),
the samples in chunks, and the clock offsets; chunks of all streams are merged in time order
as a recorder writes them. A sample's timestamp is left out where a reader deduces it
exactly (the previous timestamp plus ``1 / nominal_srate``, as pyxdf and LabRecorder do), so
reading the file back gives every timestamp bit for bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from .xdf_chunks import (
    BOUNDARY,
    CLOCK_OFFSET,
    FILE_HEADER,
    MAGIC,
    SAMPLES,
    STREAM_FOOTER,
    STREAM_HEADER,
    STRING,
    VALUE_DTYPES,
)

CHUNK_SAMPLES = 1024


@dataclass
class StreamToWrite:
    """One stream of an XDF file to write. ``values``: (n, channels) of the stream's format,
    or for a string stream n lists of ``channel_count`` strings."""

    stream_id: int
    header_xml: bytes
    channel_format: str
    nominal_srate: float
    channel_count: int
    values: object
    timestamps: np.ndarray
    clock_times: np.ndarray | None = None
    clock_values: np.ndarray | None = None
    footer_xml: bytes | None = None


def write_xdf(f, file_header_xml: bytes, streams: list[StreamToWrite], *, chunk_samples: int = CHUNK_SAMPLES,
              omit_deducible: bool = True, boundary: bool = False) -> None:
    """Write an XDF file to the binary file object ``f``."""
    f.write(MAGIC)
    f.write(_chunk(FILE_HEADER, bytes(file_header_xml)))
    for s in streams:
        f.write(_chunk(STREAM_HEADER, struct.pack("<I", s.stream_id) + bytes(s.header_xml)))
    timed = []  # (time, order, chunk bytes): samples and clock offsets of every stream, merged by time
    for s in streams:
        timed += _sample_chunks(s, chunk_samples, omit_deducible)
        times = np.asarray(s.clock_times if s.clock_times is not None else [], np.float64)
        offsets = np.asarray(s.clock_values if s.clock_values is not None else [], np.float64)
        for t, v in zip(times, offsets):
            timed.append((float(t), _chunk(CLOCK_OFFSET, struct.pack("<Idd", s.stream_id, t, v))))
    order = sorted(range(len(timed)), key=lambda i: (_sort_time(timed[i][0]), i))
    for n, i in enumerate(order):
        if boundary and n and n % 64 == 0:
            f.write(_chunk(BOUNDARY, bytes(range(16))))
        f.write(timed[i][1])
    for s in streams:
        if s.footer_xml is not None:
            f.write(_chunk(STREAM_FOOTER, struct.pack("<I", s.stream_id) + bytes(s.footer_xml)))


def _sort_time(t: float) -> float:
    return t if np.isfinite(t) else float("inf")


def _varlen(n: int) -> bytes:
    if n < 1 << 8:
        return bytes([1, n])
    if n < 1 << 32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _sample_chunks(s: StreamToWrite, chunk_samples: int, omit_deducible: bool) -> list[tuple[float, bytes]]:
    stamps = np.asarray(s.timestamps, np.float64)
    n = stamps.size
    step = 1.0 / s.nominal_srate if s.nominal_srate > 0 else 0.0
    # a reader deduces a left-out timestamp as the previous one (0.0 before the first) plus step
    previous = np.concatenate([[0.0], stamps[:-1]])
    deducible = (previous + step).view(np.int64) == stamps.view(np.int64) if omit_deducible else np.zeros(n, bool)
    if s.channel_format == STRING:
        rows = [b"".join(_varlen(len(b)) + b for b in (v.encode("utf-8") for v in row)) for row in s.values]
    else:
        values = np.ascontiguousarray(np.asarray(s.values).astype(VALUE_DTYPES[s.channel_format]))
        rows = [values[i].tobytes() for i in range(n)]
    out = []
    for c0 in range(0, n, chunk_samples):
        c1 = min(n, c0 + chunk_samples)
        body = [struct.pack("<I", s.stream_id), _varlen(c1 - c0)]
        for i in range(c0, c1):
            body.append(b"\x00" if deducible[i] else b"\x08" + struct.pack("<d", stamps[i]))
            body.append(rows[i])
        out.append((float(stamps[c0]), _chunk(SAMPLES, b"".join(body))))
    return out


def file_header_xml(datetime_text: str | None = None) -> bytes:
    """A FileHeader as LabRecorder writes it."""
    when = f"<datetime>{escape(datetime_text)}</datetime>" if datetime_text else ""
    return f'<?xml version="1.0"?>\n  <info>\n    <version>1.0</version>\n    {when}\n  </info>'.encode()


def stream_header_xml(name: str, stream_type: str, channel_count: int, nominal_srate: float, channel_format: str,
                      source_id: str = "", channels: list[dict] | None = None) -> bytes:
    """A StreamHeader; ``channels``: one dict per channel with any of ``label``, ``type``, ``unit``."""
    desc = ""
    if channels:
        items = "".join("<channel>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in ch.items()) + "</channel>"
                        for ch in channels)
        desc = f"<channels>{items}</channels>"
    return (f'<?xml version="1.0"?>\n<info><name>{escape(name)}</name><type>{escape(stream_type)}</type>'
            f"<channel_count>{channel_count}</channel_count><channel_format>{channel_format}</channel_format>"
            f"<source_id>{escape(source_id)}</source_id><nominal_srate>{nominal_srate!r}</nominal_srate>"
            f"<desc>{desc}</desc></info>").encode()


def stream_footer_xml(timestamps: np.ndarray, clock_times=(), clock_values=()) -> bytes:
    """A StreamFooter: first and last timestamp, sample count and the clock offsets."""
    t = np.asarray(timestamps, np.float64)
    first, last = (repr(float(t[0])), repr(float(t[-1]))) if t.size else ("0", "0")
    offsets = "".join(f"<offset><time>{float(a)!r}</time><value>{float(b)!r}</value></offset>"
                      for a, b in zip(clock_times, clock_values))
    return (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp><last_timestamp>{last}'
            f"</last_timestamp><sample_count>{t.size}</sample_count><clock_offsets>{offsets}</clock_offsets>"
            "</info>").encode()
