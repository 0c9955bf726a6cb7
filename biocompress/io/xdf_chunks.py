"""The XDF container's chunks, read strictly.

An XDF file (https://github.com/sccn/xdf/wiki/Specifications) is the 4 bytes ``XDF:``
then chunks: a length (one byte saying how many bytes the length takes: 1, 4 or 8, then the
little-endian length), a u16 tag and the content. Tags: 1 FileHeader (XML), 2 StreamHeader,
3 Samples, 4 ClockOffset, 5 Boundary, 6 StreamFooter; 2, 3, 4 and 6 start with a u32 stream id.

pyxdf reads the samples; this scan keeps what pyxdf only parses (the header and footer XML,
byte for byte) and refuses what pyxdf would silently skip over: a length field, tag or
stream id that cannot be right is damage. A file that ends inside its last chunk (a
recorder that was stopped hard) is accepted, and the scan says how much was cut off.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree

from ..errors import BadInputError

MAGIC = b"XDF:"
FILE_HEADER, STREAM_HEADER, SAMPLES, CLOCK_OFFSET, BOUNDARY, STREAM_FOOTER = 1, 2, 3, 4, 5, 6
WITH_STREAM_ID = (STREAM_HEADER, SAMPLES, CLOCK_OFFSET, STREAM_FOOTER)
MAX_XML_BYTES = 64 << 20  # a header or footer larger than this is not one a recorder wrote

# channel_format → little-endian numpy dtype of one value ("string" streams hold text)
VALUE_DTYPES = {"int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
                "float32": "<f4", "double64": "<f8"}
STRING = "string"
CHANNEL_FORMATS = (*VALUE_DTYPES, STRING)


def is_xdf_path(path) -> bool:
    """Whether ``path`` names an XDF file (``.xdf``, or gzip-compressed ``.xdfz`` / ``.xdf.gz``)."""
    name = Path(path).name.lower()
    return name.endswith((".xdf", ".xdfz", ".xdf.gz"))


def open_xdf(path):
    """The file's bytes (decompressed for ``.xdfz`` / ``.xdf.gz``), as a binary file object."""
    name = Path(path).name.lower()
    return gzip.open(path, "rb") if name.endswith((".xdfz", ".xdf.gz")) else open(path, "rb")


@dataclass
class ScannedStream:
    """What the chunks of one stream hold besides its sample values."""

    stream_id: int
    order: int  # position of its StreamHeader among the file's
    header_xml: bytes
    footer_xml: bytes | None = None
    n_samples: int = 0  # from the Samples chunks' counts
    n_clock_offsets: int = 0


@dataclass
class XdfLayout:
    """The chunk-level view of an XDF file."""

    file_header_xml: bytes
    streams: dict[int, ScannedStream] = field(default_factory=dict)  # by stream id, in file order
    cut_bytes: int = 0  # bytes of an incomplete last chunk (0: the file ends at a chunk boundary)
    cut_tag: int | None = None


class _Damage(Exception):
    pass


class _NotXdf(Exception):
    pass


class _Cut(Exception):
    """The file ends inside a chunk."""


class _Reader:
    def __init__(self, f, size: int | None):
        self.f, self.size, self.pos = f, size, 0

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        self.pos += len(data)
        if len(data) != n:
            raise _Cut
        return data

    def skip(self, n: int) -> None:
        if self.size is not None:  # a plain file: seek, after checking the bytes are there
            if self.pos + n > self.size:
                self.pos = self.size
                raise _Cut
            self.f.seek(n, os.SEEK_CUR)
            self.pos += n
            return
        while n:
            piece = self.take(min(n, 1 << 20))
            n -= len(piece)

    def varlen(self) -> int:
        width = self.take(1)[0]
        if width not in (1, 4, 8):
            raise _Damage(f"invalid length field (a {width}-byte length)")
        return int.from_bytes(self.take(width), "little")


