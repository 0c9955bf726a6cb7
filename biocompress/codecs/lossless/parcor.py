"""Linear predictors sent as quantized reflection (PARCOR) coefficients (lpc-v4).

lpc-v1…v3 send direct-form coefficients with 14–24 fractional bits: EEG frames cost
about 17 bits per coefficient, 2–3 % of a payload. Reflection coefficients ``κ`` lie in
(−1, 1) and tolerate coarse quantization once companded by ``asin``: an index ``i`` of
``B`` resolution bits stands for ``κ = sin(i / 2^(B−1) · π/2)`` (``B`` chosen per frame), and
costs about 5–7 bits after entropy coding, for the same prediction.

The decoder rebuilds the direct-form coefficients from the indices with integers only
(:func:`direct_coefficients`), so encoder and decoder agree on every machine; the float
analysis (windowed autocorrelation, Levinson–Durbin) only chooses the indices.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from ...errors import CorruptArchiveError
from . import lpc

MAX_ORDER = 32
Q_BITS = 20  # fractional bits of the rebuilt direct-form coefficients (the predictor's shift)
MIN_RES, MAX_RES = 4, 12  # resolution bits B of an index: |index| ≤ 2^(B−1)
COEF_LIMIT = 1 << 40  # |direct-form coefficient| bound; larger ones mark a damaged payload


@lru_cache(maxsize=None)
def kappa_table(res_bits: int) -> np.ndarray:
    """Normative: κ of every index −S…S (S = 2^(B−1)) as integers with Q_BITS fractional bits."""
    if not MIN_RES <= res_bits <= MAX_RES:
        raise ValueError(f"PARCOR resolution must be within {MIN_RES}..{MAX_RES} bits, got {res_bits}")
    s = 1 << (res_bits - 1)
    i = np.arange(-s, s + 1, dtype=np.float64)
    return np.rint(np.sin(i / s * (np.pi / 2)) * (1 << Q_BITS)).astype(np.int64)


@lru_cache(maxsize=1)
def all_kappa_tables() -> tuple[np.ndarray, np.ndarray]:
    """Every resolution's table end to end, and where each starts (for the numba kernels)."""
    tables = [kappa_table(b) for b in range(MIN_RES, MAX_RES + 1)]
    starts = np.concatenate([[0], np.cumsum([t.size for t in tables])[:-1]]).astype(np.int64)
    return np.concatenate(tables), starts


@numba.njit(cache=True, nogil=True)
def _step_up(idx, res_bits, flat, starts, out):
    # Direct-form coefficients (Q_BITS) of the reflection indices, integers only; False when
    # a coefficient leaves ±COEF_LIMIT (only a damaged payload can ask for that).
    p = idx.size
    s = np.int64(1) << (res_bits - 1)
    base = starts[res_bits - 4] + s
    half = np.int64(1) << (20 - 1)
    tmp = np.empty(p, np.int64)
    for m in range(p):
        k = flat[base + idx[m]]
        for j in range(m):
            tmp[j] = out[j] - ((k * out[m - 1 - j] + half) >> 20)
        for j in range(m):
            if tmp[j] >= (np.int64(1) << 40) or tmp[j] <= -(np.int64(1) << 40):
                return False
            out[j] = tmp[j]
        out[m] = k
    return True


def direct_coefficients(idx: np.ndarray, res_bits: int) -> np.ndarray:
    """Normative: the predictor q (Q_BITS fractional bits) of reflection indices ``idx``."""
    idx = np.asarray(idx, np.int64)
    s = 1 << (res_bits - 1)
    if not MIN_RES <= res_bits <= MAX_RES or ((idx < -s) | (idx > s)).any():
        raise CorruptArchiveError("PARCOR index or resolution out of range")
    flat, starts = all_kappa_tables()
    out = np.zeros(idx.size, np.int64)
    if not _step_up(idx, res_bits, flat, starts, out):
        raise CorruptArchiveError("PARCOR coefficients give an unbounded predictor")
    return out


# --------------------------------------------------------------------------- analysis (encoder)


