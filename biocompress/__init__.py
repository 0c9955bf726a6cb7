"""biocompress: lossless and lossy compression of EEG/MEG recordings into HDF5 archives."""

from ._version import __version__
from .files.compress import compress
from .container.reader import Archive
from .errors import BadInputError, BiocompressError, CorruptArchiveError, VerificationError
from .files.read import read_raw


def open(archive):  # noqa: A001  (mirrors h5py.File / builtins.open on purpose)
    """Low-level access: info, block index, ``read(start, stop, picks)``, ``to_dask()``.
    A folder gives an ``ArchiveFolder`` of the archives under it (``to_dask()``: one lazy
    array per archive)."""
    import os

    if os.path.isdir(archive):
        from .files.lazy import ArchiveFolder

        return ArchiveFolder(archive)
    return Archive(archive)


__all__ = [
    "Archive", "BadInputError", "BiocompressError", "CorruptArchiveError", "VerificationError",
    "__version__", "compress", "open", "read_raw",
]
