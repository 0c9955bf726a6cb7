"""``sdwt-v1``: channels standardized and decorrelated, each component through the wavelet
transform, every coefficient on one uniform step (lossy).

EEG and MEG channels share much of their signal (the reference, volume conduction). Each
channel is first scaled by its own spread (times a calibration gain), so that one step gives
every channel about the same *relative* error; the standardized channels are then rotated into
principal components, per block of at most :data:`BLOCK` consecutive channels, and each
component is coded as ``dwt-v1`` codes a channel (:mod:`.wavelet`), all at one step. One step
over orthonormal components is the allocation that minimises the squared error (reverse
water-filling: components far below the step cost almost nothing).

The rotation is stored as 8-bit integers (÷ 127), a block after another. The encoder applies the
exact inverse of that stored matrix, so its rounding costs some decorrelation but no accuracy;
the decoder multiplies back with :func:`.spatial.fixed_order_product`, whose sums do not depend
on the thread count.
"""

from __future__ import annotations

import base64

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, register_codec
from .spatial import fixed_order_product
from .wavelet import (_HEADER, MAX_LEVELS, BlockStream, decode_coefficients, encode_coefficients, read_header,
                      spreads)

BLOCK = 32  # channels per block of the rotation
ROTATION_SCALE = 127.0  # stored entries are round(127 · v), |v| ≤ 1


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def _unb64(codec_id: str, text, dtype: str, count: int, what: str) -> np.ndarray:
    try:
        a = np.frombuffer(base64.b64decode(text, validate=True), dtype)
    except (TypeError, ValueError):
        raise CorruptArchiveError(f"{codec_id}: {what} is not base64 of {dtype}") from None
    if a.size != count:
        raise CorruptArchiveError(f"{codec_id}: {what} holds {a.size} values, {count} expected")
    return a


def blocks_of(n: int) -> list[int]:
    """Sizes of the rotation's blocks over ``n`` channels."""
    return [min(BLOCK, n - a) for a in range(0, n, BLOCK)]


