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

``sdwt-v2`` and ``sdwt-v3`` code the same components in context and with an energy offset per
sub-band (:mod:`.wavelet`); ``sdwt-v4`` stores the side information compactly (scales in 16
bits, offsets as integers, the rotation range-coded) and leaves out the columns of components
that round to zero on every block it was fitted for: components far below the step cost almost
nothing in the payload, but their columns cost a byte per channel each.
"""

from __future__ import annotations

import base64

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, register_codec
from ..lossless import residual_coder
from .equalizer import EqualizedDecoding
from .spatial import fixed_order_product
from .wavelet import (_HEADER, MAX_LEVELS, BlockStream, coefficients, decode_coefficients, encode_coefficients,
                      read_header, spreads)

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
        self._setup(levels, step, offsets, scales, blocks, None, rotation)

    def _setup(self, levels, step, offsets, scales, blocks, kept, rotation):
        """Check and keep the configuration; ``kept``: per block, how many components it stores
        (``sdwt-v4``), None: all of them."""
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= MAX_LEVELS:
            raise CorruptArchiveError(f"{self.codec_id}: levels must be an integer 1…{MAX_LEVELS}, got {levels!r}")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not (np.isfinite(step) and step > 0):
            raise CorruptArchiveError(f"{self.codec_id}: step must be a finite number > 0, got {step!r}")
        if not isinstance(blocks, list) or not blocks or not all(
                isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= BLOCK for b in blocks):
            raise CorruptArchiveError(f"{self.codec_id}: blocks must be a list of channel counts 1…{BLOCK}")
        columns = list(blocks) if kept is None else kept
        if not isinstance(columns, list) or len(columns) != len(blocks) or not all(
                isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= b for k, b in zip(columns, blocks)):
            raise CorruptArchiveError(f"{self.codec_id}: kept must hold, per block, a count of components "
                                      "0…its channels")
        n = sum(blocks)
        o, s, r = self._side(offsets, scales, rotation, n, sum(b * k for b, k in zip(blocks, columns)))
        if not (np.isfinite(o).all() and np.isfinite(s).all() and (s > 0).all()):
            raise CorruptArchiveError(f"{self.codec_id}: offsets and scales must be finite, scales > 0")
        self.levels, self.step, self.offsets, self.scales = levels, float(step), offsets, scales
        self.blocks, self.rotation = list(blocks), rotation
        self._o, self._s, self._n, self._columns = o, s, n, list(columns)
        self._mats, at = [], 0
        for b, k in zip(blocks, columns):
            self._mats.append(r[at : at + b * k].reshape(b, k).astype(np.float64) / ROTATION_SCALE)
            at += b * k
        self._inverses = None  # the encoder's, on first use

    def _side(self, offsets, scales, rotation, n: int, entries: int):
        """(offsets, scales, rotation entries) from the configuration: float32 and int8, base64."""
        return (_unb64(self.codec_id, offsets, "<f4", n, "offsets").astype(np.float64),
                _unb64(self.codec_id, scales, "<f4", n, "scales").astype(np.float64),
                _unb64(self.codec_id, rotation, "<i1", entries, "rotation"))

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
        x = np.asarray(values, np.float64)
        if x.ndim != 2 or x.shape[0] != self._n:
            raise ValueError(f"{self.codec_id} codes {self._n} channels, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.codec_id}: values not finite")
        z = self._components(x)
        rows = sum(self._columns)
        return _HEADER.pack(self._n, x.shape[1]) + encode_coefficients(z, np.full(rows, self.step), self.levels,
                                                                       self.adaptive, self.band_offsets)

    def decode(self, payload: bytes) -> np.ndarray:
        n_ch, n, body = read_header(self.codec_id, payload, self._n)
        rows = sum(self._columns)
        z = decode_coefficients(self.codec_id, body, rows, n, np.full(rows, self.step), self.levels,
                                self.adaptive, self.band_offsets)
        parts = np.split(z, np.cumsum(self._columns)[:-1])
        s = np.concatenate([fixed_order_product(m, part) for m, part in zip(self._mats, parts)])
        return s * self._s[:, None] + self._o[:, None]

    def _components(self, x: np.ndarray) -> np.ndarray:
        """What the encoder codes of the channels ``x``: standardized, then through the inverse
        of each block's stored matrix (a block that keeps fewer components: their least-squares fit)."""
        from ...system.threads import one_blas_thread

        s = (np.asarray(x, np.float64) - self._o[:, None]) / self._s[:, None]
        if not self._n:
            return s
        with one_blas_thread():
            if self._inverses is None:
                self._inverses = [np.linalg.inv(m) if m.shape[0] == m.shape[1] else np.linalg.pinv(m)
                                  for m in self._mats]
            return np.concatenate([inv @ part for inv, part in zip(self._inverses, self._split(s))])

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


SCALE_BIAS = 128  # sdwt-v4: a scale is (1 + m/256) · 2^(e − 128), coded as 256·e + m
OFFSET_UNITS = 1024  # sdwt-v4: an offset is a whole number of scale / 1024 (errs by 0.05 % of the spread at most)
ROTATION_SEGMENT = 256  # sdwt-v4: the rotation's entries range-coded in segments of this many


def scale_codes(scales: np.ndarray) -> np.ndarray:
    """Each scale (> 0) to the nearest 16-bit code of :func:`scales_from_codes` (9 significant bits)."""
    fraction, exponent = np.frexp(np.asarray(scales, np.float64))  # scale = (2·fraction) · 2^(exponent − 1)
    m = np.rint((2 * fraction - 1) * 256).astype(np.int64)
    exponent = exponent - 1 + (m == 256)
    m = np.where(m == 256, 0, m)
    return np.clip(256 * (exponent + SCALE_BIAS) + m, 0, 65535)


