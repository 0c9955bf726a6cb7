"""Sources of chunks: any ``mne.io.Raw`` (a recording file), or arrays a program already has."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ..io.source import iter_samples
from .blocks import Chunk


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
