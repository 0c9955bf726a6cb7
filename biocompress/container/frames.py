"""Frames: the unit of a live archive's journal file and of a network stream (docs/FORMAT.md §11).

A frame is a 20-byte header followed by its payload::

    offset  size  field
    0       4     "BCF" and the frame type (one byte): u32 magic-and-type
    4       4     u32 payload length
    8       8     u64 sequence number (0, 1, 2, … in a journal)
    16      4     u32 CRC-32 of the header's first 16 bytes and of the payload
    20      len   payload: JSON (UTF-8) or a packed block, by type

Whatever reads frames reads untrusted bytes: a length is checked against a declared
limit before anything is allocated for the payload, and a reader of a file stops at
the first frame that is incomplete, damaged or out of sequence, saying how far it got.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from ..errors import CorruptArchiveError

MAGIC = b"BCF"
HEAD = struct.Struct("<4sIQI")  # magic-and-type, payload length, sequence number, CRC-32
BLOCK_HEAD = struct.Struct("<qqiiH")  # t_start, t_stop, ch_start, ch_stop, codec number (BLOCK, TIMES)
MAX_JSON_BYTES = 64 << 20


class FrameType(IntEnum):
    HEADER = 1  # the stream description (JSON): what the archive's metadata is made from
    CODEC = 2  # a codec configuration, numbered in order of appearance (JSON)
    BLOCK = 3  # a coded block of samples (BLOCK_HEAD + the block's bytes)
    TIMES = 4  # a coded block of the samples' timestamps (BLOCK_HEAD, channels [0, 1))
    MARKERS = 5  # annotations: onsets, durations, descriptions, marker timestamps (JSON)
    CLOCK = 6  # clock offsets measured against the source's clock (JSON)
    NOTE = 7  # a remark to keep in the archive's provenance, e.g. why a stream stopped (JSON)
    END = 8  # a clean stop: final counts and digests (JSON)
    # 16–31: reserved for the network protocol (biocompress.stream.net)


class FrameError(CorruptArchiveError):
    """A frame that is incomplete, damaged, out of sequence or larger than allowed."""


@dataclass(frozen=True)
class Frame:
    kind: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class FrameHeader:
    kind: int
    length: int
    seq: int
    crc: int
    raw: bytes

    def check(self, payload: bytes) -> Frame:
        """The frame, once the payload's length and CRC match the header."""
        if len(payload) != self.length:
            raise FrameError(f"frame {self.seq}: {len(payload)} payload bytes, header says {self.length}")
        if zlib.crc32(payload, zlib.crc32(self.raw[:16])) != self.crc:
            raise FrameError(f"frame {self.seq}: CRC-32 mismatch")
        return Frame(self.kind, self.seq, payload)


def encode(kind: int, seq: int, payload: bytes) -> bytes:
    """One frame's bytes."""
    head = struct.pack("<4sIQ", MAGIC + bytes([int(kind)]), len(payload), seq)
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def parse_header(raw: bytes, max_payload: int) -> FrameHeader:
    """The 20 header bytes, checked before the payload is read: magic, type, declared length."""
    if len(raw) != HEAD.size:
        raise FrameError(f"incomplete frame header ({len(raw)} of {HEAD.size} bytes)")
    tag, length, seq, crc = HEAD.unpack(raw)
    if tag[:3] != MAGIC:
        raise FrameError("not a frame (bad magic)")
    if length > max_payload:
        raise FrameError(f"frame {seq} declares {length} payload bytes, more than the {max_payload} allowed")
    return FrameHeader(tag[3], length, seq, crc, bytes(raw))


class FrameReader:
    """Frames of a binary file, from its current position, in order.

    Iteration stops at the first frame that is incomplete, fails its checks or breaks the
    sequence (``first_seq``, ``first_seq + 1``, …); ``good_end`` is then the offset just after
    the last valid frame and ``stopped`` says why (None: the file ended cleanly there).
    Payloads are never read past ``max_payload`` bytes nor past the end of the file.
    """

    def __init__(self, f, *, max_payload: int, first_seq: int = 0, kinds=None):
        self.f = f
        self.max_payload = max_payload
        self.next_seq = first_seq
        self.kinds = set(int(k) for k in (kinds if kinds is not None else FrameType))
        self.good_end = f.tell()
        self.stopped: str | None = None
        f.seek(0, 2)
        self._size = f.tell()
        f.seek(self.good_end)

    def __iter__(self):
        while True:
            offset = self.good_end
            raw = self.f.read(HEAD.size)
            if not raw:
                return
            try:
                head = parse_header(raw, self.max_payload)
                if head.length > self._size - offset - HEAD.size:
                    raise FrameError(f"frame {head.seq} is incomplete ({self._size - offset - HEAD.size} of "
                                     f"{head.length} payload bytes)")
                if head.kind not in self.kinds:
                    raise FrameError(f"frame {head.seq} has unknown type {head.kind}")
                if head.seq != self.next_seq:
                    raise FrameError(f"frame {head.seq} out of sequence (expected {self.next_seq})")
                frame = head.check(self.f.read(head.length))
            except FrameError as exc:
                self.stopped = str(exc)
                self.f.seek(offset)
                return
            self.good_end = offset + HEAD.size + head.length
            self.next_seq += 1
            yield offset + HEAD.size, frame


# --- payloads ---------------------------------------------------------------------
def json_payload(obj) -> bytes:
    """Strict JSON (no NaN or infinity), UTF-8."""
    return json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(frame: Frame, what: str) -> dict:
    """A JSON object payload, or CorruptArchiveError naming the frame."""
    if len(frame.payload) > MAX_JSON_BYTES:
        raise CorruptArchiveError(f"{what} frame {frame.seq}: {len(frame.payload)} bytes of JSON is too much")
    try:
        obj = json.loads(frame.payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptArchiveError(f"{what} frame {frame.seq}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CorruptArchiveError(f"{what} frame {frame.seq}: not a JSON object")
    return obj


def block_payload(t_start: int, t_stop: int, ch_start: int, ch_stop: int, codec: int, data: bytes) -> bytes:
    return BLOCK_HEAD.pack(t_start, t_stop, ch_start, ch_stop, codec) + data


def parse_block(frame: Frame) -> tuple[int, int, int, int, int]:
    """(t_start, t_stop, ch_start, ch_stop, codec number) of a BLOCK or TIMES frame; the coded
    bytes are ``frame.payload[BLOCK_HEAD.size:]``."""
    if len(frame.payload) < BLOCK_HEAD.size:
        raise CorruptArchiveError(f"block frame {frame.seq} is shorter than its block header")
    return BLOCK_HEAD.unpack_from(frame.payload)