@numba.njit(cache=True, nogil=True)
def _cholesky_orders(cov, p):
    # Cholesky factor L of cov[1:p+1, 1:p+1] (ridge added) and z = L⁻¹·cov[1:, 0]: the order-m
    # least-squares predictor's error is cov[0,0] − Σ_{i<m} z_i², for every m ≤ p at once.
    # Returns (L, z, usable order): a pivot that is not positive stops the factorisation.
    trace = 0.0
    for i in range(p + 1):
        trace += cov[i, i]
    ridge = 1e-10 * trace / (p + 1) + 1e-12
    L = np.zeros((p, p))
    z = np.zeros(p)
    for i in range(p):
        for j in range(i + 1):
            acc = cov[i + 1, j + 1] + (ridge if i == j else 0.0)
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            if i == j:
                if acc <= 0.0:
                    return L, z, i
                L[i, i] = np.sqrt(acc)
            else:
                L[i, j] = acc / L[j, j]
        acc = cov[i + 1, 0]
        for k in range(i):
            acc -= L[i, k] * z[k]
        z[i] = acc / L[i, i]
    return L, z, p


@numba.njit(cache=True, nogil=True)
def _solve_order(L, z, m):
    # Direct-form predictor of order m: Lᵀ·c = z over the leading m×m block.
    c = np.zeros(m)
    for i in range(m - 1, -1, -1):
        acc = z[i]
        for k in range(i + 1, m):
            acc -= L[k, i] * c[k]
        c[i] = acc / L[i, i]
    return c


@numba.njit(cache=True, nogil=True)
def _step_down(c):
    # Reflection coefficients of a direct-form predictor; ok = False when it is not minimum phase.
    p = c.size
    a = c.copy()
    kappa = np.zeros(p)
    tmp = np.zeros(p)
    for m in range(p - 1, -1, -1):
        k = a[m]
        kappa[m] = k
        if not -1.0 < k < 1.0:
            return kappa, False
        d = 1.0 - k * k
        for j in range(m):
            tmp[j] = (a[j] + k * a[m - 1 - j]) / d
        for j in range(m):
            a[j] = tmp[j]
    return kappa, True


@numba.njit(cache=True, nogil=True, fastmath=True)
def _windowed_autocorrelation(x, p):
    # Hann-windowed, mean-removed autocorrelation r[0..p] of x (float64): the fallback
    # analysis, whose predictor is always minimum phase.
    n = x.size
    mean = 0.0
    for t in range(n):
        mean += x[t]
    mean /= max(n, 1)
    w = np.empty(n)
    for t in range(n):
        w[t] = (x[t] - mean) * (0.5 - 0.5 * np.cos(2.0 * np.pi * (t + 1) / (n + 1)))
    r = np.zeros(p + 1)
    for lag in range(p + 1):
        acc = 0.0
        for t in range(lag, n):
            acc += w[t] * w[t - lag]
        r[lag] = acc
    return r


@numba.njit(cache=True, nogil=True)
def _levinson(r, p):
    # Reflection coefficients κ[0..p) of an autocorrelation sequence.
    kappa = np.zeros(p)
    c = np.zeros(p)
    tmp = np.zeros(p)
    e = r[0] * (1.0 + 1e-9) + 1e-30
    for m in range(p):
        acc = r[m + 1]
        for j in range(m):
            acc -= c[j] * r[m - j]
        k = min(max(acc / e, -1.0 + 1e-12), 1.0 - 1e-12)
        for j in range(m):
            tmp[j] = c[j] - k * c[m - 1 - j]
        for j in range(m):
            c[j] = tmp[j]
        c[m] = k
        kappa[m] = k
        e *= 1.0 - k * k
    return kappa


@numba.njit(cache=True, nogil=True)
def _quadratic_error(cov, q, shift):
    # Prediction error energy of the fixed-point predictor q over the frame: c00 − 2qᵀc + qᵀCq.
    p = q.size
    scale = 1.0 / float(np.int64(1) << shift)
    e = cov[0, 0]
    for i in range(p):
        ci = q[i] * scale
        e -= 2.0 * ci * cov[i + 1, 0]
        for j in range(p):
            e += ci * (q[j] * scale) * cov[i + 1, j + 1]
    return e


def _indices(kappa: np.ndarray, res_bits: int) -> np.ndarray:
    s = 1 << (res_bits - 1)
    return np.rint(np.arcsin(np.clip(kappa, -1.0, 1.0)) / (np.pi / 2) * s).astype(np.int64)


COEF_BITS = 6.0  # estimated coded size of one reflection index (order choice)
RESOLUTIONS = (6, 7, 8, 9, 10, 11, 12)
DIRECT_SHIFTS = range(14, 31)


