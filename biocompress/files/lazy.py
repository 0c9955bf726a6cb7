"""Archives as lazy Dask arrays: analysis at scale without unpacking.

``biocompress.open(path).to_dask()`` is a (channels × samples) float64 array of MNE's
values, chunked along time on the archive's blocks; a chunk is decoded only when it is
computed, by whichever worker computes it (each chunk opens the archive by its path, so
the array pickles to a cluster's workers). As with :func:`~biocompress.files.read.read_raw`,
the file's identity is taken when the array is made and checked on every read: a chunk
never comes from another file put at the same path.

``biocompress.open(folder)`` gives an :class:`ArchiveFolder`, whose ``to_dask()`` maps each
archive's path (relative to the folder) to its array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInputError, CorruptArchiveError


class _Samples:
    """What ``dask.array.from_array`` slices: (channels, samples) of one archive."""

    def __init__(self, path: Path, shape: tuple[int, int], identity: tuple):
        self.path = str(path)
        self.shape = shape
        self.dtype = np.dtype(np.float64)
        self.ndim = 2
        self.identity = identity

    def __dask_tokenize__(self):
        return ("biocompress-archive", self.path, self.identity)

    def __getitem__(self, key):
        from ..container.reader import Archive
        from ..system.threads import one_blas_thread
        from .read import archive_identity

        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        channels = np.arange(self.shape[0])[rows]
        start, stop, step = cols.indices(self.shape[1]) if isinstance(cols, slice) else (None, None, None)
        if step is None:  # an integer or index array along time: read their span
            index = np.atleast_1d(np.arange(self.shape[1])[cols])
            start, stop, step = (int(index.min()), int(index.max()) + 1, None) if index.size else (0, 0, None)
        with Archive(self.path) as arc, one_blas_thread():
            if archive_identity(arc) != self.identity:
                raise CorruptArchiveError(f"{self.path}: the archive was replaced or modified since the array was "
                                          "made; make it again")
            x = arc.read(start, max(start, stop), picks=np.atleast_1d(channels)) if stop > start and \
                np.size(channels) else np.empty((np.size(channels), max(0, stop - start)))
        if step is None:
            x = x[:, np.atleast_1d(np.arange(self.shape[1])[cols]) - start]
            if not isinstance(cols, (slice, list, np.ndarray)):
                x = x[:, 0]
        elif step != 1:
            x = x[:, ::step]
        if np.ndim(channels) == 0:
            x = x[0]
        return x


def archive_to_dask(path, chunk_samples: int | None = None):
    """A lazy (channels × samples) Dask array of the archive at ``path``."""
    import dask.array as da

    from ..container.reader import Archive
    from .read import archive_identity

    path = Path(path).resolve()
    with Archive(path) as arc:
        shape = (arc.n_channels, arc.n_samples)
        block = int(arc.attrs.get("block_samples", 16384))
        identity = archive_identity(arc)
    step = int(chunk_samples) if chunk_samples else block
    if step < 1:
        raise BadInputError(None, f"chunk_samples must be positive; got {chunk_samples}")
    return da.from_array(_Samples(path, shape, identity), chunks=(shape[0], step), asarray=False, fancy=False,
                         lock=False, name=f"biocompress-{path.name}-" + "-".join(map(str, identity[:4])),
                         meta=np.empty((0, 0), np.float64))


class ArchiveFolder:
    """The archives (``*.bc.h5``) under a folder, found recursively."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise BadInputError(self.folder, "is not a folder")
        self.paths = sorted(p for p in self.folder.rglob("*.bc.h5") if p.is_file())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __len__(self) -> int:
        return len(self.paths)

    def to_dask(self, chunk_samples: int | None = None) -> dict:
        """{path relative to the folder (POSIX): lazy Dask array} for every archive."""
        return {p.relative_to(self.folder).as_posix(): archive_to_dask(p, chunk_samples) for p in self.paths}