def scales_from_codes(codes: np.ndarray) -> np.ndarray:
    """(1 + (c mod 256)/256) · 2^(⌊c/256⌋ − 128): exact in float64."""
    c = np.asarray(codes, np.int64)
    return np.ldexp(1.0 + (c % 256) / 256.0, (c // 256 - SCALE_BIAS).astype(np.int32))


@register_codec
class PrunedSpatialWaveletCodec(EnergySpatialWaveletCodec):
    """``sdwt-v3`` with compact side information, storing only the components that carry
    coefficients: per block of the rotation, ``kept`` columns of it (n_b × k_b entries,
    range-coded), the least-squares fit of the standardized channels on them coded, the others
    left out; each channel's scale in 16 bits and its offset in whole 1/1024 of that scale. On a
    high-density montage coded coarsely most components round to zero everywhere, and their
    columns, with the float32 offsets and scales, were most of the archive."""

    codec_id = "sdwt-v4"
    config_fields = ("levels", "step", "offsets", "scales", "blocks", "kept", "rotation")

    def __init__(self, levels: int, step: float, offsets, scales, blocks, kept, rotation: str):
        self._setup(levels, step, offsets, scales, blocks, kept, rotation)
        self.kept = list(kept)

    def _side(self, offsets, scales, rotation, n: int, entries: int):
        """Scales as 16-bit codes, offsets in whole units of scale/1024 (JSON integers), the
        rotation's entries as one row of range-coded residuals (base64)."""
        def integers(values, what: str, lo: int, hi: int) -> np.ndarray:
            if not isinstance(values, list) or len(values) != n or not all(
                    isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in values):
                raise CorruptArchiveError(f"{self.codec_id}: {what} must be {n} integers {lo}…{hi}")
            return np.array(values, np.int64)
        s = scales_from_codes(integers(scales, "scales", 0, 65535))
        o = integers(offsets, "offsets", -(2**53), 2**53) * s / OFFSET_UNITS
        try:
            body = base64.b64decode(rotation, validate=True)
        except (TypeError, ValueError):
            raise CorruptArchiveError(f"{self.codec_id}: rotation is not base64") from None
        if entries == 0:
            if body:
                raise CorruptArchiveError(f"{self.codec_id}: rotation holds entries where no column is kept")
            return o, s, np.zeros(0, np.int8)
        (r,) = residual_coder.decode_rows(body, [entries], ROTATION_SEGMENT, shaped=True)
        if r.size != entries or (np.abs(r) > 127).any():
            raise CorruptArchiveError(f"{self.codec_id}: rotation entries out of range")
        return o, s, r.astype(np.int8)

    @classmethod
    def fit(cls, x: np.ndarray, step: float, levels: int, gains: np.ndarray | None = None,
            spread: np.ndarray | None = None) -> "PrunedSpatialWaveletCodec":
        """``sdwt-v3``'s fit to ``x``, pruned on ``x`` itself (:meth:`pruned`)."""
        return cls.pruned(EnergySpatialWaveletCodec.fit(x, step, levels, gains, spread), [x])

    @classmethod
    def pruned(cls, codec: SpatialWaveletCodec, stretches: list[np.ndarray] | None) -> "PrunedSpatialWaveletCodec":
        """``codec`` with compact side information and without the components whose
        coefficients all round to zero on every one of ``stretches`` (blocks of the channels it
        codes, as the stream cuts them; None: every component kept, blocks not yet seen may
        need them). On them, it decodes what ``codec`` does but for that rounding of its scales
        and offsets and the refit of the components kept."""
        active = np.ones(codec._n, bool)
        if stretches is not None:
            active[:] = False
            for x in stretches:
                u = coefficients(codec._components(x), np.full(codec._n, codec.step), codec.levels)
                active |= (np.rint(u) != 0).any(axis=1)  # as quantize() rounds
        kept, entries = [], []
        for m, part in zip(codec._mats, np.split(active, np.cumsum(codec.blocks)[:-1])):
            kept.append(int(part.sum()))
            entries.append(np.rint(m[:, part] * ROTATION_SCALE).astype(np.int64).ravel())
        entries = np.concatenate(entries)
        rotation = residual_coder.encode_rows([entries], ROTATION_SEGMENT, shaped=True) if entries.size else b""
        codes = scale_codes(codec._s)
        unit = scales_from_codes(codes) / OFFSET_UNITS
        offsets = np.clip(np.rint(codec._o / unit), -(2**53), 2**53).astype(np.int64)
        return cls(codec.levels, codec.step, offsets.tolist(), codes.tolist(), list(codec.blocks), kept,
                   base64.b64encode(rotation).decode("ascii"))


@register_codec
class EqualizedSpatialWaveletCodec(EqualizedDecoding, PrunedSpatialWaveletCodec):
    """``sdwt-v4`` whose decoded blocks go through per-channel band gains (:mod:`.equalizer`)."""

    codec_id = "sdwt-v5"
    config_fields = PrunedSpatialWaveletCodec.config_fields + ("bands", "gains")

    def __init__(self, levels: int, step: float, offsets, scales, blocks, kept, rotation: str, bands, gains: str):
        super().__init__(levels, step, offsets, scales, blocks, kept, rotation)
        self._equalize(self._n, bands, gains)