def _direct_choice(cov, L, z, p, m):
    """Best direct-form predictor of order p: (estimated bits, q, shift)."""
    coef = _solve_order(L, z, p)
    best = None
    for shift in DIRECT_SHIFTS:
        q = np.rint(coef * (1 << shift)).astype(np.int64)
        if np.abs(q).max(initial=0) >= COEF_LIMIT:
            break
        bits = 0.5 * m * np.log2(max(_quadratic_error(cov, q, shift), 1e-3 * m)) + \
            float(np.log2(np.abs(q) + 1.0).sum()) + 2.0 * p
        if best is None or bits < best[0]:
            best = (bits, q, shift)
    return best


def choose_predictor(x: np.ndarray, history: int, max_order: int):
    """Order and coefficients for one frame: ``(values int64[p], kind code)`` (see :func:`predictor`).

    ``x`` holds ``history`` samples before the frame, then the frame. The least-squares
    (covariance) predictor of each order gives the error energy; the order minimises
    frame length/2 · log2(error) + its coefficients' estimated cost, then the resolution
    minimises the same with the quantized predictor. A predictor that is not minimum
    phase falls back to the windowed autocorrelation (Levinson–Durbin) one. Frames that
    need the finest reflection resolutions (tonal, synthetic signals) also try direct-form
    coefficients of up to 30 fractional bits, as lpc-v3 sends them.
    """
    n = x.shape[0] - history
    if n <= 0:
        return NONE
    frame = x[history:]
    if frame.min() == frame.max():  # constant: repeat the previous sample (κ = 1 exactly)
        return REPEAT
    p_max = min(max_order, max(0, n // 4), history + n // 2)
    if p_max == 0:
        return NONE
    start = max(0, history - p_max)
    cov = lpc._lagged_covariance(x[start:], p_max)
    if not cov[0, 0] > 0:
        return NONE
    L, z, usable = _cholesky_orders(cov, p_max)
    m = n - max(0, p_max - history)
    energy = np.maximum(cov[0, 0] - np.concatenate([[0.0], np.cumsum(z[:usable] ** 2)]), 1e-3 * m)
    orders = np.arange(usable + 1)
    p = int(np.argmin(0.5 * m * np.log2(energy) + orders * COEF_BITS))
    if p == 0:
        return NONE
    kappa, ok = _step_down(_solve_order(L, z, p))
    if not ok:
        kappa = _levinson(_windowed_autocorrelation(x.astype(np.float64), p), p)
    best = None
    for res in RESOLUTIONS:
        idx = _indices(kappa, res)
        q = direct_coefficients(idx, res)
        error = max(_quadratic_error(cov, q, Q_BITS), 1e-3 * m)
        bits = 0.5 * m * np.log2(error) + p * (res - 7 + COEF_BITS)
        if best is None or bits < best[0]:
            best = (bits, idx, res - MIN_RES, error)
    if best[3] > 1.1 * energy[p]:  # quantized reflection coefficients lose too much: tonal signals
        direct = _direct_choice(cov, L, z, p, m)
        if direct is not None and direct[0] < best[0]:
            return direct[1], direct[2] + DIRECT_CODE - DIRECT_SHIFTS[0]
    return best[1], best[2]


# Kind codes of a frame's predictor: 0…8 reflection indices of resolution code + 4;
# 9…25 direct-form coefficients with code + 5 fractional bits.
DIRECT_CODE = MAX_RES - MIN_RES + 1
MAX_CODE = DIRECT_CODE + len(DIRECT_SHIFTS) - 1
NONE = (np.zeros(0, np.int64), 0)
REPEAT = (np.array([1 << (MIN_RES - 1)], np.int64), 0)  # κ = 1 at resolution 4: pred = previous sample
# fixed polynomial predictors (as FLAC's): κ = +1, −1, +1 give [1], [2, −1], [3, −3, 1] exactly
POLYNOMIALS = tuple((np.array([(1 << (MIN_RES - 1)) * (-1) ** i for i in range(p)], np.int64), 0) for p in (1, 2, 3))


def predictor(values: np.ndarray, code: int) -> tuple[np.ndarray, int]:
    """Normative: (q, shift) of a frame's predictor values and kind code: pred = (Σ q·x + half) >> shift."""
    if not 0 <= code <= MAX_CODE:
        raise CorruptArchiveError(f"predictor kind {code} out of range")
    if code < DIRECT_CODE:
        return direct_coefficients(values, code + MIN_RES), Q_BITS
    values = np.asarray(values, np.int64)
    if ((values <= -COEF_LIMIT) | (values >= COEF_LIMIT)).any():
        raise CorruptArchiveError("direct-form coefficient out of range")
    return values, code - DIRECT_CODE + DIRECT_SHIFTS[0]
