"""Archives as ``mne.io.Raw``: only the blocks a request touches are decoded.

A lazy Raw reopens its archive for every read: MNE copies Raw objects (``raw.copy()``)
and pickles them for parallel jobs, which an open HDF5 handle would not survive. The
file's identity (device, inode, size, modification time and the samples' SHA-256) is
taken when the Raw is made and checked on every read, so a Raw never mixes samples of
two archives: one replaced at its path (``compress --force``) or rewritten in place
raises :class:`CorruptArchiveError` instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from mne.io import BaseRaw

from ..container.reader import Archive
from ..errors import BadInputError, CorruptArchiveError


class RawArchive(BaseRaw):
    """An ``mne.io.Raw`` backed by a biocompress archive (use :func:`read_raw`)."""

    def __init__(self, fname, preload=False, verbose=None, stream=None):
        fname = Path(fname)
        with Archive(fname, stream=stream) as arc:
            if arc.n_samples == 0:
                raise BadInputError(fname, f"stream {_which(arc)} holds no samples: there is nothing to read as a Raw")
            key = None if not arc.base else arc.stream_header.get("index")
            info = arc.info
            annotations = arc.annotations
            first, n = arc.first_samp, arc.n_samples
            identity = archive_identity(arc)
            _warn_if_lossy(fname, arc)
        super().__init__(
            info, preload=preload, first_samps=(first,), last_samps=(first + n - 1,),
            filenames=(str(fname.resolve()),), orig_format="double", verbose=verbose,
            raw_extras=[{"n_channels": info["nchan"], "first_samp": first, "identity": identity, "stream": key,
                         "cals": np.array([ch["range"] * ch["cal"] for ch in info["chs"]])}],
        )
        if annotations.orig_time is None:
            # onsets were stored as MNE reported them (first_time included); set_annotations
            # would add first_time again, and subtracting it first is not exact in floats
            self._annotations = annotations
        else:
            self.set_annotations(annotations, emit_warning=False)

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
        extras = self._raw_extras[fi]
        every = np.arange(extras["n_channels"])
        with Archive(self.filenames[fi], stream=extras.get("stream")) as arc:  # start/stop count from first_samp
            if archive_identity(arc) != extras["identity"]:
                raise CorruptArchiveError(f"{self.filenames[fi]}: the archive was replaced or modified since it was "
                                          "opened; open it again with read_raw")
            x = arc.read(start - extras["first_samp"], stop - extras["first_samp"], picks=every if mult is not None else every[idx])
        if mult is None:
            data[:] = x  # archives hold MNE's calibrated values already
        else:
            # mult (projector/compensation) expects uncalibrated rows and carries the cals itself
            data[:] = mult @ (x / extras["cals"][:, np.newaxis])


def archive_identity(arc: Archive) -> tuple:
    """What tells the archive ``arc`` holds open from any other at its path (``Archive.identity``:
    a finished archive's device, inode, size, mtime and samples SHA-256; a live journal's device,
    inode and first frame, since it only grows)."""
    return arc.identity()


_WARNED: set[str] = set()


def _warn_if_lossy(fname: Path, arc: Archive) -> None:
    """Once per archive and process: say that the samples are approximations, and how close."""
    key = str(fname.resolve())
    if arc.mode == "lossless" or key in _WARNED:
        return
    _WARNED.add(key)
    from .fidelity_text import headline

    how = headline(arc.fidelity) or "fidelity not recorded"
    warnings.warn(f"{fname.name} is a {arc.mode} archive: its samples approximate the source ({how})",
                  stacklevel=3)


def read_raw(archive, preload=False, verbose=None, stream=None) -> RawArchive:
    """Open an archive as an ``mne.io.Raw`` (lazy unless ``preload``).

    ``stream``: in an archive of an XDF file, the stream to read (its number, name or type,
    see ``biocompress.open(path).streams``); default the main stream."""
    return RawArchive(archive, preload=preload, verbose=verbose, stream=stream)


def _which(arc: Archive) -> str:
    head = arc.stream_header
    return f"{head.get('index', '')} ({head.get('name', '?')}, {head.get('type', '?')})" if head else "of the archive"
