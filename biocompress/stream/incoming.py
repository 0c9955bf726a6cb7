"""A stream's frames as they arrive from a peer: checked, then handed to a sink.

The bytes come from the network, so every frame is checked before anything is done with
it, as strictly as the journal reader checks a journal (docs/FORMAT.md §11.2): a codec
numbered out of turn or unknown, a block out of order, overlapping another lane's channels
or larger than any block can be, markers or clock offsets that are not lists of finite
numbers, anything after END. A frame that fails raises FrameError and reaches no sink, so
what the sink writes stays a valid journal.
"""

from __future__ import annotations

import math

from ..codecs import get_codec
from ..codecs.base import MAX_DECODED_ELEMENTS
from ..container import frames
from ..container.description import StreamDescription
from ..container.frames import Frame, FrameError, FrameType
from ..container.layout import DATA, TIMES
from ..errors import CorruptArchiveError
from .blocks import Block

DIGEST_KEYS = ("samples_sha256", "times_sha256")


class IncomingStream:
    """The frames after the HEADER, in order; :meth:`apply` hands each to ``sink`` (the calls of a
    :class:`~biocompress.container.frame_sink.FrameSink`) and returns END's contents at the end."""

    def __init__(self, description: StreamDescription):
        self.description = description
        self.codecs: list[dict] = []
        self.ends: dict[tuple, int] = {}  # (section, ch_start, ch_stop) → samples received
        self.end: dict | None = None

    def apply(self, frame: Frame, sink) -> dict | None:
        if self.end is not None:
            raise FrameError(f"frame {frame.seq} follows the END frame")
        kind = frame.kind
        if kind == FrameType.HEADER:
            raise FrameError(f"frame {frame.seq} repeats the stream description")
        if kind == FrameType.CODEC:
            self._codec(frame)
        elif kind in (FrameType.BLOCK, FrameType.TIMES):
            sink.add(self._block(frame))
        elif kind == FrameType.MARKERS:
            sink.add_markers(**self._markers(frame))
        elif kind == FrameType.CLOCK:
            for t, offset in self._clock(frame):
                sink.add_clock(t, offset)
        elif kind == FrameType.NOTE:
            text = _json(frame, "NOTE").get("text")
            if not isinstance(text, str):
                raise FrameError(f"NOTE frame {frame.seq} holds no text")
            sink.note(text)
        elif kind == FrameType.END:
            self.end = self._end(frame)
            return self.end
        else:
            raise FrameError(f"frame {frame.seq} has type {kind}, not a stream frame")
        return None

    @property
    def samples(self) -> int:
        """Samples every channel (and the timestamps) were received for."""
        data = sorted((a, b) for s, a, b in self.ends if s == DATA)
        covered = 0
        for a, b in data:
            if a != covered:
                return 0
            covered = b
        if covered != self.description.n_channels:
            return 0
        if self.description.has_timestamps and (TIMES, 0, 1) not in self.ends:
            return 0
        return min(self.ends.values())

    def _codec(self, frame: Frame) -> None:
        d = _json(frame, "CODEC")
        config = d.get("config")
        if d.get("number") != len(self.codecs) or not isinstance(config, dict) or not isinstance(config.get("id"), str):
            raise FrameError(f"CODEC frame {frame.seq} is not the next numbered codec configuration")
        try:
            get_codec(config)
        except Exception as exc:  # noqa: BLE001 - whatever a made-up configuration breaks, it is refused
            raise FrameError(f"CODEC frame {frame.seq}: not a codec this receiver knows ({exc})") from None
        self.codecs.append(config)

    def _block(self, frame: Frame) -> Block:
        try:
            t0, t1, c0, c1, codec = frames.parse_block(frame)
        except CorruptArchiveError as exc:
            raise FrameError(str(exc)) from None
        times = frame.kind == FrameType.TIMES
        if times and not self.description.has_timestamps:
            raise FrameError(f"frame {frame.seq} holds timestamps of a stream described without a clock")
        n_ch = 1 if times else self.description.n_channels
        if not (0 <= t0 < t1 and 0 <= c0 < c1 <= n_ch and 0 <= codec < len(self.codecs)) \
                or (t1 - t0) * (c1 - c0) > MAX_DECODED_ELEMENTS:
            raise FrameError(f"frame {frame.seq} describes an impossible block ([{t0}, {t1}) × channels "
                             f"[{c0}, {c1}), codec {codec})")
        section = TIMES if times else DATA
        key = (section, c0, c1)
        if key not in self.ends and any(s == section and a < c1 and c0 < b for s, a, b in self.ends):
            raise FrameError(f"frame {frame.seq}: channels [{c0}, {c1}) overlap another lane's")
        if self.ends.get(key, 0) != t0:
            raise FrameError(f"frame {frame.seq}: block [{t0}, {t1}) does not follow sample "
                             f"{self.ends.get(key, 0)} of its channels")
        self.ends[key] = t1
        return Block(t0, t1, c0, c1, self.codecs[codec], frame.payload[frames.BLOCK_HEAD.size :], section)

    def _markers(self, frame: Frame) -> dict:
        d = _json(frame, "MARKERS")
        onset, duration, description = d.get("onset"), d.get("duration"), d.get("description")
        stamps, ch_names = d.get("timestamp"), d.get("ch_names")
        ok = _numbers(onset) and _numbers(duration) and isinstance(description, list) \
            and all(isinstance(s, str) for s in description) and len(onset) == len(duration) == len(description)
        ok = ok and (stamps is None or _numbers(stamps) and len(stamps) == len(onset))
        ok = ok and (ch_names is None or isinstance(ch_names, list) and len(ch_names) == len(onset)
                     and all(isinstance(c, list) and all(isinstance(n, str) for n in c) for c in ch_names))
        if not ok:
            raise FrameError(f"MARKERS frame {frame.seq} holds no markers")
        return {"onset": onset, "duration": duration, "description": description, "timestamps": stamps,
                "ch_names": ch_names}

    def _clock(self, frame: Frame) -> list[tuple[float, float]]:
        d = _json(frame, "CLOCK")
        times, offsets = d.get("time"), d.get("offset")
        if not self.description.has_timestamps or not _numbers(times) or not _numbers(offsets) \
                or len(times) != len(offsets):
            raise FrameError(f"CLOCK frame {frame.seq} holds no clock offsets this stream can have")
        return list(zip(map(float, times), map(float, offsets), strict=True))

    def _end(self, frame: Frame) -> dict:
        d = _json(frame, "END")
        n = d.get("n_samples")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise FrameError(f"END frame {frame.seq} holds no sample count")
        end = {"n_samples": n}
        for key in DIGEST_KEYS:  # digests of other samples than those received are no use
            value = d.get(key)
            ok = isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
            end[key] = value if ok and n == self.samples else None
        end["fidelity"] = d.get("fidelity") if isinstance(d.get("fidelity"), dict) else None  # lossy: as measured
        return end


def _json(frame: Frame, what: str) -> dict:
    try:
        return frames.parse_json(frame, what)
    except CorruptArchiveError as exc:
        raise FrameError(str(exc)) from None


def _numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and math.isfinite(v) for v in values)
