"""A spectral equalizer after a lossy decoder (``dwt-v3``, ``sdwt-v5``, ``ae-v2``): per channel and
frequency band, a gain that gives the band back the power the source had there.

At the steps a PRDN target asks for, quantization noise fills the bands where a recording has
little power (the fast bands of scalp EEG, everything above the pulse in TMS-EEG) and the
dead zone empties others: the band powers a user reads off the reconstruction drift by tens of
percent while the PRDN holds. The gains are fitted once for the recording (on the blocks rate
control calibrates on) and stored in the codec's configuration; the decoder applies them to
each decoded block on its own, so random access stays.

* ``bands``: [lo, hi) pairs in cycles per sample (0 ≤ lo < hi ≤ 0.5), ascending, disjoint;
  frequencies outside every band keep gain 1.
* ``gains``: n_bands × n_channels codes c (band after band, −511…511), gain 2^(c / 64),
  range-coded as one row of residuals (§8.2, segments of 256) and base64-encoded.
* Applying them: each block row with a non-zero code is extended by mirror images of itself
  (:func:`pad_of` samples each side, ``numpy.pad`` mode ``reflect``), its real FFT's bins
  k / m (m the padded length) inside band b multiplied by that band's gain, transformed back and
  cut to the block. Blocks shorter than :data:`MIN_SAMPLES` pass unchanged.

The fit (:func:`fit_codes`) takes the energy-matching gain √(P_source / P_decoded) of each band,
keeps every gain under 1 (where noise dominates a band, pulling it down also errs less) and
holds each channel's gains above 1 (which err more where the decoder dropped part of a band)
within the error the channel may still take.
"""

from __future__ import annotations

import base64

import numpy as np

from ...errors import CorruptArchiveError
from ..base import get_codec
from ..lossless import residual_coder

GAIN_UNITS = 64  # a code c is the gain 2^(c/64): steps of 1.1 % in amplitude, 2.2 % in power
MAX_CODE = 511  # gains within 2^-8…2^8 (a decoder's noise can be 100× a quiet band's power)
SEGMENT = 256  # the codes' residual segments
MIN_SAMPLES = 16  # blocks shorter than this pass unchanged
MAX_BANDS = 32
BAND_GOAL = 0.02  # gains for the channels that bring each band's relative power error within this
WITH_GAINS = {"ae-v1": "ae-v2", "dwt-v2": "dwt-v3", "sdwt-v4": "sdwt-v5"}  # each coder's id with band gains


def with_gains(codec, bands, gains: str):
    """``codec`` (an id of WITH_GAINS) decoding with band ``gains`` (:func:`encode_codes`) over ``bands``."""
    return get_codec({**codec.get_config(), "id": WITH_GAINS[codec.codec_id], "bands": bands, "gains": gains})