def scan(path) -> XdfLayout:
    """Walk every chunk of the XDF file at ``path``.

    Raises
    ------
    BadInputError
        Not an XDF file, or a damaged one (naming the problem and the byte where it is).
    """
    path = Path(path)
    compressed = Path(path).name.lower().endswith((".xdfz", ".xdf.gz"))
    try:
        with open_xdf(path) as f:
            reader = _Reader(f, None if compressed else path.stat().st_size)
            try:
                return _scan(reader)
            except _Damage as exc:
                raise BadInputError(path, f"damaged XDF file: {exc} (at byte {reader.pos})") from None
            except _NotXdf:
                raise BadInputError(path, "not an XDF file (it does not start with 'XDF:')") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, (gzip.BadGzipFile, EOFError)):
            raise BadInputError(path, f"damaged compressed XDF file ({exc})") from None
        raise


def _scan(r: _Reader) -> XdfLayout:
    try:
        magic = r.take(len(MAGIC))
    except _Cut:
        magic = b""
    if magic != MAGIC:
        raise _NotXdf
    layout: XdfLayout | None = None
    while True:
        start, tag = r.pos, None
        try:
            head = r.f.read(1)
            if not head:
                break
            r.pos += 1
            width = head[0]
            if width not in (1, 4, 8):
                raise _Damage(f"invalid chunk length field (a {width}-byte length)")
            length = int.from_bytes(r.take(width), "little")
            if length < 2:
                raise _Damage(f"chunk of {length} bytes, too short for its tag")
            tag = struct.unpack("<H", r.take(2))[0]
            if not FILE_HEADER <= tag <= STREAM_FOOTER:
                raise _Damage(f"chunk with unknown tag {tag}")
            if layout is None and tag != FILE_HEADER:
                raise _Damage("the first chunk is not the FileHeader")
            if layout is not None and tag == FILE_HEADER:
                raise _Damage("a second FileHeader chunk")
            if tag == FILE_HEADER:
                layout = XdfLayout(file_header_xml=_xml(r, length - 2, "FileHeader"))
            elif tag == BOUNDARY:
                r.skip(length - 2)
            else:
                _chunk(r, layout, tag, length - 2)
        except _Cut:
            if layout is None:
                raise _Damage("the file ends inside its FileHeader") from None
            layout.cut_bytes, layout.cut_tag = r.pos - start, tag
            break
    if layout is None:
        raise _Damage("the file holds no FileHeader chunk")
    return layout


def _chunk(r: _Reader, layout: XdfLayout, tag: int, n: int) -> None:
    if n < 4:
        raise _Damage(f"chunk (tag {tag}) of {n + 2} bytes, too short for its stream id")
    stream_id = struct.unpack("<I", r.take(4))[0]
    n -= 4
    if tag == STREAM_HEADER:
        if stream_id in layout.streams:
            raise _Damage(f"a second StreamHeader for stream id {stream_id}")
        layout.streams[stream_id] = ScannedStream(stream_id, len(layout.streams),
                                                  _xml(r, n, f"StreamHeader of stream {stream_id}"))
        return
    stream = layout.streams.get(stream_id)
    if stream is None:
        raise _Damage(f"a chunk (tag {tag}) of stream id {stream_id}, which has no StreamHeader before it")
    if tag == SAMPLES:
        head = r.take(min(n, 9))
        width = head[0] if head else 0
        if width not in (1, 4, 8) or len(head) < 1 + width:
            raise _Damage(f"Samples chunk of stream {stream_id} with an invalid sample count field")
        r.skip(n - len(head))
        stream.n_samples += int.from_bytes(head[1 : 1 + width], "little")  # once the whole chunk is there
    elif tag == CLOCK_OFFSET:
        if n != 16:
            raise _Damage(f"ClockOffset chunk of stream {stream_id} holds {n} bytes, not 16")
        r.skip(16)
        stream.n_clock_offsets += 1
    else:  # STREAM_FOOTER
        if stream.footer_xml is not None:
            raise _Damage(f"a second StreamFooter for stream id {stream_id}")
        stream.footer_xml = _xml(r, n, f"StreamFooter of stream {stream_id}")


def _xml(r: _Reader, n: int, what: str) -> bytes:
    if n > MAX_XML_BYTES:
        raise _Damage(f"{what} declares {n} bytes of XML")
    text = r.take(n)
    try:
        text.decode("utf-8")
        ElementTree.fromstring(text)
    except (UnicodeDecodeError, ElementTree.ParseError) as exc:
        raise _Damage(f"{what} is not valid XML ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - defusedxml refuses entity tricks with its own errors
        raise _Damage(f"{what} is refused ({type(exc).__name__})") from None
    return text
