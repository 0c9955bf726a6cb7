"""``grid-v1``: float samples put on a fine per-channel grid, then coded by ``nl-v1``.

Recordings stored as floats (EEGLAB, EGI MFF, FIF MEG, BrainVision float…) have no
integer codes for the near-lossless coder's bounded residual, so a PRDN target out of
the autoencoder's reach used to mean storing them exactly. ``grid-v1`` gives them codes:
channel c's value x becomes round((x − o_c) / g_c), ``nl-v1`` (autoencoder sketch plus
a residual within δ_c grid steps) codes those, and the decoder returns q · g_c + o_c.

The grid is chosen :data:`STEPS_PER_BOUND` times finer than the residual's bound, so
rounding to it adds about 1/(3·STEPS_PER_BOUND²) of the bound's error power: 0.1 % at 16.
"""

from __future__ import annotations

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, register_codec
from .near_lossless import NearLosslessCodec

STEPS_PER_BOUND = 16
MAX_GRID_CODE = 2.0**40  # |round((x − o)/g)| beyond this: the grid is far too fine for the values


@register_codec
class GridCodec(Codec):
    """Float values (n_channels, n) → values within about δ_c · g_c of them, as float64."""

    codec_id = "grid-v1"
    config_fields = ("grid", "offsets", "inner")
    lossy = True

    def __init__(self, grid, offsets, inner: dict):
        g, o = np.asarray(grid, np.float64), np.asarray(offsets, np.float64)
        if g.ndim != 1 or g.shape != o.shape or not (np.isfinite(g).all() and np.isfinite(o).all() and (g > 0).all()):
            raise CorruptArchiveError("grid-v1: grid and offsets must be finite, one each per channel, grid > 0")
        if not isinstance(inner, dict) or inner.get("id") != NearLosslessCodec.codec_id:
            raise CorruptArchiveError("grid-v1: the inner codec must be nl-v1")
        self.inner = NearLosslessCodec.from_config(inner)
        if len(self.inner.deltas) != g.size:
            raise CorruptArchiveError("grid-v1: grid and inner codec disagree on the number of channels")
        self.grid, self.offsets = g.tolist(), o.tolist()  # floats in JSON round-trip exactly
        self._g, self._o = g[:, None], o[:, None]

    def get_config(self) -> dict:
        return {"id": self.codec_id, "grid": self.grid, "offsets": self.offsets, "inner": self.inner.get_config()}

    def to_codes(self, x: np.ndarray) -> np.ndarray:
        """The grid's integers for values ``x`` (n_channels, n)."""
        q = np.rint((np.asarray(x, np.float64) - self._o) / self._g)
        if not (np.abs(q) <= MAX_GRID_CODE).all():  # NaN included
            raise ValueError("values too far from the grid's offset for its step (or not finite)")
        return q.astype(np.int64)

    def encode(self, x) -> bytes:
        return self.inner.encode(self.to_codes(x))

    def decode(self, payload: bytes) -> np.ndarray:
        q = self.inner.decode(payload)
        if q.shape[0] != self._g.shape[0]:
            raise CorruptArchiveError("grid-v1 block has another number of channels than its grid")
        return q * self._g + self._o

    def stream(self, block: int):
        """The inner coder's stream encoder: it takes grid integers (``to_codes``)."""
        return self.inner.stream(block)


def grid_for(first: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grid, offsets) per channel: a step :data:`STEPS_PER_BOUND` times finer than each
    channel's error bound ``bounds`` (in its unit; > 0), centred on its median."""
    offsets = np.median(first, axis=1)
    return np.asarray(bounds, np.float64) / STEPS_PER_BOUND, offsets