@register_codec
class SpatialWaveletCodec(Codec):
    """Float values (n_channels, n) → their approximation, as float64."""

    codec_id = "sdwt-v1"
    config_fields = ("levels", "step", "offsets", "scales", "blocks", "rotation")
    lossy = True
    adaptive = False  # coefficients in segments (residual_coder); sdwt-v2: with contexts
    band_offsets = False  # sdwt-v3: a reconstruction offset per sub-band, which keeps its energy

    def __init__(self, levels: int, step: float, offsets: str, scales: str, blocks, rotation: str):
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= MAX_LEVELS:
            raise CorruptArchiveError(f"{self.codec_id}: levels must be an integer 1…{MAX_LEVELS}, got {levels!r}")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not (np.isfinite(step) and step > 0):
            raise CorruptArchiveError(f"{self.codec_id}: step must be a finite number > 0, got {step!r}")
        if not isinstance(blocks, list) or not blocks or not all(
                isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= BLOCK for b in blocks):
            raise CorruptArchiveError(f"{self.codec_id}: blocks must be a list of channel counts 1…{BLOCK}")
        n = sum(blocks)
        o = _unb64(self.codec_id, offsets, "<f4", n, "offsets").astype(np.float64)
        s = _unb64(self.codec_id, scales, "<f4", n, "scales").astype(np.float64)
        r = _unb64(self.codec_id, rotation, "<i1", sum(b * b for b in blocks), "rotation")
        if not (np.isfinite(o).all() and np.isfinite(s).all() and (s > 0).all()):
            raise CorruptArchiveError(f"{self.codec_id}: offsets and scales must be finite, scales > 0")
        self.levels, self.step, self.offsets, self.scales = levels, float(step), offsets, scales
        self.blocks, self.rotation = list(blocks), rotation
        self._o, self._s, self._n = o, s, n
        self._mats, at = [], 0
        for b in blocks:
            self._mats.append(r[at : at + b * b].reshape(b, b).astype(np.float64) / ROTATION_SCALE)
            at += b * b
        self._inverses = None  # the encoder's, on first use

    @classmethod
    def fit(cls, x: np.ndarray, step: float, levels: int, gains: np.ndarray | None = None,
            spread: np.ndarray | None = None) -> "SpatialWaveletCodec":
        """Fitted to a stretch ``x`` (n_ch, n) of the stream: offsets its medians, scales its
        spreads times ``gains`` (a channel with none takes the median spread), the rotation its
        principal components. ``step``: in units of the scales (≈ √12 × the relative error).
        ``spread``: each channel's spread where more of the stream shows it than ``x`` (a channel
        flat in ``x`` may not be flat later)."""
        x = np.asarray(x, np.float64)
        n = x.shape[0]
        offsets = np.median(x, axis=1)
        spread = spreads(x) if spread is None else np.asarray(spread, np.float64)
        live = spread > 0
        floor = float(np.median(spread[live])) if live.any() else 1.0
        scales = np.where(live, spread, floor) * (1.0 if gains is None else np.asarray(gains, np.float64))
        scales = np.asarray(scales, "<f4").astype(np.float64)  # as stored
        s = (x - offsets[:, None]) / scales[:, None]
        parts = []
        for a, b in zip(np.cumsum([0] + blocks_of(n))[:-1], blocks_of(n)):
            if b == 1:
                parts.append(np.full(1, ROTATION_SCALE))
                continue
            w, v = np.linalg.eigh(np.cov(s[a : a + b]))
            v = v[:, np.argsort(w)[::-1]]
            v *= np.where(v[np.abs(v).argmax(axis=0), np.arange(b)] < 0, -1.0, 1.0)  # sign convention
            parts.append(np.rint(v * ROTATION_SCALE).ravel())
        def build(rotation):
            return cls(int(levels), float(step), _b64(offsets, "<f4"), _b64(scales, "<f4"), blocks_of(n),
                       _b64(rotation, "<i1"))
        codec = build(np.concatenate(parts))
        if any(abs(np.linalg.det(m)) < 1e-3 for m in codec._mats):
            codec = build(np.concatenate([np.eye(b).ravel() * ROTATION_SCALE for b in blocks_of(n)]))  # no rotation
        return codec

    def encode(self, values) -> bytes:
        from ...system.threads import one_blas_thread

        x = np.asarray(values, np.float64)
        if x.ndim != 2 or x.shape[0] != self._n:
            raise ValueError(f"{self.codec_id} codes {self._n} channels, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.codec_id}: values not finite")
        s = (x - self._o[:, None]) / self._s[:, None]
        with one_blas_thread():
            if self._inverses is None:
                self._inverses = [np.linalg.inv(m) for m in self._mats]
            z = np.concatenate([inv @ part for inv, part in zip(self._inverses, self._split(s))]) if self._n else s
        return _HEADER.pack(self._n, x.shape[1]) + encode_coefficients(z, np.full(self._n, self.step), self.levels,
                                                                       self.adaptive, self.band_offsets)

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, body = read_header(self.codec_id, payload, self._n)
        z = decode_coefficients(self.codec_id, body, n_ch, n, np.full(n_ch, self.step), self.levels,
                                self.adaptive, self.band_offsets)
        s = np.concatenate([fixed_order_product(m, part) for m, part in zip(self._mats, self._split(z))])
        return s * self._s[:, None] + self._o[:, None]

    def _split(self, rows: np.ndarray) -> list[np.ndarray]:
        return np.split(rows, np.cumsum(self.blocks)[:-1])

    def stream(self, block: int) -> BlockStream:
        return BlockStream(self, block)


@register_codec
class ContextSpatialWaveletCodec(SpatialWaveletCodec):
    """``sdwt-v1`` with its coefficients range-coded in context (:mod:`.coefficient_coder`)."""

    codec_id = "sdwt-v2"
    adaptive = True


@register_codec
class EnergySpatialWaveletCodec(ContextSpatialWaveletCodec):
    """``sdwt-v2`` whose sub-bands keep their energy (:func:`.wavelet.energy_offsets`)."""

    codec_id = "sdwt-v3"
    band_offsets = True
