"""Sources of chunks: any ``mne.io.Raw`` (a recording file), or arrays a program already has
(all at once, or as a live source handing them over as they come)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import BadInputError
from ..io.source import iter_samples
from .blocks import Chunk
from .description import NUMPY_FORMAT, StreamDescription


def raw_chunks(raw, block: int, whole: np.ndarray | None = None) -> Iterator[Chunk]:
    """Consecutive windows of ``block`` samples of an MNE recording, read as they are needed
    (``whole``: the recording already read, where MNE's values need the whole file)."""
    for t0, _, x in iter_samples(raw, block, whole):
        yield Chunk(t0, x)


def array_chunks(arrays: Iterable[np.ndarray], timestamps: Iterable[np.ndarray] | None = None) -> Iterator[Chunk]:
    """Chunks from arrays of any length (n_channels, n), in order: an acquisition loop's output."""
    start, stamps = 0, iter(timestamps) if timestamps is not None else None
    for x in arrays:
        x = np.asarray(x, np.float64)
        if x.ndim != 2:
            raise ValueError(f"chunks must be (n_channels, n_samples), got shape {x.shape}")
        t = np.asarray(next(stamps), np.float64) if stamps is not None else None
        yield Chunk(start, x, t)
        start += x.shape[1]


class ArraySource:
    """Arrays a program hands over, as a live source: each (n_channels, n) in the stream's
    value format and unit (values that the format cannot hold exactly are refused, never
    rounded), optionally with one timestamp per sample. ``exhausted`` once ``arrays`` ends."""

    def __init__(self, description: StreamDescription, arrays: Iterable, timestamps: Iterable | None = None):
        self.description = description
        self._arrays = iter(arrays)
        self._stamps = iter(timestamps) if timestamps is not None else None
        self.n_samples = 0
        self.exhausted = False
        self.notes: list[str] = []
        self.waiting = 0

    def read(self, timeout: float = 0.0) -> Chunk | None:
        try:
            x = np.asarray(next(self._arrays))
        except StopIteration:
            self.exhausted = True
            return None
        d = self.description
        if x.ndim != 2 or x.shape[0] != d.n_channels:
            raise BadInputError(None, f"chunks must be arrays of shape (n_channels={d.n_channels}, n_samples); "
                                f"got shape {x.shape} at sample {self.n_samples}")
        fmt = NUMPY_FORMAT[d.value_format]
        with np.errstate(invalid="ignore", over="ignore"):
            held = x.astype(fmt)
            exact = x.dtype == fmt or np.array_equal(held.astype(x.dtype), x, equal_nan=x.dtype.kind == "f")
        if not exact:
            raise BadInputError(None, f"the chunk at sample {self.n_samples} holds {x.dtype} values that "
                                f"{d.value_format} cannot represent exactly; declare value_format to match")
        ts = None
        if self._stamps is not None:
            try:
                ts = np.asarray(next(self._stamps), np.float64)
            except StopIteration:
                raise BadInputError(None, f"no timestamps for the chunk at sample {self.n_samples}") from None
            if ts.shape != (x.shape[1],):
                raise BadInputError(None, f"{ts.size} timestamps for a chunk of {x.shape[1]} samples")
        stored = d.stored(held.T)
        chunk = Chunk(self.n_samples, d.recipe.forward(stored, np.arange(d.n_channels)), ts, stored)
        self.n_samples = chunk.stop
        return chunk

    def markers(self) -> list:
        return []

    def clock_offsets(self) -> list:
        return []

    def offset(self, stream) -> float:
        return 0.0

    def relative_offset(self, stream) -> float:
        return 0.0
