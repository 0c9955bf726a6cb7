"""Reading a journal (docs/FORMAT.md §11): every frame up to the first invalid one, and how
many samples they hold completely.

A frame that is incomplete or fails its CRC ends the reading (a crash or a power cut
left it so); a frame that passes its CRC but says something no writer writes (a block
out of order, a codec number never declared) makes the journal corrupt.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError, CorruptArchiveError
from ..codecs.base import MAX_DECODED_ELEMENTS
from . import frames
from .description import StreamDescription
from .frames import FrameType
from .journal import MAGIC, MAX_PAYLOAD
from .layout import DATA, TIMES


@dataclass(frozen=True)
class BlockFrame:
    """A coded block in the journal: its place in the recording and its bytes' place in the file."""

    section: str
    t_start: int
    t_stop: int
    ch_start: int
    ch_stop: int
    codec: int  # number of its CODEC frame
    offset: int
    length: int
    crc32: int


@dataclass
class JournalContents:
    """What a journal holds, up to its last valid frame.

    ``blocks`` are those within the first ``n_samples`` samples: every channel (and, for a
    stream with timestamps, the timestamps) covered exactly, cut where every lane's blocks
    end alike. ``beyond`` counts the samples of valid blocks past that point (lost to the
    crash); ``stopped`` says why reading stopped before the end of the file.
    """

    path: Path
    description: StreamDescription
    header_crc: int
    codecs: list[dict] = field(default_factory=list)
    blocks: list[BlockFrame] = field(default_factory=list)
    n_samples: int = 0
    beyond: int = 0
    markers: list[dict] = field(default_factory=list)
    clock: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    end: dict | None = None
    frames: int = 0
    valid_bytes: int = 0
    file_bytes: int = 0
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        """Ended cleanly (END frame), with every sample it counts and nothing after it."""
        return (self.end is not None and self.end.get("n_samples") == self.n_samples and self.beyond == 0
                and self.valid_bytes == self.file_bytes)

    @property
    def seconds(self) -> float:
        return self.n_samples / self.description.sfreq

    def end_digest(self, key: str) -> str | None:
        """A digest the END frame carries (``samples_sha256``, ``times_sha256``), if complete."""
        value = self.end.get(key) if self.complete else None
        return value if isinstance(value, str) and len(value) == 64 else None


def read_journal(path, f) -> JournalContents:
    """The contents of the journal open as the binary file ``f``."""
    path = Path(path)
    where = str(path)
    f.seek(0)
    if f.read(len(MAGIC)) != MAGIC:
        raise BadInputError(path, "not a biocompress journal")
    reader = frames.FrameReader(f, max_payload=MAX_PAYLOAD)
    found = iter(reader)
    first = next(found, None)
    if first is None or first[1].kind != FrameType.HEADER:
        why = reader.stopped or "it ends before its first frame"
        raise CorruptArchiveError(f"{where}: journal has no readable stream description ({why})")
    head = first[1]
    description = StreamDescription.from_dict(frames.parse_json(head, "HEADER"), where)
    out = JournalContents(path, description, zlib.crc32(head.payload))
    scan = _Scan(out, where)
    for offset, frame in found:
        scan.frame(offset, frame)
    out.frames = reader.next_seq
    out.valid_bytes = reader.good_end
    f.seek(0, 2)
    out.file_bytes = f.tell()
    out.stopped = reader.stopped
    scan.settle()
    return out


