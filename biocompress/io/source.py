"""Open any recording MNE reads, with the fallbacks real files need."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import warnings
from pathlib import Path

import mne

from ..system import os_errors
from ..errors import BadInputError
from ..system.outputs import is_archive
from .edf_file import read_layout
from .edf_native import samples_per_record

# Multi-file formats: MNE is pointed at the header; the data file travels with it.
SIDECAR_OF = {".eeg": ".vhdr", ".vmrk": ".vhdr", ".fdt": ".set", ".dat": ".lay"}
FOLDER_FORMATS = (".ds", ".mff", ".mefd")  # recordings that are folders (CTF, EGI, MEF3)
TEXT_FORMATS = (".vhdr", ".vmrk", ".ahdr", ".txt", ".asc", ".hdr", ".csv", ".lay")  # formats that are text
EDF_FAMILY = (".edf", ".bdf", ".rec")


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(256)
    return bool(head) and b"\x00" not in head and head.isascii() and not head[:8].strip().isdigit()


# Warnings about the library rather than the file
_NOT_ABOUT_THE_FILE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning)


def open_raw(path) -> mne.io.BaseRaw:
    """Open ``path`` lazily with MNE (``preload=False``), retrying known fallbacks.

    Raises
    ------
    BadInputError
        Naming the file and the problem: missing, unreadable, empty or without channels.
    """
    return open_source(path)[0]


def open_source(path) -> tuple[mne.io.BaseRaw, list[str]]:
    """:func:`open_raw`, and the warnings MNE gave on opening the file (a header whose record
    count disagrees with the file size, a file cut mid-record, …): each once, in order."""
    path = Path(path)
    problem = _path_problem(path)
    if problem is not None:
        raise BadInputError(path, problem)
    if path.suffix.lower() in SIDECAR_OF:
        raise BadInputError(
            path, f"this is a data file; open its header ({SIDECAR_OF[path.suffix.lower()]}) instead"
        )
    attempts = [{}]
    if path.suffix.lower() in (".edf", ".bdf", ".gdf"):
        attempts.append({"encoding": "latin1"})
    errors = []
    for kwargs in attempts:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                raw = mne.io.read_raw(os.fspath(path), preload=False, verbose="WARNING", **kwargs)
            break
        except Exception as exc:  # MNE raises many types for unreadable files
            errors.append(exc)
    else:
        raise BadInputError(path, _describe_read_failure(path, errors[0])) from errors[0]
    if raw.info["nchan"] == 0:
        raise BadInputError(path, "recording has zero channels")
    if raw.n_times == 0:
        raise BadInputError(path, "recording has zero samples")
    said = [str(w.message).strip() for w in caught if not issubclass(w.category, _NOT_ABOUT_THE_FILE)]
    return raw, list(dict.fromkeys(m for m in said if m))


def _path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a recording, found before MNE tries (None: let MNE try)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"broken symbolic link (to {os.readlink(path)})" if os.path.islink(path) else "no such file or directory"
        return os_errors.problem(exc) or str(exc)
    if stat.S_ISDIR(st.st_mode):
        if path.suffix.lower() in FOLDER_FORMATS:
            return None
        return "is a folder, not a recording file (give the recording itself: .edf, .bdf, .fif, .vhdr, ...)"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a device, FIFO or socket), not a recording"
    if st.st_size == 0:
        return "file is empty"
    if not os.access(path, os.R_OK):
        return "permission denied (cannot read it)"
    return None


def _describe_read_failure(path: Path, exc: Exception) -> str:
    ext = path.suffix.lower()
    if ext in EDF_FAMILY and path.is_file():
        if _looks_like_text(path):
            return f"not a valid {ext.upper()[1:]} file (it contains text, not an EDF header)"
        problem = _edf_problem(path)
        if problem is not None:
            return problem
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if is_archive(path):
        return "is a biocompress archive, not a recording (`biocompress restore` or `decompress` gives it back)"
    if isinstance(exc, ValueError) and "Unsupported file type" in msg:
        return f"file format not supported by MNE ({path.suffix or 'no extension'})"
    detail = type(exc).__name__ + (f": {msg}" if msg and msg != type(exc).__name__ else "")
    if path.is_file() and _looks_like_text(path):
        if ext not in TEXT_FORMATS:
            return f"is a text file, not a {ext or 'recording'} recording MNE reads"
        return f"a text file MNE cannot read as a {ext} recording ({detail})"
    return f"MNE cannot read this file as a {ext or '(no extension)'} recording ({detail})"


def _edf_problem(path: Path) -> str | None:
    """What is wrong with an EDF/BDF file MNE failed to read, from its header; None if nothing is."""
    try:
        layout = read_layout(path)
    except BadInputError as exc:
        return exc.problem
    except OSError:
        return None
    if layout.n_records == 0:
        return (f"the {layout.kind} file holds no data record: only its header "
                f"({len(layout.header)} bytes of {layout.file_size}), so no samples")
    return None


def needs_whole_read(raw) -> bool:
    """MNE resamples mixed-rate EDF/BDF signals over the whole read: those must be read in one go."""
    per_record = samples_per_record(raw)
    return per_record is not None and len(set(per_record.tolist())) > 1


def iter_samples(raw, block: int, whole=None):
    """(start, stop, MNE float64 samples) windows of ``block`` samples, in time order.

    Reads window by window, except where MNE's values depend on reading the whole
    file (mixed-rate EDF/BDF); pass ``whole`` if it has been read already.
    """
    if whole is None and needs_whole_read(raw):
        whole = raw.get_data()
    n = raw.n_times
    for t0 in range(0, n, block):
        t1 = min(n, t0 + block)
        yield t0, t1, whole[:, t0:t1] if whole is not None else raw.get_data(start=t0, stop=t1)


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()
