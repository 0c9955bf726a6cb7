"""``dwt-v1``: each channel through an orthonormal wavelet transform, coefficients quantized
uniformly and range-coded (lossy).

Daubechies-4 with periodized boundaries (PyWavelets ``db4``, mode ``periodization``): the
transform is orthonormal and critically sampled, so a uniform step ``s_c`` on channel c's
coefficients errs by about s_c/√12 RMS per sample, whatever the signal, and coarse steps zero
whole sub-bands at no cost. A PRDN target's rate control weighs it against the autoencoder
and the bounded residual (``stream/plans.py``): where the autoencoder does not know a
recording's spectrum (rates, montages it was not trained on), it keeps the archive at least
as small as a wavelet coder's.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_declared_shape, register_codec
from ..lossless import residual_coder

WAVELET, MODE, FILTER_LENGTH = "db4", "periodization", 8
MAX_LEVELS = 8
SEGMENT = 256
MAX_CODE = 2.0**40
_HEADER = struct.Struct("<HI")  # channels, samples


def levels_for(n: int, levels: int) -> int:
    """Decomposition levels for a block of ``n`` samples (fewer for short blocks)."""
    import pywt

    return max(0, min(levels, pywt.dwt_max_level(n, FILTER_LENGTH)))


def _lengths(n: int, levels: int) -> list[int]:
    """Coefficient array lengths, approximation first (periodization: ⌈n/2⌉ per level)."""
    sizes, m = [], n
    for _ in range(levels):
        m = -(-m // 2)
        sizes.append(m)
    return [sizes[-1]] + sizes[::-1] if levels else [n]


def encode_coefficients(x: np.ndarray, steps: np.ndarray, max_levels: int) -> bytes:
    """Rows of ``x`` through the wavelet transform, row r's coefficients rounded to multiples
    of ``steps[r]``, range-coded (levels: up to ``max_levels``, fewer for short blocks)."""
    import pywt

    levels = levels_for(x.shape[1], max_levels)
    rows = []
    for row, step in zip(x, steps):
        coeffs = pywt.wavedec(row, WAVELET, mode=MODE, level=levels) if levels else [row]
        q = np.rint(np.concatenate(coeffs) / step)
        if not (np.abs(q) <= MAX_CODE).all():  # NaN included
            raise ValueError("wavelet coefficients too large for the step (or not finite)")
        rows.append(q.astype(np.int64))
    return residual_coder.encode_rows(rows, SEGMENT, shaped=True) if rows else b""


def read_header(codec_id: str, payload: bytes, n_rows: int) -> tuple[int, int, bytes]:
    """(rows, samples, body) of a wavelet payload, checked against the configuration's rows."""
    if len(payload) < _HEADER.size:
        raise CorruptArchiveError(f"{codec_id} payload shorter than its header")
    n_ch, n = _HEADER.unpack_from(payload)
    if n_ch != n_rows:
        raise CorruptArchiveError(f"{codec_id} block of {n_ch} channels for a config of {n_rows}")
    check_declared_shape(codec_id, n_ch, n)
    return n_ch, n, payload[_HEADER.size :]


def decode_coefficients(codec_id: str, body: bytes, n_rows: int, n: int, steps: np.ndarray,
                        max_levels: int) -> np.ndarray:
    """The inverse of :func:`encode_coefficients`: (n_rows, n) float64."""
    import pywt

    levels = levels_for(n, max_levels) if n else 0
    sizes = _lengths(n, levels)
    total = sum(sizes)
    rows = residual_coder.decode_rows(body, np.full(n_rows, total, np.int64), SEGMENT,
                                      shaped=True) if n_rows and n else [np.zeros(0, np.int64)] * n_rows
    out = np.empty((n_rows, n))
    ends = np.cumsum(sizes)
    for r, q in enumerate(rows):
        if q.size != total or not (np.abs(q) <= MAX_CODE).all():
            raise CorruptArchiveError(f"{codec_id} coefficients out of range")
        parts = np.split(q.astype(np.float64) * steps[r], ends[:-1])
        out[r] = (pywt.waverec(parts, WAVELET, mode=MODE) if levels else parts[0])[:n]
    return out


@register_codec
class WaveletCodec(Codec):
    """Float values (n_channels, n) → their wavelet approximation, as float64."""

    codec_id = "dwt-v1"
    config_fields = ("levels", "steps", "means")
    lossy = True

    def __init__(self, levels: int, steps, means):
        s, m = np.asarray(steps, np.float64), np.asarray(means, np.float64)
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= MAX_LEVELS:
            raise CorruptArchiveError(f"dwt-v1: levels must be an integer 1…{MAX_LEVELS}, got {levels!r}")
        if s.ndim != 1 or s.shape != m.shape or not (np.isfinite(s).all() and np.isfinite(m).all() and (s > 0).all()):
            raise CorruptArchiveError("dwt-v1: steps and means must be finite, one each per channel, steps > 0")
        self.levels, self.steps, self.means = levels, s.tolist(), m.tolist()
        self._s, self._m = s, m

    def encode(self, values) -> bytes:
        x = np.asarray(values, np.float64)
        if x.ndim != 2 or x.shape[0] != self._s.size:
            raise ValueError(f"dwt-v1 codes {self._s.size} channels, got shape {x.shape}")
        return _HEADER.pack(x.shape[0], x.shape[1]) + encode_coefficients(x - self._m[:, None], self._s, self.levels)

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, body = read_header("dwt-v1", payload, self._s.size)
        return decode_coefficients("dwt-v1", body, n_ch, n, self._s, self.levels) + self._m[:, None]

    def stream(self, block: int) -> "BlockStream":
        return BlockStream(self, block)


class BlockStream:
    """Blocks of ``block`` samples, each coded on its own as it completes."""

    def __init__(self, codec: Codec, block: int):
        self.codec, self.block = codec, block
        self._held: list[np.ndarray] = []
        self._n = 0
        self._t0 = 0

    def push(self, x: np.ndarray):
        self._held.append(np.asarray(x, np.float64))
        self._n += x.shape[1]
        out = []
        while self._n >= self.block:
            out.append(self._take(self.block))
        return out

    def finish(self):
        return [self._take(self._n)] if self._n else []

    def _take(self, n: int):
        held = np.concatenate(self._held, axis=1)
        block, rest = held[:, :n], held[:, n:]
        self._held, self._n = ([rest] if rest.shape[1] else []), rest.shape[1]
        t0, self._t0 = self._t0, self._t0 + n
        return t0, t0 + n, self.codec.encode(block)


def steps_for(first: np.ndarray, aim: float) -> np.ndarray:
    """Per channel, the step whose uniform error is about ``aim`` % of the channel's spread."""
    sigma = first.std(axis=1)
    floor = float(np.median(sigma[sigma > 0])) if (sigma > 0).any() else 1.0
    return np.sqrt(12) * aim / 100 * np.where(sigma > 0, sigma, floor)
