"""Where outputs may be written, and the temporary files they are written through.

:func:`check_output` decides, before any work is done, whether a path may be written:
never over an input (symbolic and hard links resolved), never over a folder, a device,
a FIFO, a socket or a symbolic link, never over an existing file without ``force``,
and ``compress --force`` replaces only a biocompress archive.

Outputs are written under a temporary name beside them and renamed when complete.
:func:`temporary` makes those names, ``.{name}.{pid}@{host}.{random}.bctmp``, so that a
later run can tell a temporary left by a killed writer (its process gone, or its PID
now held by a process that started after the file was last written) from one still
being written, and :func:`remove_stale_temporaries` removes only the former.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import os_errors, processes
from ..errors import BadInputError, BiocompressError, WriteError

# Extensions of the recording formats MNE reads (and their data files): never an archive's name.
RECORDING_EXTENSIONS = (
    ".edf", ".bdf", ".gdf", ".rec", ".fif", ".fif.gz", ".vhdr", ".vmrk", ".ahdr", ".eeg", ".set", ".fdt",
    ".cnt", ".cdt", ".cef", ".dpa", ".dap", ".rs3", ".con", ".sqd", ".ds", ".lay", ".dat", ".data", ".mff",
    ".nxe", ".nedf", ".ns3", ".nsx", ".mefd", ".snirf", ".bin", ".mat", ".asc", ".hdr", ".txt", ".csv",
    ".xdf", ".nwb",
)
# Files an export writes beside its header
COMPANIONS = {".vhdr": (".eeg", ".vmrk")}

TEMP_SUFFIX = ".bctmp"
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
_TEMP_NAME = re.compile(r"^\..*\.(\d+)@([A-Za-z0-9-]*)\.[a-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")
_STALE_MARGIN_S = 2.0  # clock skew between a process's start time and file times


def check_output(path, inputs=(), *, force: bool = False, kind: str = "archive") -> Path:
    """Refuse an unsafe output before any work is done; return it as a Path.

    ``inputs``: every file the run reads (a recording's data files, the archive being
    restored). ``kind``: "archive" (compress) or "recording" (restore, export).

    Raises
    ------
    BadInputError
        The output is an input, not a regular file, exists without ``force``, or
        (archives) has a recording format's extension or is not an archive.
    WriteError
        The output's folder cannot be written (permission denied, read-only file system).
    """
    path = Path(path)
    _check_folder(path)
    targets = [path] + [path.with_suffix(e) for e in COMPANIONS.get(path.suffix.lower(), ())
                        if kind == "recording"]
    for target in targets:
        same = _same_file(target, inputs)
        if same is not None:
            raise BadInputError(target, f"is the input {same}; choose another output (even --force never "
                                "writes over an input)")
    if kind == "archive":
        ext = _recording_extension(path.name)
        if ext:
            raise BadInputError(path, f"{ext} is a recording format's extension; name the archive *.bc.h5")
    for target in targets:
        _check_target(target, force, kind)
    return path


def _check_folder(path: Path) -> None:
    folder = path.parent
    try:
        st = os.stat(folder)
    except OSError as exc:
        what = "does not exist" if exc.errno == errno.ENOENT else os_errors.problem(exc)
        raise BadInputError(path, f"output folder {folder} {what}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise BadInputError(path, f"output folder {folder} is not a folder")
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise BadInputError(path, f"file name too long ({len(os.fsencode(path.name))} bytes; "
                            f"this file system allows {limit})")
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = hasattr(os, "ST_RDONLY") and os.statvfs(folder).f_flag & os.ST_RDONLY
        raise WriteError(folder, "read-only file system; write elsewhere" if read_only
                         else "permission denied: cannot create files in this folder")


def _recording_extension(name: str) -> str | None:
    lower = name.lower()
    return next((e for e in RECORDING_EXTENSIONS if lower.endswith(e)), None)


def _check_target(target: Path, force: bool, kind: str) -> None:
    try:
        lst = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadInputError(target, os_errors.problem(exc) or str(exc)) from None
    if stat.S_ISLNK(lst.st_mode):
        raise BadInputError(target, f"is a symbolic link (to {os.readlink(target)}); give a regular file's "
                            "path (--force never replaces a link)")
    if not stat.S_ISREG(lst.st_mode):
        raise BadInputError(target, f"is {_kind_of(lst.st_mode)}, not a regular file; choose another output "
                            "(--force replaces only regular files)")
    if not force:
        raise BadInputError(target, "exists (use --force / overwrite=True to replace it)")
    from ..container.journal import in_use

    if in_use(target):
        raise BadInputError(target, "is a live recording still being written by a running process; --force never "
                            "replaces it (stop that process first)")
    if kind == "archive" and not is_archive(target):
        raise BadInputError(target, "exists and is not a biocompress archive; --force replaces only archives")


def _same_file(target: Path, inputs) -> Path | None:
    try:
        st = os.stat(target)
    except OSError:
        return None
    for p in inputs:
        try:
            other = os.stat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
            return Path(p)
    return None


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def is_archive(path) -> bool:
    """Whether ``path`` is an HDF5 file whose root says it is a biocompress archive, or a live
    recording's journal (a biocompress archive not yet finalized)."""
    import h5py

    from ..container.journal import is_journal
    from ..container.layout import FORMAT_NAME, get_text

    if is_journal(path):
        return True
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return get_text(f.attrs, "format") == FORMAT_NAME
    except Exception:  # noqa: BLE001 - any file h5py cannot read is not an archive
        return False


# --- temporary files ----------------------------------------------------------------------
def temporary(dst, *, folder: bool = False) -> Path:
    """Create an empty temporary file (or folder) beside ``dst``, named for this process.

    Stale temporaries in that folder are removed first.
    """
    dst = Path(dst)
    remove_stale_temporaries(dst.parent)
    prefix = f".{dst.name[:80]}.{os.getpid()}@{_HOST}."
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=dst.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=dst.parent)
    os.close(fd)
    return Path(tmp)


def is_temporary(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporaries of writers that are gone from ``folder``; return them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = _TEMP_NAME.match(entry.name)
        if found is None or found.group(2) != _HOST:  # another machine's PIDs mean nothing here
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not _writer_gone(int(found.group(1)), st.st_mtime):
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(entry.path)
            else:
                continue  # never made by a writer: leave it
        except OSError:
            continue  # removed meanwhile, or not ours to remove
        removed.append(Path(entry.path))
    return removed


def _writer_gone(pid: int, mtime: float) -> bool:
    if pid == os.getpid():
        return False
    started = processes.process_start_time(pid)
    if started is None:
        return True
    return started > mtime + _STALE_MARGIN_S  # the PID was reused after the file was last written


@contextmanager
def writing(dst):
    """Turn operating-system errors while writing ``dst`` (disk full, permission denied,
    file size limit...) into a WriteError naming it; other errors pass unchanged."""
    dst = Path(dst)
    try:
        yield
    except (OSError, RuntimeError) as exc:
        what = os_errors.problem(exc)
        where = os_errors.path_of(exc)
        if isinstance(exc, BiocompressError) or what is None or where is not None and not _beside(where, dst):
            raise
        raise WriteError(dst, f"cannot write: {what}") from exc


def _beside(name: str, dst: Path) -> bool:
    """Whether a path an error names is ``dst``, its folder or a file in that folder."""
    p = Path(name)
    try:
        return p == dst or p == dst.parent or p.parent.resolve() == dst.parent.resolve()
    except OSError:
        return False
