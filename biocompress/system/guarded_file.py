"""Files HDF5 writes through: a failed write is remembered, never shown to HDF5.

HDF5 cannot recover from a failed write (disk full, quota, ``ulimit -f``, I/O error):
its objects can then be neither flushed nor freed, and closing the file or ending the
process crashes it (h5py issues #914, #2160). h5py's file-object driver lets
:class:`GuardedFile` stand between HDF5 and the disk: after a write fails it drops every
further write and reports success, so HDF5 closes cleanly, and :meth:`GuardedFile.close`
raises the first error. The file is garbage then: writers write temporaries, and discard
them on that error.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import h5py


class GuardedFile(io.RawIOBase):
    """A binary file for ``h5py.File(guarded, mode)``; ``mode`` "w" (create) or "r+"."""

    def __init__(self, path, mode: str = "w"):
        super().__init__()
        self._file = open(path, {"w": "w+b", "r+": "r+b"}[mode], buffering=0)  # noqa: SIM115
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(pos, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer) -> int:
        return self._file.readinto(buffer)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):  # a short write is retried: the rest fails with the reason
                    done += self._file.write(view[done:])
                return done
            except OSError as exc:
                self.error = exc
        self._file.seek(len(view), io.SEEK_CUR)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as exc:
                self.error = exc
        return self.tell() if size is None else size

    def flush(self) -> None:
        pass  # unbuffered

    def close(self, *, check: bool = True) -> None:
        """Close the file; raise the first failed write's OSError (unless ``check`` is False)."""
        file = getattr(self, "_file", None)  # None: the open itself failed
        if file is not None and not file.closed:
            file.close()
        super().close()
        if check and getattr(self, "error", None) is not None:
            raise self.error

    def __del__(self):  # a file dropped unclosed: no error to raise to anyone
        self.close(check=False)


@contextmanager
def hdf5_for_writing(path, mode: str = "r+", **kwargs):
    """``with hdf5_for_writing(path) as h5:`` an ``h5py.File`` through a GuardedFile; a failed
    write raises its OSError when the block ends."""
    guarded = GuardedFile(path, mode)
    try:
        h5 = h5py.File(guarded, mode, **kwargs)
    except BaseException:
        guarded.close(check=False)
        raise
    try:
        with h5:
            yield h5
    except BaseException:
        guarded.close(check=False)
        raise
    guarded.close()
