"""A stream's frames, whatever carries them: the part of a sink that turns blocks, markers,
clock offsets and notes into frames (docs/FORMAT.md §11), checks their order and counts
what they hold. The journal file (:class:`~.journal.JournalSink`) and the network sender
(:class:`~biocompress.stream.net.NetSink`) differ only in where the frames go.
"""

from __future__ import annotations

import json

from . import frames
from .description import StreamDescription
from .frames import FrameType
from .layout import TIMES


class FrameSink:
    """Blocks and the rest of a stream as frames, handed to ``writer.write(kind, payload)``
    in order: a codec's configuration (CODEC) before the first block that uses it."""

    def __init__(self, description: StreamDescription, writer):
        self.description = description
        self.writer = writer
        self._codecs: dict[str, int] = {}
        self._ends: dict[tuple, int] = {}  # (section, ch_start, ch_stop) → samples written
        self.n_blocks = 0

    def _codec(self, config: dict) -> int:
        key = json.dumps(config, sort_keys=True)
        if key not in self._codecs:
            self.writer.write(FrameType.CODEC, frames.json_payload({"number": len(self._codecs), "config": config}))
            self._codecs[key] = len(self._codecs)
        return self._codecs[key]

    def add(self, block) -> None:
        """Append a coded block (samples, or timestamps when ``block.section`` is TIMES)."""
        self._add(block, block.section == TIMES)

    def add_times(self, block) -> None:
        """Append a coded block of timestamps (channels [0, 1))."""
        self._add(block, True)

    def _add(self, block, times: bool) -> None:
        group = (TIMES if times else "data", int(block.ch_start), int(block.ch_stop))
        if times and not self.description.has_timestamps:
            raise ValueError("timestamp blocks for a stream described without a clock")
        if self._ends.get(group, 0) != block.t_start:
            raise ValueError(f"block [{block.t_start}, {block.t_stop}) of channels {group[1:]} does not follow "
                             f"sample {self._ends.get(group, 0)}: blocks must come in order")
        number = self._codec(block.config)
        self.writer.write(FrameType.TIMES if times else FrameType.BLOCK,
                          frames.block_payload(block.t_start, block.t_stop, block.ch_start, block.ch_stop,
                                               number, block.payload))
        self._ends[group] = int(block.t_stop)
        self.n_blocks += 1

    def add_markers(self, onset, duration, description, timestamps=None, ch_names=None) -> None:
        """Annotations (onsets in seconds on the archive's time axis, as MNE's), with the markers'
        own timestamps (the stream clock) where they have them."""
        onset, duration, description = list(map(float, onset)), list(map(float, duration)), list(map(str, description))
        if not len(onset) == len(duration) == len(description):
            raise ValueError("markers need as many onsets, durations and descriptions")
        if timestamps is not None and len(timestamps) != len(onset):
            raise ValueError("markers need one timestamp each")
        if ch_names is not None and len(ch_names) != len(onset):
            raise ValueError("markers need one channel list each")
        self.writer.write(FrameType.MARKERS, frames.json_payload({
            "onset": onset, "duration": duration, "description": description,
            "timestamp": None if timestamps is None else list(map(float, timestamps)),
            "ch_names": None if ch_names is None else [list(map(str, c)) for c in ch_names],
        }))

    def add_clock(self, time_s: float, offset_s: float) -> None:
        """A clock offset measured at ``time_s`` (e.g. LSL's ``time_correction``)."""
        if not self.description.has_timestamps:
            raise ValueError("clock offsets for a stream described without a clock")
        self.writer.write(FrameType.CLOCK, frames.json_payload({"time": [float(time_s)], "offset": [float(offset_s)]}))

    def note(self, text: str) -> None:
        self.writer.write(FrameType.NOTE, frames.json_payload({"text": str(text)}))

    @property
    def samples_written(self) -> int:
        """Samples of every channel (and their timestamps) written so far."""
        groups = sorted((a, b) for section, a, b in self._ends if section != TIMES)
        covered = 0
        for a, b in groups:
            if a != covered:
                return 0
            covered = b
        if covered != self.description.n_channels:
            return 0
        ends = [n for (section, *_), n in self._ends.items()]
        if self.description.has_timestamps and not any(s == TIMES for s, *_ in self._ends):
            return 0
        return min(ends)

    def end(self, *, samples_sha256: str | None = None, times_sha256: str | None = None,
            fidelity: dict | None = None) -> None:
        """The END frame: the counts, the digests of the samples and timestamps when the caller has
        them, and a lossy recording's fidelity figures measured as it went."""
        self.writer.write(FrameType.END, frames.json_payload({
            "n_samples": self.samples_written, "n_blocks": self.n_blocks,
            "samples_sha256": samples_sha256, "times_sha256": times_sha256, "fidelity": fidelity}))