class _Scan:
    """Checks each frame's contents and gathers them into a JournalContents."""

    def __init__(self, out: JournalContents, where: str):
        self.out, self.where = out, where
        self.ends: dict[tuple, int] = {}  # (section, ch_start, ch_stop) → end of its blocks so far
        self.bounds: dict[tuple, set[int]] = {}
        self.all_blocks: list[BlockFrame] = []

    def bad(self, frame, problem: str) -> CorruptArchiveError:
        return CorruptArchiveError(f"{self.where}: journal frame {frame.seq} ({FrameType(frame.kind).name}) "
                                   f"{problem}")

    def frame(self, offset: int, frame: frames.Frame) -> None:
        if self.out.end is not None:
            raise self.bad(frame, "follows the END frame")
        kind = frame.kind
        if kind == FrameType.HEADER:
            raise self.bad(frame, "repeats the stream description")
        if kind in (FrameType.BLOCK, FrameType.TIMES):
            self.block(offset, frame)
        elif kind == FrameType.CODEC:
            d = frames.parse_json(frame, "CODEC")
            if d.get("number") != len(self.out.codecs) or not isinstance(d.get("config"), dict) \
                    or not isinstance(d["config"].get("id"), str):
                raise self.bad(frame, "is not the next numbered codec configuration")
            self.out.codecs.append(d["config"])
        elif kind == FrameType.MARKERS:
            self.out.markers.append(self.markers(frame))
        elif kind == FrameType.CLOCK:
            d = frames.parse_json(frame, "CLOCK")
            times, offsets = d.get("time"), d.get("offset")
            if not self.out.description.has_timestamps or not _numbers(times) or not _numbers(offsets) \
                    or len(times) != len(offsets):
                raise self.bad(frame, "holds no clock offsets this stream can have")
            self.out.clock += list(zip(map(float, times), map(float, offsets)))
        elif kind == FrameType.NOTE:
            text = frames.parse_json(frame, "NOTE").get("text")
            if not isinstance(text, str):
                raise self.bad(frame, "holds no text")
            self.out.notes.append(text)
        elif kind == FrameType.END:
            end = frames.parse_json(frame, "END")
            if not isinstance(end.get("n_samples"), int):
                raise self.bad(frame, "holds no sample count")
            self.out.end = end

    def block(self, offset: int, frame: frames.Frame) -> None:
        t0, t1, c0, c1, codec = frames.parse_block(frame)
        times = frame.kind == FrameType.TIMES
        n_ch = 1 if times else self.out.description.n_channels
        if times and not self.out.description.has_timestamps:
            raise self.bad(frame, "holds timestamps of a stream described without a clock")
        if not (0 <= t0 < t1 and 0 <= c0 < c1 <= n_ch and codec < len(self.out.codecs)) \
                or (t1 - t0) * (c1 - c0) > MAX_DECODED_ELEMENTS:
            raise self.bad(frame, f"describes an impossible block ([{t0}, {t1}) × channels [{c0}, {c1}), "
                                  f"codec {codec})")
        section = TIMES if times else DATA
        key = (section, c0, c1)
        if self.ends.get(key, 0) != t0:
            raise self.bad(frame, f"does not follow sample {self.ends.get(key, 0)} of its channels")
        data = frame.payload[frames.BLOCK_HEAD.size :]
        self.all_blocks.append(BlockFrame(section, t0, t1, c0, c1, codec, offset + frames.BLOCK_HEAD.size,
                                          len(data), zlib.crc32(data)))
        self.ends[key] = t1
        self.bounds.setdefault(key, {0}).add(t1)

    def markers(self, frame) -> dict:
        d = frames.parse_json(frame, "MARKERS")
        onset, duration, description = d.get("onset"), d.get("duration"), d.get("description")
        stamps, ch_names = d.get("timestamp"), d.get("ch_names")
        ok = _numbers(onset) and _numbers(duration) and isinstance(description, list) \
            and all(isinstance(s, str) for s in description) and len(onset) == len(duration) == len(description)
        ok = ok and (stamps is None or _numbers(stamps) and len(stamps) == len(onset))
        ok = ok and (ch_names is None or isinstance(ch_names, list) and len(ch_names) == len(onset)
                     and all(isinstance(c, list) and all(isinstance(n, str) for n in c) for c in ch_names))
        if not ok:
            raise self.bad(frame, "holds no markers")
        return {"onset": onset, "duration": duration, "description": description, "timestamp": stamps,
                "ch_names": ch_names}

    def settle(self) -> None:
        """Keep the blocks of the longest stretch [0, n) that every channel (and the timestamps)
        covers and where every lane's blocks end alike."""
        out = self.out
        data = sorted((a, b) for section, a, b in self.ends if section == DATA)
        covered, overlap = 0, False
        for a, b in data:
            overlap |= a < covered
            covered = max(covered, b) if a <= covered else covered
        if overlap:
            raise CorruptArchiveError(f"{self.where}: journal blocks group channels in overlapping ways")
        groups = [k for k in self.bounds if k[0] == DATA]
        if out.description.has_timestamps:
            groups.append((TIMES, 0, 1))
        if covered != out.description.n_channels or any(k not in self.bounds for k in groups):
            common = {0}
        else:
            common = set.intersection(*(self.bounds[k] for k in groups))
        out.n_samples = max(common)
        out.blocks = [b for b in self.all_blocks if b.t_stop <= out.n_samples]
        out.beyond = max(self.ends.values(), default=0) - out.n_samples


def _numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and math.isfinite(v) for v in values)
