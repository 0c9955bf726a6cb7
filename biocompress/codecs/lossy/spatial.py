"""Per-stream channel standardization and spatial decorrelation (principal components).

EEG/MEG channels share much of their signal (reference, volume conduction); the
autoencoder codes principal components of the channels instead of the channels,
each at a step that gives every component the same absolute error: the allocation
that minimises the total squared error (reverse water-filling; components far below
that error are not coded at all). The lossy mode scales each channel by its own
spread, so that every channel gets about the same *relative* error (PRDN): scaled by one
factor per unit, a clinical montage's few 50 mV auxiliary channels took the whole
budget and left its 100 µV EEG channels at 100 % PRDN. Near-lossless scales by *group*
(channels measured in one unit), as its bound is absolute.
The transform is fitted once, on the start of the stream, and stored with it. Its principal
components are those of consecutive blocks of at most :data:`PCA_BLOCK` channels: a transform
over every channel is n² floats in the codec's configuration (306 MEG channels: 375 KB, more
than a minute of coded samples), a block-diagonal one 32·n, mostly zeros that the archive's
LZMA-packed metadata stores for almost nothing.

The inverse transform (decoding) is applied by :func:`fixed_order_product`, not BLAS: a
threaded BLAS sums its products in an order that depends on the number of threads (and the
CPU), so the decoded values would change (by a few units in the last place) with
``OMP_NUM_THREADS`` or ``taskset``, and with them the archive's samples hash. The forward
transform only feeds the encoder, whose latents are stored: it uses BLAS (one thread), ten
times faster.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numba
import numpy as np

SIGMA_FLOOR = 0.05  # components silent at the start may wake up later: keep them codable
PCA_BLOCK = 32  # channels per block of the block-diagonal transform
DROP_STEP = 100.0  # a component whose step exceeds 100 of its own standard deviations is not coded
_TILE = 128  # samples per tile of fixed_order_product (4 output rows × 128 samples stay in L1)


@numba.njit(cache=True, nogil=True)
def _product(a, z):
    n_i, n_k = a.shape
    n_t = z.shape[1]
    out = np.empty((n_i, n_t))
    acc = np.empty((4, _TILE))
    for t0 in range(0, n_t, _TILE):
        m = min(n_t - t0, _TILE)
        for i0 in range(0, n_i, 4):
            rows = min(4, n_i - i0)
            acc[:, :] = 0.0
            for k in range(n_k):
                for r in range(rows):
                    w = a[i0 + r, k]
                    for t in range(m):
                        acc[r, t] += w * z[k, t0 + t]
            for r in range(rows):
                out[i0 + r, t0 : t0 + m] = acc[r, :m]
    return out


def fixed_order_product(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``a @ z`` (float64) with each output summed over ``k = 0, 1, …`` in order, on one thread:
    the same floats whatever the thread count (and, without fused multiply-adds, on any IEEE machine)."""
    a = np.ascontiguousarray(a, np.float64)
    z = np.ascontiguousarray(z, np.float64)
    if a.shape[1] != z.shape[0]:
        raise ValueError(f"shapes {a.shape} and {z.shape} do not multiply")
    return _product(a, z)


def _principal_components(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(orthonormal columns, standard deviations) of the principal components of rows ``s``,
    largest first, each column's largest entry positive."""
    if s.shape[0] == 1:
        return np.ones((1, 1)), np.atleast_1d(max(float(np.std(s)), SIGMA_FLOOR))
    w, v = np.linalg.eigh(np.cov(s))
    order = np.argsort(w)[::-1]
    v = v[:, order]
    v *= np.where(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])] < 0, -1.0, 1.0)  # sign convention
    return v, np.sqrt(np.maximum(w[order], SIGMA_FLOOR**2))


@dataclass
class Spatial:
    offsets: np.ndarray  # (n_ch,) subtracted first
    scales: np.ndarray  # (n_ch,) then divided by
    transform: np.ndarray  # (n_ch, n_ch) orthonormal columns: components = transformᵀ · standardized
    sigmas: np.ndarray  # (n_ch,) standard deviation of each component

    @classmethod
    def fit(cls, x: np.ndarray, groups=None, gains=None) -> "Spatial":
        """From a (n_ch, n) stretch of the stream; ``groups``: a label per channel, channels of
        one label sharing one scale (default: each channel its own). ``gains``: per channel, a
        factor on its scale (> 1: the channel is coded more coarsely, its PRDN about that much higher)."""
        x = np.asarray(x, np.float64)
        groups = np.arange(x.shape[0]) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        offsets = np.median(x, axis=1)
        spread = np.std(x, axis=1)
        scales = np.ones(x.shape[0])
        for g in np.unique(groups):
            rms = float(np.sqrt(np.mean(spread[groups == g] ** 2)))
            scales[groups == g] = rms if rms > 0 else 1.0
        if gains is not None:
            scales *= np.asarray(gains, np.float64)
        s = (x - offsets[:, None]) / scales[:, None]
        n = x.shape[0]
        if n == 1:
            return cls(offsets, scales, np.ones((1, 1)), np.atleast_1d(np.std(s)))
        transform, sigmas = np.zeros((n, n)), np.zeros(n)
        for a in range(0, n, PCA_BLOCK):
            b = min(n, a + PCA_BLOCK)
            transform[a:b, a:b], sigmas[a:b] = _principal_components(s[a:b])
        return cls.from_config(cls(offsets, scales, transform, sigmas).to_config())  # as stored: float32

    def to_components(self, x: np.ndarray, rows=None) -> np.ndarray:
        """Values (n_ch, n) → components divided by their standard deviation (``rows``: only
        these components)."""
        from ...system.threads import one_blas_thread

        rows = slice(None) if rows is None else rows
        s = (np.asarray(x, np.float64) - self.offsets[:, None]) / self.scales[:, None]
        with one_blas_thread():
            return (self.transform.T[rows] @ s) / self.sigmas[rows, None]

    def from_components(self, z: np.ndarray) -> np.ndarray:
        return fixed_order_product(self.transform, z * self.sigmas[:, None]) * self.scales[:, None] + self.offsets[:, None]

    def steps(self, relative_step: float) -> np.ndarray:
        """Per-component step (in component std units) giving every component the same error."""
        return relative_step / self.sigmas

    def coded(self, relative_step: float) -> np.ndarray:
        return np.flatnonzero(self.steps(relative_step) <= DROP_STEP)

    def to_config(self) -> dict:
        """Every array as base64 of little-endian float32 (the precision the codec uses)."""
        pack = lambda a: base64.b64encode(np.asarray(a, "<f4").tobytes()).decode("ascii")  # noqa: E731
        return {"n": int(self.offsets.size), "offsets": pack(self.offsets), "scales": pack(self.scales),
                "transform": pack(self.transform), "sigmas": pack(self.sigmas)}

    @classmethod
    def from_config(cls, c: dict) -> "Spatial":
        n = int(c["n"])

        def unpack(key, shape):
            a = np.frombuffer(base64.b64decode(c[key], validate=True), "<f4").astype(np.float64)
            if a.size != int(np.prod(shape)) or not np.isfinite(a).all():
                raise ValueError(f"spatial {key}: {a.size} finite values expected to be {shape}")
            return a.reshape(shape)
        return cls(unpack("offsets", (n,)), unpack("scales", (n,)), unpack("transform", (n, n)),
                   unpack("sigmas", (n,)))
