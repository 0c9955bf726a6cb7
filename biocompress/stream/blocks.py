"""What flows through the pipeline: chunks of samples in, coded blocks out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..container.layout import DATA  # what a block holds: samples (DATA) or their timestamps (TIMES)


@dataclass(frozen=True)
class Chunk:
    """Samples ``[start, start + n)`` of every channel, as MNE float64 values (n_channels, n);
    ``timestamps``: one per sample where the source has them (LSL, XDF); ``stored``: where the
    source knows them, the samples as it delivered them (n_channels, n; float32, int16…), of
    which ``values`` is the stream recipe's image (lanes then take codes from them directly)."""

    start: int
    values: np.ndarray
    timestamps: np.ndarray | None = None
    stored: np.ndarray | None = None

    @property
    def stop(self) -> int:
        return self.start + self.values.shape[1]

    def head(self, n: int) -> "Chunk":
        """The first ``n`` samples."""
        return Chunk(self.start, self.values[:, :n], None if self.timestamps is None else self.timestamps[:n],
                     None if self.stored is None else self.stored[:, :n])




@dataclass(frozen=True)
class Block:
    """One coded block: samples ``[t_start, t_stop)`` of channels ``[ch_start, ch_stop)``;
    ``section``: DATA, or TIMES for a block of the stream's timestamps."""

    t_start: int
    t_stop: int
    ch_start: int
    ch_stop: int
    config: dict
    payload: bytes
    section: str = DATA


@dataclass(frozen=True)
class EncodeJob:
    """A block still to be encoded: integer ``codes`` through the codec ``config`` (picklable,
    so that it can run on a worker process)."""

    t_start: int
    t_stop: int
    ch_start: int
    ch_stop: int
    config: dict
    codes: np.ndarray
    section: str = DATA


@dataclass(frozen=True)
class Marker:
    """An event of a marker stream: its exact ``timestamp`` (the marker stream's clock) and text."""

    stream: str
    timestamp: float
    description: str
    duration: float = 0.0


@dataclass(frozen=True)
class ClockOffset:
    """A stream clock's offset measured at ``local_time`` (this machine's LSL clock):
    ``timestamp + offset`` maps the stream's timestamps onto this machine's clock."""

    stream: str
    local_time: float
    offset: float
