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
* :class:`TeeSink` hands everything to several sinks (an archive and a network sender).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..container.description import StreamDescription as ArchiveDescription
from ..container.journal import JournalSink
from ..system.outputs import check_output, writing
from .blocks import Block, Chunk, ClockOffset, Marker
from .description import StreamHeader
from .lanes import TimesLane

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


class ArchiveSink(Sink):
    """An archive at ``dst``, crash-safe while the stream runs: a journal at ``dst``
    (:mod:`biocompress.container.journal`), durable at every :meth:`flush`, finalized into a
    normal archive when the stream ends — or by ``biocompress recover`` after a crash. The
    output is checked when the sink is made, before any sample is recorded.

    Blocks go to the journal as they come; the samples' timestamps are coded here
    (``times-v1``, cut at every flush); the data stream's clock offsets, the markers (with
    their own timestamps) and the notes are kept with them.
    """

    def __init__(self, dst, *, overwrite: bool = False):
        self.dst = check_output(dst, force=overwrite, kind="archive")
        self.overwrite = overwrite
        self.header: StreamHeader | None = None
        self.journal: JournalSink | None = None
        self._times: TimesLane | None = None
        self.n_blocks = 0

    def start(self, header: StreamHeader) -> None:
        self.header = header
        d = header.description
        description = ArchiveDescription(
            info=d.info, recipe=d.recipe, kinds=header.kinds, mode=header.mode,
            block_samples=int(header.block_samples), source=dict(d.source),
            lossy=dict(header.lossy) if header.mode != "lossless" else None, lossy_model=header.model,
            clock=header.clock, stream={k: v for k, v in d.source.items() if k != "xml"} or None)
        with writing(self.dst):
            self.journal = JournalSink(self.dst, description, overwrite=self.overwrite)
        if header.clock is not None:
            self._times = TimesLane(int(header.block_samples), d.sfreq)

    def add(self, block: Block) -> None:
        with writing(self.dst):
            self.journal.add(block)
        self.n_blocks += 1

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        if self._times is None:
            return
        stamps = np.asarray(timestamps, np.float64)
        self._add_times(self._times.push(Chunk(t_start, np.empty((0, stamps.size)), stamps)))

    def _add_times(self, blocks: list[Block]) -> None:
        with writing(self.dst):
            for block in blocks:
                self.journal.add_times(block)

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        with writing(self.dst):
            self.journal.add_markers(onsets, [m.duration for m in markers], [m.description for m in markers],
                                     timestamps=[m.timestamp for m in markers])

    def add_clock(self, clock: ClockOffset) -> None:
        if self.header.clock is not None and clock.stream == self.header.description.source.get("name"):
            with writing(self.dst):
                self.journal.add_clock(clock.local_time, clock.offset)

    def note(self, text: str) -> None:
        with writing(self.dst):
            self.journal.note(text)

    def flush(self) -> None:
        if self._times is not None:
            self._add_times(self._times.flush())
        with writing(self.dst):
            self.journal.flush()

    def close(self, end: dict) -> Path | None:
        if self.journal is None:
            return None
        if self._times is not None:
            self._add_times(self._times.finish())
        lossless = self.header.mode == "lossless"
        with writing(self.dst):
            return self.journal.close(samples_sha256=end.get("samples_sha256") if lossless else None,
                                      fidelity=None if lossless else end.get("fidelity"))

    def discard(self) -> None:
        """What was made durable stays in the journal, for ``biocompress recover``."""
        if self.journal is not None and not self.journal.writer.closed:
            self.journal.writer.close()


class TeeSink(Sink):
    """Every call to each of ``sinks``, in order; :meth:`close` returns the first path."""

    def __init__(self, *sinks: Sink):
        self.sinks = sinks

    def start(self, header: StreamHeader) -> None:
        for sink in self.sinks:
            sink.start(header)

    def add(self, block: Block) -> None:
        for sink in self.sinks:
            sink.add(block)

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        for sink in self.sinks:
            sink.add_times(t_start, timestamps)

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        for sink in self.sinks:
            sink.add_markers(markers, onsets)

    def add_clock(self, clock: ClockOffset) -> None:
        for sink in self.sinks:
            sink.add_clock(clock)

    def note(self, text: str) -> None:
        for sink in self.sinks:
            sink.note(text)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self, end: dict) -> Path | None:
        paths = [sink.close(end) for sink in self.sinks]
        return next((p for p in paths if p is not None), None)

    def discard(self) -> None:
        for sink in self.sinks:
            sink.discard()
