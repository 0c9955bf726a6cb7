"""``dwt-v1``: each channel through an orthonormal wavelet transform, coefficients quantized
uniformly and range-coded (lossy).

Daubechies-4 with periodized boundaries (PyWavelets ``db4``, mode ``periodization``): the
transform is orthonormal and critically sampled, so a uniform step ``s_c`` on channel c's
coefficients errs by about s_c/√12 RMS per sample, whatever the signal, and coarse steps zero
whole sub-bands at no cost. A PRDN target's rate control weighs it against the autoencoder
and the bounded residual (``stream/plans.py``): where the autoencoder does not know a
recording's spectrum (rates, montages it was not trained on), it keeps the archive at least
as small as a wavelet coder's.

``dwt-v2`` is the same coder with its coefficients range-coded in context (:mod:`.coefficient_coder`).
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_declared_shape, register_codec
from ..lossless import residual_coder
from . import coefficient_coder

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


def band_sizes(n: int, max_levels: int) -> list[int]:
    """Sub-band lengths of an ``n``-sample block, approximation first."""
    return _lengths(n, levels_for(n, max_levels))


def quantize(x: np.ndarray, steps: np.ndarray, max_levels: int) -> np.ndarray:
    """Rows of ``x`` through the wavelet transform, row r's coefficients rounded to multiples of
    ``steps[r]``: int64 (rows × the concatenated sub-bands of :func:`band_sizes`)."""
    import pywt

    levels = levels_for(x.shape[1], max_levels)
    q = np.empty((x.shape[0], sum(_lengths(x.shape[1], levels))), np.int64)
    for r, (row, step) in enumerate(zip(x, steps)):
        coeffs = pywt.wavedec(row, WAVELET, mode=MODE, level=levels) if levels else [row]
        c = np.rint(np.concatenate(coeffs) / step)
        if not (np.abs(c) <= MAX_CODE).all():  # NaN included
            raise ValueError("wavelet coefficients too large for the step (or not finite)")
        q[r] = c
    return q


def reconstruct(codec_id: str, q: np.ndarray, n: int, steps: np.ndarray, max_levels: int) -> np.ndarray:
    """The inverse transform of quantized coefficients ``q`` (rows × sub-bands): (rows, n) float64."""
    import pywt

    levels = levels_for(n, max_levels) if n else 0
    sizes = _lengths(n, levels)
    out = np.empty((q.shape[0], n))
    ends = np.cumsum(sizes)
    for r, row in enumerate(q):
        if row.size != ends[-1] or not (np.abs(row) <= MAX_CODE).all():
            raise CorruptArchiveError(f"{codec_id} coefficients out of range")
        parts = np.split(row.astype(np.float64) * steps[r], ends[:-1])
        out[r] = (pywt.waverec(parts, WAVELET, mode=MODE) if levels else parts[0])[:n]
    return out


def encode_coefficients(x: np.ndarray, steps: np.ndarray, max_levels: int, adaptive: bool) -> bytes:
    """:func:`quantize`, then range-coded: as residual rows in segments (``dwt-v1``, ``sdwt-v1``)
    or ``adaptive``, with contexts (:mod:`.coefficient_coder`: ``dwt-v2``, ``sdwt-v2``)."""
    if not len(x):
        return b""
    q = quantize(x, steps, max_levels)
    if adaptive:
        return coefficient_coder.encode(q, band_sizes(x.shape[1], max_levels))
    return residual_coder.encode_rows(list(q), SEGMENT, shaped=True)


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
                        max_levels: int, adaptive: bool) -> np.ndarray:
    """The inverse of :func:`encode_coefficients`: (n_rows, n) float64."""
    if not (n_rows and n):
        return np.empty((n_rows, n))
    sizes = band_sizes(n, max_levels)
    if adaptive:
        return reconstruct(codec_id, coefficient_coder.decode(codec_id, body, n_rows, sizes), n, steps, max_levels)
    total = sum(sizes)
    rows = residual_coder.decode_rows(body, np.full(n_rows, total, np.int64), SEGMENT, shaped=True)
    if any(r.size != total for r in rows):
        raise CorruptArchiveError(f"{codec_id} coefficients out of range")
    return reconstruct(codec_id, np.array(rows, np.int64).reshape(n_rows, total), n, steps, max_levels)


@register_codec
class WaveletCodec(Codec):
    """Float values (n_channels, n) → their wavelet approximation, as float64."""

    codec_id = "dwt-v1"
    config_fields = ("levels", "steps", "means")
    lossy = True
    adaptive = False  # coefficients in segments (residual_coder); dwt-v2: with contexts

    def __init__(self, levels: int, steps, means):
        s, m = np.asarray(steps, np.float64), np.asarray(means, np.float64)
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= MAX_LEVELS:
            raise CorruptArchiveError(f"{self.codec_id}: levels must be an integer 1…{MAX_LEVELS}, got {levels!r}")
        if s.ndim != 1 or s.shape != m.shape or not (np.isfinite(s).all() and np.isfinite(m).all() and (s > 0).all()):
            raise CorruptArchiveError(f"{self.codec_id}: steps and means must be finite, one each per channel, "
                                      "steps > 0")
        self.levels, self.steps, self.means = levels, s.tolist(), m.tolist()
        self._s, self._m = s, m

    def encode(self, values) -> bytes:
        x = np.asarray(values, np.float64)
        if x.ndim != 2 or x.shape[0] != self._s.size:
            raise ValueError(f"{self.codec_id} codes {self._s.size} channels, got shape {x.shape}")
        return _HEADER.pack(x.shape[0], x.shape[1]) + encode_coefficients(x - self._m[:, None], self._s, self.levels,
                                                                          self.adaptive)

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, body = read_header(self.codec_id, payload, self._s.size)
        return decode_coefficients(self.codec_id, body, n_ch, n, self._s, self.levels, self.adaptive) + self._m[:, None]

    def stream(self, block: int) -> "BlockStream":
        return BlockStream(self, block)


@register_codec
class ContextWaveletCodec(WaveletCodec):
    """``dwt-v1`` with its coefficients range-coded in context (:mod:`.coefficient_coder`)."""

    codec_id = "dwt-v2"
    adaptive = True


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
