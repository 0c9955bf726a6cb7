"""What an operating-system error means to a user: the problem, and what to do about it.

h5py reports many of them as an ``OSError`` (or a ``RuntimeError`` on close) without
``errno``, the C library's numbers inside the message:
``Unable to create file (unable to open file: name = '/x.h5', errno = 28, error message = ...)``.
"""

from __future__ import annotations

import errno
import os
import re

_ERRNO_IN_MESSAGE = re.compile(r"\berrno = (\d+)")
_NAME_IN_MESSAGE = re.compile(r"\b(?:file)?name = '([^']+)'")

_PROBLEMS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EFBIG: "file size limit reached (see `ulimit -f`); raise the limit or write elsewhere",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system; write elsewhere",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ELOOP: "symbolic link loop (too many levels of symbolic links)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error (a failing disk or a lost network mount?)",
    errno.EMFILE: "too many open files (see `ulimit -n`)",
    errno.ENFILE: "too many open files in the system",
    errno.ENOMEM: "not enough memory",
    errno.ETXTBSY: "file busy",
    errno.EBUSY: "device or resource busy",
    errno.ESTALE: "stale network file handle; remount and retry",
}


def errno_of(exc: BaseException) -> int | None:
    """The errno of an OSError, or the one h5py wrote into its message; None if neither."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    if isinstance(exc, (OSError, RuntimeError)):
        found = _ERRNO_IN_MESSAGE.search(str(exc))
        if found and int(found.group(1)) != 0:
            return int(found.group(1))
    return None


def problem(exc: BaseException) -> str | None:
    """A short description of an operating-system error, or None when ``exc`` is not one."""
    code = errno_of(exc)
    if code is None:
        return None
    return _PROBLEMS.get(code) or os.strerror(code)


def path_of(exc: BaseException) -> str | None:
    """The file an operating-system error is about, where it says."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return os.fsdecode(exc.filename)
    found = _NAME_IN_MESSAGE.search(str(exc))
    return found.group(1) if found else None


def describe(exc: BaseException) -> str | None:
    """``path: problem`` (or the problem alone) for an operating-system error, else None."""
    what = problem(exc)
    if what is None:
        return None
    where = path_of(exc)
    return f"{where}: {what}" if where else what
