"""Sinks: where a live stream's blocks go.

Every sink takes, in this order: :meth:`Sink.start` (the :class:`~.description.StreamHeader`,
once, before the first block), then blocks, timestamps, markers, clock offsets and notes
as they come, :meth:`Sink.flush` at least every block period (a durable point for sinks
that can make one), and :meth:`Sink.close` once (the recording's end: counts, the samples'
SHA-256, how it stopped). A sink that was never started holds nothing and writes nothing.

* :class:`MemorySink` keeps everything in memory (tests, programs that handle blocks
  themselves);
* :class:`ArchiveSink` writes a normal archive: blocks go to a temporary file as they
  come, the rest is written, checked and renamed into place when the stream ends;
* :class:`TeeSink` hands everything to several sinks (an archive and a network sender).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mne
import numpy as np

from ..container import fingerprint
from ..container.layout import put_text
from ..container.reader import Archive, sample_bytes
from ..container.writer import ArchiveWriter, json_dataset, write_description
from ..errors import VerificationError
from ..system.outputs import check_output, writing
from .blocks import Block, ClockOffset, Marker
from .description import StreamHeader

SAMPLES_HASH_LAYOUT = "sha256 of float64 little-endian samples, time-major"


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
    """A normal archive at ``dst``, published when the stream ends (the output is checked
    when the sink is made, before any sample is recorded).

    Until the stream ends the blocks live in a temporary file beside ``dst``; what
    :class:`~.blocks.Block` s, markers and notes describe is written at :meth:`close`, the
    archive decoded and checked (lossless: the samples' SHA-256), then renamed to ``dst``.
    Markers' exact timestamps are stored as ``/annotations/timestamp``; the samples'
    timestamps and the clock offsets are kept in memory (``kept``, a :class:`MemorySink`) but
    not stored in the archive: that is the journal sink's job (crash-safe, format 4).
    """

    def __init__(self, dst, *, overwrite: bool = False, verify: bool = True):
        self.dst = check_output(dst, force=overwrite, kind="archive")
        self.overwrite, self.verify = overwrite, verify
        self.header: StreamHeader | None = None
        self._writer: ArchiveWriter | None = None
        self.kept = MemorySink()  # timestamps, markers, clocks and notes, until close
        self.n_blocks = 0

    def start(self, header: StreamHeader) -> None:
        self.header = header
        with writing(self.dst):
            self._writer = ArchiveWriter(self.dst, mode=header.mode)

    def add(self, block: Block) -> None:
        with writing(self.dst):
            self._writer.add(block)
        self.n_blocks += 1

    def add_times(self, t_start: int, timestamps: np.ndarray) -> None:
        self.kept.add_times(t_start, timestamps)

    def add_markers(self, markers: list[Marker], onsets: np.ndarray) -> None:
        self.kept.add_markers(markers, onsets)

    def add_clock(self, clock: ClockOffset) -> None:
        self.kept.add_clock(clock)

    def note(self, text: str) -> None:
        self.kept.note(text)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.discard()
            self._writer = None

    def close(self, end: dict) -> Path | None:
        if self._writer is None:
            return None
        try:
            with writing(self.dst):
                return self._finish(end)
        finally:
            self.discard()  # after publish(): nothing left to remove

    def _finish(self, end: dict) -> Path:
        h, writer = self.header, self._writer
        d = h.description
        n = int(end["n_samples"])
        write_description(writer.h5, info=d.info, ch_types=d.ch_types, recipe=d.recipe, kinds=h.kinds,
                          stored=np.full(d.n_channels, n, np.int64), annotations=self._annotations(),
                          source=self._source(end))
        writer.h5["annotations"].create_dataset(  # the markers' own timestamps, exactly (their stream's clock)
            "timestamp", data=np.array([m.timestamp for m in self.kept.markers], np.float64))
        if h.mode != "lossless":
            self._write_lossy(writer.h5, end)
        writer.finish({"n_samples": n, "n_channels": d.n_channels, "sfreq": d.sfreq, "first_samp": 0,
                       "block_samples": int(h.block_samples),
                       "samples_sha256": end["samples_sha256"] if h.mode == "lossless" else "",
                       "samples_hash_layout": SAMPLES_HASH_LAYOUT})
        if h.mode != "lossless":
            self._seal_decoded()
        elif self.verify:
            with Archive(writer.tmp) as arc:
                result = arc.verify()
            if not result["ok"]:
                raise VerificationError(f"{self.dst}: the archive decodes to other samples than the stream "
                                        f"delivered (sha256 {result['samples_sha256']} != {result['expected']})")
        return writer.publish(overwrite=self.overwrite)

    def _annotations(self) -> mne.Annotations:
        kept = self.kept
        meas_date = self.header.description.info["meas_date"]
        return mne.Annotations(np.asarray(kept.onsets, np.float64),
                               np.array([m.duration for m in kept.markers], np.float64),
                               [m.description for m in kept.markers], orig_time=meas_date)

    def _source(self, end: dict) -> dict:
        kept = self.kept
        markers = {}
        for m in kept.markers:
            markers[m.stream] = markers.get(m.stream, 0) + 1
        return {**self.header.description.source,
                "recording": {k: v for k, v in end.items() if k not in ("samples_sha256", "fidelity")},
                "markers": markers, "notes": list(kept.notes),
                "source_bytes": int(end["n_samples"]) * self.header.description.n_channels
                * self.header.description.sample_bytes}

    def _write_lossy(self, h5, end: dict) -> None:
        g = h5.create_group("lossy")
        for key, value in self.header.lossy.items():
            if isinstance(value, str):
                put_text(g.attrs, key, value)
            else:
                g.attrs[key] = value
        if self.header.model is not None:
            g.create_dataset("model", data=np.frombuffer(self.header.model, np.uint8))
        fidelity = h5.create_group("fidelity")
        json_dataset(fidelity, "json", end["fidelity"])

    def _seal_decoded(self) -> None:
        """Lossy archives: the decoded samples' SHA-256 and tolerance fingerprint."""
        writer = self._writer
        sha, rows = hashlib.sha256(), []
        window = fingerprint.READ_SAMPLES
        with Archive(writer.tmp) as arc:
            for t0 in range(0, arc.n_samples, window):
                y = arc.read(t0, min(arc.n_samples, t0 + window))
                sha.update(sample_bytes(y))
                rows.append(fingerprint.window_stats(y))
        with writer.amend() as h5:
            put_text(h5["data"].attrs, "samples_sha256", sha.hexdigest())
            fingerprint.write(h5["fidelity"], rows, window)


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
