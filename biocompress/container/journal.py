"""The live archive: an append-only journal of frames at the archive's final path.

A recording that is still arriving is written as a *journal* (docs/FORMAT.md §11): the
8 bytes ``BCJRNL01``, then frames (:mod:`.frames`) — the stream description first, then
codec configurations, coded blocks, timestamp blocks, markers, clock offsets and notes as
they come, and END on a clean stop. Frames are only ever appended and the file is
fsynced at least once a second, so after a crash or a power cut every frame up to the
last durable one reads back (readers stop at the first incomplete or damaged frame).
A clean stop then *finalizes* the journal: it becomes an HDF5 archive of the current
format, written under a temporary name and renamed over the journal.

:class:`JournalSink` is what a pipeline writes to (``StreamEncoder`` blocks, markers,
clock offsets); :class:`JournalWriter` is the file underneath.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from ..errors import BadInputError, WriteError
from ..system.outputs import check_output, writing
from . import frames
from .description import StreamDescription
from .frames import FrameType
from .layout import TIMES

MAGIC = b"BCJRNL01"
MAX_PAYLOAD = 1 << 28  # bytes in one frame: far above any block a stream lane makes
SYNC_INTERVAL = 1.0  # seconds: what a crash may lose at most


def is_journal(path) -> bool:
    """Whether ``path`` is a regular file starting with the journal magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def in_use(path) -> bool:
    """Whether ``path`` is a journal that a running process holds (writing or finalizing it)."""
    if not is_journal(path):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if this call took it


def lock(fd: int, path) -> None:
    """Hold the journal exclusively (released when ``fd`` closes, also by a killed process)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BadInputError(path, "is a live recording still being written by a running process; "
                            "stop that process first (its clean stop finalizes the archive)") from None


class JournalWriter:
    """Frames appended to a new journal at ``path``, made durable every ``sync_interval`` s.

    ``path`` goes through the same checks as every output (``overwrite`` replaces an
    existing archive or journal, never anything else). The file is created, locked, and
    holds the HEADER frame, durably, before the constructor returns.
    """

    def __init__(self, path, description: StreamDescription, *, overwrite: bool = False,
                 sync_interval: float = SYNC_INTERVAL):
        self.path = check_output(path, force=overwrite, kind="archive")
        header = frames.json_payload(description.to_dict())  # a description JSON cannot hold fails here
        self.sync_interval = float(sync_interval)
        self._lock = threading.Lock()
        self._seq = 0
        self._written = 0  # bytes appended so far
        self.durable_bytes = 0
        self._failed: BaseException | None = None
        with writing(self.path):
            if overwrite and self.path.exists():
                self.path.unlink()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_APPEND, 0o666)
            try:
                lock(self._fd, self.path)
                self._append(MAGIC)
                self.write(FrameType.HEADER, header)
                self.sync()
                _sync_folder(self.path.parent)  # the new name itself must survive a power cut
            except BaseException:
                os.close(self._fd)
                self.path.unlink(missing_ok=True)
                raise
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name=f"journal-sync {self.path.name}", daemon=True)
        self._syncer.start()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def write(self, kind: FrameType, payload: bytes) -> None:
        """Append one frame (durable within ``sync_interval`` seconds)."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a {kind.name} frame of {len(payload)} bytes exceeds the journal's {MAX_PAYLOAD}")
        with self._lock:
            self._raise_failure()
            self._append(frames.encode(kind, self._seq, payload))
            self._seq += 1

    def _append(self, data: bytes) -> None:
        if self._fd < 0:
            raise ValueError(f"{self.path}: the journal is closed")
        view = memoryview(data)
        try:
            with writing(self.path):
                while view:
                    view = view[os.write(self._fd, view):]
        except BaseException as exc:  # a partial frame ends the journal: nothing may follow it
            self._failed = exc
            raise
        self._written += len(data)

    def sync(self) -> None:
        """Make every frame written so far durable now."""
        with self._lock:
            self._raise_failure()
            target = self._written
            fd = self._fd
        if fd < 0 or target == self.durable_bytes:
            return
        try:
            with writing(self.path):
                os.fsync(fd)
        except BaseException as exc:
            self._failed = exc
            raise
        self.durable_bytes = max(self.durable_bytes, target)

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval / 2):
            try:
                self.sync()
            except BaseException:  # noqa: BLE001 - kept in _failed: the next write or close raises it
                return

    def _raise_failure(self) -> None:
        if self._failed is not None:
            exc = self._failed
            raise exc if isinstance(exc, WriteError) else WriteError(self.path, f"cannot write: {exc}")

    def close(self) -> None:
        """Stop the sync thread, make everything durable and close the file (idempotent)."""
        if self._fd < 0:
            return
        self._stop.set()
        if self._syncer.is_alive() and self._syncer is not threading.current_thread():
            self._syncer.join()
        try:
            if self._failed is None:
                self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1
        self._raise_failure()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the file's own fsync still holds
        pass
    finally:
        os.close(fd)


