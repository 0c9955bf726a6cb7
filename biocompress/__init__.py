"""biocompress: lossless and lossy compression of EEG/MEG recordings into HDF5 archives."""

from ._version import __version__
from .errors import BadInputError, BiocompressError, CorruptArchiveError, VerificationError

# Imported on first use: ``import biocompress`` (which every run of the CLI does first) stays
# cheap, so the CLI takes over SIGTERM/SIGINT before the heavy imports (MNE, h5py, numba).
_LAZY = {"compress": ".files.compress", "Archive": ".container.reader", "read_raw": ".files.read"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open(archive):  # noqa: A001  (mirrors h5py.File / builtins.open on purpose)
    """Low-level access: info, block index, ``read(start, stop, picks)``, ``to_dask()``.
    A folder gives an ``ArchiveFolder`` of the archives under it (``to_dask()``: one lazy
    array per archive)."""
    import os

    if os.path.isdir(archive):
        from .files.lazy import ArchiveFolder

        return ArchiveFolder(archive)
    from .container.reader import Archive

    return Archive(archive)


__all__ = [
    "Archive", "BadInputError", "BiocompressError", "CorruptArchiveError", "VerificationError",
    "__version__", "compress", "open", "read_raw",
]
