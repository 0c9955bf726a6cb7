"""biocompress: lossless and lossy compression of EEG/MEG recordings into HDF5 archives."""

from ._version import __version__
from .files.compress import compress
from .container.reader import Archive
from .errors import BadInputError, BiocompressError, CorruptArchiveError, VerificationError
from .files.read import read_raw


def open(archive) -> Archive:  # noqa: A001  (mirrors h5py.File / builtins.open on purpose)
    """Low-level access: info, block index, ``read(start, stop, picks)``."""
    return Archive(archive)


__all__ = [
    "Archive", "BadInputError", "BiocompressError", "CorruptArchiveError", "VerificationError",
    "__version__", "compress", "open", "read_raw",
]