class JournalSink:
    """Where a live pipeline's output goes: a journal at ``path`` that :meth:`close` ends and
    finalizes into a normal archive.

    ``add(block)`` takes the blocks of a :class:`~biocompress.stream.encoder.StreamEncoder`
    (timestamp blocks, ``section == TIMES``, go to the timestamps), in the order it gives
    them; ``add_markers``, ``add_clock`` and ``note`` record annotations, clock offsets and
    remarks. Frames are durable within ``sync_interval`` seconds, or at once on
    :meth:`flush`; for a crash to lose at most a second, the pipeline flushes its encoder
    (``StreamEncoder.flush()``) into the sink at least once a second too. Used as a context
    manager, any exit finalizes what was recorded; an error is kept as a note in the
    archive's provenance (a write error leaves the journal for ``biocompress recover``).
    """

    def __init__(self, path, description: StreamDescription, *, overwrite: bool = False,
                 sync_interval: float = SYNC_INTERVAL):
        self.description = description
        self.writer = JournalWriter(path, description, overwrite=overwrite, sync_interval=sync_interval)
        self.path = self.writer.path
        self._codecs: dict[str, int] = {}
        self._ends: dict[tuple, int] = {}  # (section, ch_start, ch_stop) → samples written
        self.n_blocks = 0
        self.finalized: Path | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.writer.closed:
            return False
        if exc is not None and not isinstance(exc, (KeyboardInterrupt, WriteError)):
            self.note(f"recording stopped by an error: {type(exc).__name__}: {exc}")
        if isinstance(exc, WriteError):  # the disk refused: leave the journal for `biocompress recover`
            try:
                self.writer.close()
            except WriteError:
                pass  # the error on its way out says it already
            return False
        self.close()
        return False

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

    def flush(self) -> None:
        """Make everything added so far durable now."""
        self.writer.sync()

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

    def close(self, *, samples_sha256: str | None = None, times_sha256: str | None = None,
              fidelity: dict | None = None, finalize: bool = True) -> Path:
        """End the journal (END: the counts, the digests of the samples and timestamps when the
        caller has them, and a lossy recording's fidelity figures measured as it went) and,
        unless told otherwise, finalize it into an archive; return its path."""
        if not self.writer.closed:
            try:
                self.writer.write(FrameType.END, frames.json_payload({
                    "n_samples": self.samples_written, "n_blocks": self.n_blocks,
                    "samples_sha256": samples_sha256, "times_sha256": times_sha256, "fidelity": fidelity}))
            finally:
                self.writer.close()
        if finalize and self.finalized is None:
            from .journal_finalize import finalize as finalize_journal

            self.finalized = finalize_journal(self.path)["path"]
        return self.path


def finalize(path, *, verify: bool = True) -> dict:
    """Turn the journal at ``path`` (clean or crashed) into an archive in place; see
    :func:`biocompress.container.journal_finalize.finalize`."""
    from .journal_finalize import finalize as finalize_journal

    return finalize_journal(path, verify=verify)

