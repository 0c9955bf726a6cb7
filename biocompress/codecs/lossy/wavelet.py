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
:func:`energy_offsets` (``sdwt-v3``): per sub-band, an offset that pulls the non-zero
coefficients' reconstruction toward zero (or pushes it out) so that the sub-band keeps the
source's energy. Rounding leaves sparse sub-bands with too much power (a coefficient just over
half a step comes back as a whole step) and others with too little (those under half a step come
back as zero); the offset gives back the band power the recording had, and where coefficients
are sparse it also errs less. One offset serves every row of a sub-band.
"""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_declared_shape, register_codec
from ..lossless import residual_coder
from . import coefficient_coder
from .equalizer import EqualizedDecoding
from .rate import FLAT_RELATIVE

WAVELET, MODE, FILTER_LENGTH = "db4", "periodization", 8
MAX_LEVELS = 8
SEGMENT = 256
MAX_CODE = 2.0**40
OFFSET_SCALE = 256  # sdwt-v3: a sub-band's offset is a signed byte, in 1/256 of a step
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


def coefficients(x: np.ndarray, steps: np.ndarray, max_levels: int) -> np.ndarray:
    """Rows of ``x`` through the wavelet transform, row r's coefficients divided by ``steps[r]``:
    float64 (rows × the concatenated sub-bands of :func:`band_sizes`)."""
    import pywt

    levels = levels_for(x.shape[1], max_levels)
    u = np.empty((x.shape[0], sum(_lengths(x.shape[1], levels))))
    for r, (row, step) in enumerate(zip(x, steps)):
        u[r] = np.concatenate(pywt.wavedec(row, WAVELET, mode=MODE, level=levels) if levels else [row]) / step
    return u


def quantize(u: np.ndarray) -> np.ndarray:
    """Coefficients in steps (:func:`coefficients`) rounded: int64."""
    c = np.rint(u)
    if not (np.abs(c) <= MAX_CODE).all():  # NaN included
        raise ValueError("wavelet coefficients too large for the step (or not finite)")
    return c.astype(np.int64)


def energy_offsets(u: np.ndarray, q: np.ndarray, sizes, weights: np.ndarray) -> np.ndarray:
    """Per sub-band, the offset δ (int8, in 1/OFFSET_SCALE of a step) whose reconstruction of the
    non-zero coefficients, sign(q)·(|q| − δ), has the energy of the coefficients ``u`` themselves
    (rows weighted by ``weights``: their step², so that energies add in the signal's units), or
    the nearest offset there is."""
    out = np.zeros(len(sizes), np.int8)
    ends = np.cumsum(sizes)
    w = np.asarray(weights, np.float64)[:, None]
    for b, (a, e) in enumerate(zip(ends - np.asarray(sizes), ends)):
        mag = np.abs(q[:, a:e]).astype(np.float64)
        count = float((w * (mag > 0)).sum())
        if count == 0:
            continue
        first, second = float((w * mag).sum()), float((w * mag * mag).sum())
        target = float((w * u[:, a:e] ** 2).sum())
        # energy(δ) = second − 2δ·first + δ²·count, falling for δ ≤ first / count (≥ 1)
        disc = first * first - count * (second - target)
        delta = (first - np.sqrt(disc)) / count if disc >= 0 else first / count
        out[b] = int(np.clip(np.rint(delta * OFFSET_SCALE), -128, 127))
    return out


def reconstruct(codec_id: str, q: np.ndarray, n: int, steps: np.ndarray, max_levels: int,
                band_offsets: np.ndarray | None = None) -> np.ndarray:
    """The inverse transform of quantized coefficients ``q`` (rows × sub-bands): (rows, n) float64.
    ``band_offsets`` (``sdwt-v3``, :func:`energy_offsets`): per sub-band, each non-zero q taken
    as q − sign(q)·δ."""
    import pywt

    levels = levels_for(n, max_levels) if n else 0
    sizes = _lengths(n, levels)
    out = np.empty((q.shape[0], n))
    ends = np.cumsum(sizes)
    pull = None if band_offsets is None else np.repeat(np.asarray(band_offsets, np.float64) / OFFSET_SCALE, sizes)
    for r, row in enumerate(q):
        if row.size != ends[-1] or not (np.abs(row) <= MAX_CODE).all():
            raise CorruptArchiveError(f"{codec_id} coefficients out of range")
        v = row.astype(np.float64)
        if pull is not None:
            v = v - np.sign(v) * pull
        parts = np.split(v * steps[r], ends[:-1])
        out[r] = (pywt.waverec(parts, WAVELET, mode=MODE) if levels else parts[0])[:n]
    return out


def encode_coefficients(x: np.ndarray, steps: np.ndarray, max_levels: int, adaptive: bool,
                        band_offsets: bool = False) -> bytes:
    """:func:`quantize`, then range-coded: as residual rows in segments (``dwt-v1``, ``sdwt-v1``)
    or ``adaptive``, with contexts (:mod:`.coefficient_coder`: ``dwt-v2``, ``sdwt-v2``), after
    a signed byte per sub-band with ``band_offsets`` (:func:`energy_offsets`: ``sdwt-v3``)."""
    if not (len(x) and x.shape[1]):  # nothing a decoder reads
        return b""
    u = coefficients(x, steps, max_levels)
    q = quantize(u)
    sizes = band_sizes(x.shape[1], max_levels)
    if not adaptive:
        return residual_coder.encode_rows(list(q), SEGMENT, shaped=True)
    head = energy_offsets(u, q, sizes, np.asarray(steps, np.float64) ** 2).tobytes() if band_offsets else b""
    return head + coefficient_coder.encode(q, sizes)


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
                        max_levels: int, adaptive: bool, band_offsets: bool = False) -> np.ndarray:
    """The inverse of :func:`encode_coefficients`: (n_rows, n) float64."""
    if not (n_rows and n):
        return np.empty((n_rows, n))
    sizes = band_sizes(n, max_levels)
    pulls = None
    if band_offsets:
        if len(body) < len(sizes):
            raise CorruptArchiveError(f"{codec_id} payload shorter than its sub-band offsets")
        pulls, body = np.frombuffer(body[: len(sizes)], np.int8), body[len(sizes) :]
    if adaptive:
        q = coefficient_coder.decode(codec_id, body, n_rows, sizes)
        return reconstruct(codec_id, q, n, steps, max_levels, pulls)
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
    band_offsets = False  # a reconstruction offset per sub-band, which keeps its energy (sdwt-v3)

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
                                                                          self.adaptive, self.band_offsets)

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, body = read_header(self.codec_id, payload, self._s.size)
        y = decode_coefficients(self.codec_id, body, n_ch, n, self._s, self.levels, self.adaptive, self.band_offsets)
        return y + self._m[:, None]

    def stream(self, block: int) -> "BlockStream":
        return BlockStream(self, block)


@register_codec
class ContextWaveletCodec(WaveletCodec):
    """``dwt-v1`` with its coefficients range-coded in context (:mod:`.coefficient_coder`)."""

    codec_id = "dwt-v2"
    adaptive = True


@register_codec
class EqualizedWaveletCodec(EqualizedDecoding, ContextWaveletCodec):
    """``dwt-v2`` whose decoded blocks go through per-channel band gains (:mod:`.equalizer`)."""

    codec_id = "dwt-v3"
    config_fields = ("levels", "steps", "means", "bands", "gains")

    def __init__(self, levels: int, steps, means, bands, gains: str):
        super().__init__(levels, steps, means)
        self._equalize(self._s.size, bands, gains)


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


def steps_for(first: np.ndarray, aim: float, sigma: np.ndarray | None = None) -> np.ndarray:
    """Per channel, the step whose uniform error is about ``aim`` % of the channel's spread
    (``sigma``, else the spread in ``first``)."""
    sigma = spreads(first) if sigma is None else np.asarray(sigma, np.float64)
    floor = float(np.median(sigma[sigma > 0])) if (sigma > 0).any() else 1.0
    return np.sqrt(12) * aim / 100 * np.where(sigma > 0, sigma, floor)


def spreads(x: np.ndarray) -> np.ndarray:
    """Each row's standard deviation, 0 where it is float rounding (FLAT_RELATIVE, as the
    fidelity figures judge flat channels): such a channel takes the median spread, so that a
    signal it carries later still fits its step."""
    sigma = x.std(axis=1)
    return np.where(sigma <= FLAT_RELATIVE * np.sqrt((x**2).mean(axis=1)), 0.0, sigma)