def pad_of(n: int) -> int:
    """Samples mirrored onto each side of an ``n``-sample block before its FFT (a quarter of
    it: the gains' ringing at the block's edges falls on the mirror image)."""
    return max(0, min(n - 1, n // 4))


def check_bands(codec_id: str, bands) -> np.ndarray:
    """``bands`` from a configuration as a (k, 2) float64 array, or CorruptArchiveError."""
    ok = isinstance(bands, list) and 0 < len(bands) <= MAX_BANDS and all(
        isinstance(b, list) and len(b) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
        for b in bands)
    a = np.array(bands, np.float64) if ok else np.zeros((0, 2))
    if not ok or not (np.isfinite(a).all() and (a[:, 0] >= 0).all() and (a[:, 1] <= 0.5).all()
                      and (a[:, 0] < a[:, 1]).all() and (a[1:, 0] >= a[:-1, 1]).all()):
        raise CorruptArchiveError(f"{codec_id}: bands must be 1…{MAX_BANDS} ascending, disjoint [lo, hi) pairs "
                                  "within 0…0.5 cycles per sample")
    return a


def encode_codes(codes: np.ndarray) -> str:
    """Gain codes (n_channels, n_bands) as the configuration stores them: band after band (a
    band's codes across channels are alike: they range-code smaller than channel after channel)."""
    flat = np.asarray(codes, np.int64).T.ravel()
    body = residual_coder.encode_rows([flat], SEGMENT, shaped=True) if flat.size else b""
    return base64.b64encode(body).decode("ascii")


def decode_codes(codec_id: str, text, n_channels: int, n_bands: int) -> np.ndarray:
    """The inverse of :func:`encode_codes`, checked: int64 (n_channels, n_bands)."""
    try:
        body = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise CorruptArchiveError(f"{codec_id}: gains are not base64") from None
    count = n_channels * n_bands
    if not count:
        if body:
            raise CorruptArchiveError(f"{codec_id}: gains where there is no channel")
        return np.zeros((n_channels, n_bands), np.int64)
    (codes,) = residual_coder.decode_rows(body, [count], SEGMENT, shaped=True)
    if codes.size != count or (np.abs(codes) > MAX_CODE).any():
        raise CorruptArchiveError(f"{codec_id}: gain codes out of range")
    if residual_coder.encode_rows([codes.astype(np.int64)], SEGMENT, shaped=True) != body:  # its coding is unique
        raise CorruptArchiveError(f"{codec_id}: gains hold other than {n_channels} × {n_bands} codes")
    return codes.astype(np.int64).reshape(n_bands, n_channels).T.copy()


def _spectra(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The real FFT of each row mirror-padded (:func:`pad_of`): (spectra, padded length, pad)."""
    n = x.shape[1]
    p = pad_of(n)
    m = n + 2 * p
    return np.fft.rfft(np.pad(x, ((0, 0), (p, p)), mode="reflect") if p else x, axis=1), m, p


def _masks(bands: np.ndarray, m: int) -> np.ndarray:
    """(k, bins) booleans: which of an ``m``-point real FFT's bins each band holds."""
    f = np.arange(m // 2 + 1) / m
    return (f[None, :] >= bands[:, :1]) & (f[None, :] < bands[:, 1:])


def apply(y: np.ndarray, bands: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The decoded block ``y`` (n_channels, n) with each channel's band gains applied."""
    rows = np.flatnonzero(np.asarray(codes).any(axis=1))
    n = y.shape[1]
    if n < MIN_SAMPLES or not rows.size:
        return y
    spectra, m, p = _spectra(y[rows])
    gain = np.ones(spectra.shape)
    for mask, c in zip(_masks(bands, m), np.asarray(codes, np.float64)[rows].T):
        gain[:, mask] = np.exp2(c / GAIN_UNITS)[:, None]
    out = np.array(y, np.float64, copy=True)
    out[rows] = np.fft.irfft(spectra * gain, m, axis=1)[:, p : p + n]
    return out


def band_parts(x: np.ndarray, bands: np.ndarray):
    """Each band's part of each row of ``x`` (n_channels, n), as :func:`apply` separates them:
    one (n_channels, n) array per band, in turn."""
    n = x.shape[1]
    if n < MIN_SAMPLES:
        for _ in bands:
            yield np.zeros(x.shape)
        return
    spectra, m, p = _spectra(x)
    for mask in _masks(bands, m):
        yield np.fft.irfft(spectra * mask, m, axis=1)[:, p : p + n]


class BandStatistics:
    """Sums over blocks of source ``x`` and decoding ``y``, per channel and band: the source's and
    the decoding's band powers, the decoding's band part along the error; and the error's
    energy per channel. ``segment``: the powers as Welch spectra of segments that long (Hann
    windows, half overlapping), weighted by each block's length, where the fidelity figures
    measure them so; None: the energies of :func:`band_parts`."""

    def __init__(self, n_channels: int, bands: np.ndarray, segment: int | None = None):
        self.bands, self.segment = bands, segment
        k = len(bands)
        self.source, self.decoded, self.error_along = (np.zeros((n_channels, k)) for _ in range(3))
        self.error = np.zeros(n_channels)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        e = x - y
        sources = band_parts(x, self.bands) if self.segment is None else iter(())
        for b, yb in enumerate(band_parts(y, self.bands)):
            if self.segment is None:
                self.source[:, b] += (next(sources) ** 2).sum(axis=1)
                self.decoded[:, b] += (yb**2).sum(axis=1)
            self.error_along[:, b] += (yb * e).sum(axis=1)
        self.error += (e**2).sum(axis=1)
        seg = None if self.segment is None else min(x.shape[1], self.segment)
        if seg is not None and seg >= MIN_SAMPLES:
            from scipy.signal import welch

            f, px = welch(x, 1.0, nperseg=seg, axis=-1)
            _, py = welch(y, 1.0, nperseg=seg, axis=-1)
            for b, (lo, hi) in enumerate(self.bands):
                mask = (f >= lo) & (f < hi)
                self.source[:, b] += px[:, mask].sum(axis=1) * x.shape[1]
                self.decoded[:, b] += py[:, mask].sum(axis=1) * x.shape[1]

    def change(self, codes: np.ndarray) -> np.ndarray:
        """Per channel, about how much the error's energy changes under gain ``codes``: band b's
        part of the decoding scaled by g_b adds −2(g_b − 1)⟨e, y_b⟩ + (g_b − 1)²‖y_b‖² (the
        bands' parts taken as orthogonal)."""
        d = np.exp2(np.asarray(codes, np.float64) / GAIN_UNITS) - 1
        return (-2 * d * self.error_along + d * d * self.decoded).sum(axis=1)


def fit_codes(stats: BandStatistics, allowed: np.ndarray) -> np.ndarray:
    """Per channel and band, the code of the gain that gives the band the source's power, for
    the fewest channels that bring each band's error Σ|P̂ − P| / ΣP (over channels, as the
    fidelity figures measure it) within BAND_GOAL (the channels that err most first; the others
    keep gain 1: a code costs bytes); then the gains above 1 of a channel shrunk together
    (halved in log until they fit, else dropped) while its error would grow past ``allowed``
    (energy): gains under 1 only ever err less (for bands taken as orthogonal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(stats.decoded > 0, stats.source / stats.decoded, 1.0)
        codes = 0.5 * np.log2(np.where(ratio > 0, ratio, 1.0)) * GAIN_UNITS
    full = np.clip(np.rint(codes), -MAX_CODE, MAX_CODE).astype(np.int64)
    codes = full.copy()
    deviation = np.abs(stats.decoded - stats.source)
    for b in range(codes.shape[1]):
        order = np.argsort(deviation[:, b])  # the channels that err least first: those left at gain 1
        left = np.cumsum(deviation[order, b]) <= BAND_GOAL * stats.source[:, b].sum()
        codes[order[left], b] = 0
    up = np.maximum(codes, 0)
    # a channel with gains above 1 takes every gain under 1 it has: what they save, those can spend
    down = np.where(up.any(axis=1)[:, None], np.minimum(full, 0), np.minimum(codes, 0))
    budget = allowed - stats.error
    fit = np.zeros(len(codes), bool)
    for shrink in (1.0, 0.5, 0.25, 0.125, 0.0):
        trial = down + np.rint(up * shrink).astype(np.int64)
        ok = ~fit & (stats.change(trial) <= budget)
        codes[ok] = trial[ok]
        fit |= ok
    codes[~fit] = down[~fit]
    return codes


EQUALIZER_VALUES = 1 << 22  # values of the stretches band gains are fitted on, at most (blocks spread over them)


def fit_gains(codec, stretches, a: int, b: int, aim: float):
    """``codec`` (an id of WITH_GAINS, channels ``a:b`` of a stream) with band gains fitted on
    ``stretches`` of it (:class:`.rate.Stretches`) where they name bands, else ``codec`` itself: each band's power back to the source's, no
    channel's PRDN beyond both ``aim`` and its PRDN without them (on at most EQUALIZER_VALUES
    values of the stretches). Fitted twice: on the band energies the gains act on, then on the
    band powers as the fidelity figures measure them (Welch spectra, which a transient or a
    steep spectrum spreads across bands). Checked by coding the stretches: the gains above 1 of
    a channel past its limit dropped, then all of its gains."""
    if stretches.bands is None or not stretches.blocks:
        return codec
    blocks = stretches.blocks
    keep = max(1, EQUALIZER_VALUES // max((b - a) * max(x.shape[1] for x in blocks), 1))
    if len(blocks) > keep:
        blocks = [blocks[i] for i in np.unique(np.linspace(0, len(blocks) - 1, keep).round().astype(int))]
    per_sample = stretches.per_sample * sum(x.shape[1] for x in stretches.blocks) / sum(x.shape[1] for x in blocks)
    centred = stretches.centred[a:b] / per_sample  # error energy over these blocks at PRDN 100 %
    bands = [[float(lo), float(hi)] for lo, hi in stretches.bands.tolist()]

    def coded(c, segment) -> BandStatistics:
        stats = BandStatistics(b - a, stretches.bands, segment)
        for x in blocks:
            stats.add(x[a:b], c.decode(c.encode(x[a:b])))
        return stats

    codes, allowed, limit = np.zeros((b - a, len(bands)), np.int64), None, None
    for segment in (None, stretches.segment):
        stats = coded(with_gains(codec, bands, encode_codes(codes)) if codes.any() else codec, segment)
        if allowed is None:
            allowed = np.maximum(stats.error, (aim / 100) ** 2 * centred)
            limit = allowed * (1 + 1e-9)
        codes = np.clip(codes + fit_codes(stats, allowed), -MAX_CODE, MAX_CODE)
    for fallback in (lambda c: np.minimum(c, 0), lambda c: np.zeros_like(c)):
        if not codes.any():
            return codec
        equalized = with_gains(codec, bands, encode_codes(codes))
        error = sum(((equalized.decode(equalized.encode(x[a:b])) - x[a:b]) ** 2).sum(axis=1) for x in blocks)
        over = error > limit
        if not over.any():
            return equalized
        codes[over] = fallback(codes[over])
    return with_gains(codec, bands, encode_codes(codes)) if codes.any() else codec


class EqualizedDecoding:
    """A codec mixin: the configuration's ``bands`` and ``gains`` (:mod:`.equalizer`) applied to
    every block the codec decodes. ``_equalize(n_channels, bands, gains)`` from ``__init__``."""

    def _equalize(self, n_channels: int, bands, gains) -> None:
        self._bands = check_bands(self.codec_id, bands)
        self._codes = decode_codes(self.codec_id, gains, n_channels, len(self._bands))
        self.bands, self.gains = [[float(lo), float(hi)] for lo, hi in self._bands.tolist()], gains

    def decode(self, payload: bytes) -> np.ndarray:
        return apply(super().decode(payload), self._bands, self._codes)
