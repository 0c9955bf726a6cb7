"""Open any recording MNE reads, with the fallbacks real files need."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import mne

from ..errors import BadInputError
from .edf_native import samples_per_record

# Multi-file formats: MNE is pointed at the header; the data file travels with it.
SIDECAR_OF = {".eeg": ".vhdr", ".vmrk": ".vhdr", ".fdt": ".set", ".dat": ".lay"}


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
    if not path.exists():
        raise BadInputError(path, "no such file or directory")
    if path.is_file() and path.stat().st_size == 0:
        raise BadInputError(path, "file is empty")
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


def _describe_read_failure(path: Path, exc: Exception) -> str:
    if path.is_file() and _looks_like_text(path) and path.suffix.lower() in (".edf", ".bdf"):
        return f"not a valid {path.suffix.upper()[1:]} file (it contains text, not an EDF header)"
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ValueError) and "Unsupported file type" in msg:
        return f"file format not supported by MNE ({path.suffix or 'no extension'})"
    return f"MNE cannot read this file: {type(exc).__name__}: {msg}"


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
