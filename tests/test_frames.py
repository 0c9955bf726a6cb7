"""Frames: encoding, checks before allocation, and a reader that stops at the first bad frame."""

from __future__ import annotations

import io
import struct

import pytest

from biocompress.container import frames
from biocompress.container.frames import FrameReader, FrameType
from biocompress.errors import CorruptArchiveError


def _stream(*payloads: bytes, first_seq: int = 0) -> bytes:
    return b"".join(frames.encode(FrameType.NOTE, first_seq + i, p) for i, p in enumerate(payloads))


def _read(data: bytes, **kw):
    reader = FrameReader(io.BytesIO(data), max_payload=kw.pop("max_payload", 1 << 20), **kw)
    return [(off, f.kind, f.seq, f.payload) for off, f in reader], reader


def test_frames_round_trip_with_offsets():
    payloads = [b"", b"x", bytes(range(256)) * 3]
    data = _stream(*payloads)
    found, reader = _read(data)
    assert [p for *_, p in found] == payloads
    assert [seq for _, _, seq, _ in found] == [0, 1, 2]
    for off, _, _, payload in found:
        assert data[off : off + len(payload)] == payload
    assert reader.good_end == len(data) and reader.stopped is None


def test_header_layout_is_the_documented_one():
    raw = frames.encode(FrameType.BLOCK, 7, b"abc")
    tag, length, seq, crc = struct.unpack_from("<4sIQI", raw)
    assert tag == b"BCF" + bytes([FrameType.BLOCK]) and (length, seq) == (3, 7)
    import zlib

    assert crc == zlib.crc32(raw[:16] + b"abc")


@pytest.mark.parametrize("cut", [1, 19, 20, 25])
def test_reader_stops_at_an_incomplete_frame(cut):
    good = _stream(b"first", b"second")
    extra = frames.encode(FrameType.NOTE, 2, b"third frame's payload")
    found, reader = _read(good + extra[:cut])
    assert [p for *_, p in found] == [b"first", b"second"]
    assert reader.good_end == len(good) and reader.stopped


def test_reader_stops_at_a_damaged_frame_and_never_after_it():
    data = bytearray(_stream(b"one", b"two", b"three"))
    second = len(frames.encode(FrameType.NOTE, 0, b"one"))
    data[second + 21] ^= 0x01  # a payload byte of frame 1
    found, reader = _read(bytes(data))
    assert [p for *_, p in found] == [b"one"]
    assert reader.good_end == second and "CRC" in reader.stopped


def test_reader_stops_at_a_sequence_gap_and_unknown_types():
    data = _stream(b"a") + frames.encode(FrameType.NOTE, 5, b"b")
    found, reader = _read(data)
    assert len(found) == 1 and "sequence" in reader.stopped
    data = _stream(b"a") + frames.encode(99, 1, b"b")
    found, reader = _read(data)
    assert len(found) == 1 and "type" in reader.stopped


def test_declared_length_is_checked_before_anything_is_read():
    class Tracking(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            Tracking.largest = max(Tracking.largest, n)
            return super().read(n)

    for declared, why in ((0x3FFFFFF0, "incomplete"), (0xFFFFFFF0, "allowed")):
        head = struct.pack("<4sIQ", b"BCF" + bytes([FrameType.NOTE]), declared, 1)
        data = _stream(b"ok") + head + struct.pack("<I", 0) + b"tail"
        reader = FrameReader(Tracking(data), max_payload=1 << 30)
        assert [f.payload for _, f in reader] == [b"ok"]
        assert why in reader.stopped and Tracking.largest < 1 << 16  # never asked for the declared size
        with pytest.raises(frames.FrameError):
            frames.parse_header(head + b"\0\0\0\0", max_payload=1 << 20)


def test_parse_header_rejects_what_is_not_a_frame():
    with pytest.raises(frames.FrameError):
        frames.parse_header(b"XYZ" + bytes(17), max_payload=100)
    with pytest.raises(frames.FrameError):
        frames.parse_header(b"BCF", max_payload=100)
    head = frames.parse_header(frames.encode(FrameType.END, 3, b"{}")[:20], max_payload=100)
    assert head.check(b"{}").payload == b"{}"
    with pytest.raises(frames.FrameError):
        head.check(b"{ }")


def test_json_payloads_are_strict():
    frame = frames.Frame(FrameType.NOTE, 0, frames.json_payload({"text": "é", "x": 1.5}))
    assert frames.parse_json(frame, "NOTE") == {"text": "é", "x": 1.5}
    with pytest.raises(ValueError):
        frames.json_payload({"x": float("nan")})
    for bad in (b"[1, 2]", b"{\"x\": NaN}", b"\xff\xfe", b"{"):
        with pytest.raises(CorruptArchiveError):
            frames.parse_json(frames.Frame(FrameType.NOTE, 4, bad), "NOTE")


def test_block_payload_round_trip():
    payload = frames.block_payload(10, 20, 0, 3, 2, b"coded")
    frame = frames.Frame(FrameType.BLOCK, 1, payload)
    assert frames.parse_block(frame) == (10, 20, 0, 3, 2)
    assert payload[frames.BLOCK_HEAD.size :] == b"coded"
    with pytest.raises(CorruptArchiveError):
        frames.parse_block(frames.Frame(FrameType.BLOCK, 1, payload[:5]))
