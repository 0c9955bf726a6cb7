"""Sinks: where a live stream's blocks go.

Every sink takes, in this order: :meth:`Sink.start` (the :class:`~.description.StreamHeader`,
once, before the first block), then blocks, timestamps, markers, clock offsets and notes
as they come, :meth:`Sink.flush` at least every block period (a durable point for sinks
that can make one), and :meth:`Sink.close` once (the recording's end: counts, the samples'
SHA-256, how it stopped). A sink that was never started holds nothing and writes nothing.

* :class:`MemorySink` keeps everything in memory (tests, programs that handle blocks
  themselves);
* :class:`ArchiveSink` writes an archive that survives a crash: a journal while the stream
  runs, finalized into a normal archive when it ends;
* :class:`~.net.NetworkSink` sends it to a receiver (``biocompress receive``) over TCP;
* :class:`TeeSink` hands everything to several sinks (an archive and a network sender).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..container.description import StreamDescription as ArchiveDescription
from ..container.journal import JournalSink
from ..system.outputs import check_output, writing
from .blocks import Block, Chunk, ClockOffset, Marker
from .description import StreamHeader
from .lanes import TimesLane
from .tee import TeeSink  # noqa: F401 - one of the sinks (several at once)

class Sink:
    """Takes a live stream's blocks (see the module's docstring for the order of calls)."""

    def start(self, header: StreamHeader) -> None:
        raise NotImplementedError

    def add(self, block: Block) -> None:
        raise NotImplementedError

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        """The timestamps of samples ``[t_start, t_start + len(timestamps))``, in order."""

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        """Markers with their exact timestamps, and their onsets in seconds from the first sample."""

    def add_clock(self, clock: ClockOffset) -> None:
        """A stream clock's offset, measured."""

    def note(self, text: str) -> None:
        """Something a reader of the archive should know (a stream restarted, an error)."""

    def flush(self) -> None:
        """Make what was added durable, where the sink can."""

    def close(self, end: dict) -> Path | None:
        """The recording ended (``end``: n_samples, samples_sha256, fidelity figures of lossy
        modes, stop reason…): finish and return the archive's path, if the sink writes one."""
        raise NotImplementedError

    def discard(self) -> None:
        """Give up (an error before anything was recorded): leave nothing behind."""


class MemorySink(Sink):
    """Everything in memory, in the order it came."""

    def __init__(self):
        self.header: StreamHeader | None = None
        self.blocks: list[Block] = []
        self.times: list[tuple[int, np.ndarray]] = []
        self.markers: list[Marker] = []
        self.onsets: list[float] = []
        self.clocks: list[ClockOffset] = []
        self.notes: list[str] = []
        self.flushes = 0
        self.end: dict | None = None

    def start(self, header: StreamHeader) -> None:
        self.header = header

    def add(self, block: Block) -> None:
        self.blocks.append(block)

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        self.times.append((t_start, np.array(timestamps, np.float64)))

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        self.markers += markers
        self.onsets += [float(t) for t in onsets]

    def add_clock(self, clock: ClockOffset) -> None:
        self.clocks.append(clock)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def flush(self) -> None:
        self.flushes += 1

    def close(self, end: dict) -> None:
        self.end = end

    @property
    def timestamps(self) -> np.ndarray:
        """Every sample's timestamp, checked to tile the samples from 0."""
        at = 0
        for t_start, ts in self.times:
            if t_start != at:
                raise AssertionError(f"timestamps start at {t_start}, expected {at}")
            at += ts.size
        return np.concatenate([ts for _, ts in self.times]) if self.times else np.zeros(0)


class FramesSink(Sink):
    """A live stream as frames (docs/FORMAT.md §11), handed to a frame sink that subclasses open
    in :meth:`_open` (a journal, a network sender): blocks as they come, the samples' timestamps
    coded here (``times-v1``, cut at every flush), the data stream's clock offsets, the markers
    (with their own timestamps) and the notes."""

    def __init__(self):
        self.header: StreamHeader | None = None
        self.frames = None  # the frame sink, once started
        self._times: TimesLane | None = None
        self.n_blocks = 0

    def _open(self, description: ArchiveDescription):
        raise NotImplementedError

    def _io(self):
        """Where errors of the frame sink's own writing are turned into messages."""
        return nullcontext()

    def start(self, header: StreamHeader) -> None:
        self.header = header
        d = header.description
        description = ArchiveDescription(
            info=d.info, recipe=d.recipe, kinds=header.kinds, mode=header.mode,
            block_samples=int(header.block_samples), source=dict(d.source),
            lossy=dict(header.lossy) if header.mode != "lossless" else None, lossy_model=header.model,
            clock=header.clock, stream={k: v for k, v in d.source.items() if k != "xml"} or None)
        with self._io():
            self.frames = self._open(description)
        if header.clock is not None:
            self._times = TimesLane(int(header.block_samples), d.sfreq)

    def add(self, block: Block) -> None:
        with self._io():
            self.frames.add(block)
        self.n_blocks += 1

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        if self._times is None:
            return
        stamps = np.asarray(timestamps, np.float64)
        self._add_times(self._times.push(Chunk(t_start, np.empty((0, stamps.size)), stamps)))

    def _add_times(self, blocks: list[Block]) -> None:
        with self._io():
            for block in blocks:
                self.frames.add_times(block)

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        with self._io():
            self.frames.add_markers(onsets, [m.duration for m in markers], [m.description for m in markers],
                                    timestamps=[m.timestamp for m in markers])

    def add_clock(self, clock: ClockOffset) -> None:
        if self.header.clock is not None and clock.stream == self.header.description.source.get("name"):
            with self._io():
                self.frames.add_clock(clock.local_time, clock.offset)

    def note(self, text: str) -> None:
        with self._io():
            self.frames.note(text)

    def flush(self) -> None:
        if self._times is not None:
            self._add_times(self._times.flush())
        with self._io():
            self.frames.flush()

    def _end(self, end: dict) -> dict:
        """What the END frame says: the samples' digest (lossless) or the fidelity figures (lossy)."""
        if self._times is not None:
            self._add_times(self._times.finish())
        lossless = self.header.mode == "lossless"
        return {"samples_sha256": end.get("samples_sha256") if lossless else None,
                "fidelity": None if lossless else end.get("fidelity")}


class ArchiveSink(FramesSink):
    """An archive at ``dst``, crash-safe while the stream runs: a journal at ``dst``
    (:mod:`biocompress.container.journal`), durable at every :meth:`flush`, finalized into a
    normal archive when the stream ends — or by ``biocompress recover`` after a crash. The
    output is checked when the sink is made, before any sample is recorded.
    """

    def __init__(self, dst, *, overwrite: bool = False):
        super().__init__()
        self.dst = check_output(dst, force=overwrite, kind="archive")
        self.overwrite = overwrite

    @property
    def journal(self) -> JournalSink | None:
        return self.frames

    def _open(self, description: ArchiveDescription) -> JournalSink:
        return JournalSink(self.dst, description, overwrite=self.overwrite)

    def _io(self):
        return writing(self.dst)

    def close(self, end: dict) -> Path | None:
        if self.frames is None:
            return None
        said = self._end(end)
        with writing(self.dst):
            return self.frames.close(**said)

    def discard(self) -> None:
        """What was made durable stays in the journal, for ``biocompress recover``."""
        if self.frames is not None and not self.frames.writer.closed:
            self.frames.writer.close()
