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
import os
import threading
from pathlib import Path

from ..errors import BadInputError, WriteError
from ..system.outputs import check_output, writing
from . import frames
from .description import StreamDescription
from .frame_sink import FrameSink
from .frames import FrameType

MAGIC = b"BCJRNL01"
MAX_PAYLOAD = 1 << 28  # bytes in one frame: far above any block a stream lane makes
SYNC_INTERVAL = 0.5  # seconds between fsyncs: a crash loses this, plus the block being filled (< 1 s in all)


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
        self._wake = threading.Event()  # sync_soon(): the sync thread's next round now
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

    def sync_soon(self) -> None:
        """Have the sync thread make every frame written so far durable, without waiting for
        it (a writer's thread must not stall on a slow disk: an fsync can take a second)."""
        self._wake.set()

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.sync_interval / 2)
            self._wake.clear()
            if self._stop.is_set():
                return
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
        self._wake.set()
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


class JournalSink(FrameSink):
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
        super().__init__(description, JournalWriter(path, description, overwrite=overwrite,
                                                    sync_interval=sync_interval))
        self.path = self.writer.path
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

    def flush(self) -> None:
        """Everything added so far is written (a killed process loses none of it) and made
        durable by the sync thread, at once, in the background."""
        self.writer.sync_soon()

    def close(self, *, samples_sha256: str | None = None, times_sha256: str | None = None,
              fidelity: dict | None = None, finalize: bool = True) -> Path:
        """End the journal (END: the counts, the digests of the samples and timestamps when the
        caller has them, and a lossy recording's fidelity figures measured as it went) and,
        unless told otherwise, finalize it into an archive; return its path."""
        if not self.writer.closed:
            try:
                self.end(samples_sha256=samples_sha256, times_sha256=times_sha256, fidelity=fidelity)
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

