"""A live (or crashed) recording's journal, read like any archive.

``Archive(path)`` on a journal gives a :class:`LiveArchive`: the journal is read up to its
last valid frame, its metadata and block index become an in-memory HDF5 image built by
the same code that finalizing uses (:mod:`.journal_layout`), and block bytes are read from
the journal file at their offsets. Every check of the reader stays: the image's integrity
manifest, index tiling, bounded sizes, each block's CRC-32.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..errors import BadInputError, CorruptArchiveError
from ..system import os_errors
from . import journal_layout
from .integrity import damage_is_corruption
from .journal_reader import read_journal
from .reader import Archive


class LiveArchive(Archive):
    """A journal opened for reading (see the module docstring); a snapshot of what was
    durable when it was opened."""

    live = True

    def _open_hdf5(self) -> h5py.File:
        try:
            self._journal = open(self.path, "rb")  # noqa: SIM115 - held open: blocks are read from it
        except OSError as exc:
            raise BadInputError(self.path, os_errors.problem(exc) or str(exc)) from None
        try:
            with damage_is_corruption(str(self.path), "journal"):
                self.contents = read_journal(self.path, self._journal)
                buffer, self._image_size = journal_layout.image(self.contents)
            return h5py.File(buffer, "r")
        except BaseException:
            self._journal.close()
            raise

    def _file_size(self) -> int:
        return self._image_size

    def _payload_sizes(self, section: str) -> list[int]:
        return [self.contents.valid_bytes]  # segment 0: the journal itself, up to its last valid frame

    def _segment_bytes(self, section: str, seg: int, start: int, n: int) -> bytes:
        data = os.pread(self._journal.fileno(), n, start)
        if len(data) != n:
            raise CorruptArchiveError(f"{self.path}: the journal shrank while it was read")
        return data

    def close(self):
        if getattr(self, "h5", None) is not None:
            super().close()
        journal = getattr(self, "_journal", None)
        if journal is not None:
            journal.close()

    def identity(self) -> tuple:
        """A journal only grows: it stays the same archive while its file (device, inode) and
        its first frame do."""
        st = os.fstat(self._journal.fileno())
        return (st.st_dev, st.st_ino, "journal", self.contents.header_crc)

    @property
    def state(self) -> dict:
        """How much the journal holds durably, and how its reading ended."""
        c = self.contents
        return {"finalized": False, "ended": c.end is not None, "complete": c.complete,
                "durable_samples": c.n_samples, "durable_seconds": c.seconds, "frames": c.frames,
                "journal_bytes": c.file_bytes, "discarded_bytes": c.file_bytes - c.valid_bytes,
                "samples_past_last_complete": c.beyond, "stopped": c.stopped}

    def state_line(self) -> str:
        c = self.contents
        how = ("ended cleanly; `biocompress recover` finalizes it" if c.complete
               else "still being written, or its writer stopped without finishing; `biocompress recover` "
                    "finalizes what it holds")
        return f"not finalized: {c.seconds:.3f} s / {c.n_samples} samples durable ({how})"

    def verify(self, progress=None) -> dict:
        """Decode every block (CRC-32 checked) and, when the journal ended cleanly with digests,
        compare them; a journal still being written has no digests yet."""
        result = super().verify(progress)
        if self.contents.end_digest("samples_sha256") is None:
            result["ok"], result["expected"] = True, None
        if self.has_timestamps and self.contents.end_digest("times_sha256") is None:
            result["times_ok"], result["times_expected"] = True, None
        result["ok"] = result["ok"] and result.get("times_ok", True)
        return result

    def recover(self) -> Path:
        """Finalize the journal in place (closing this reader first); return the archive's path."""
        from .journal_finalize import finalize

        self.close()
        return finalize(self.path)["path"]
