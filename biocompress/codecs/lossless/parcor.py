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


# Kind codes of a frame's predictor: 0…8 reflection indices of resolution code + 4;
# 9…25 direct-form coefficients with code + 5 fractional bits (lpc-v3's kind of predictor,
# for tonal and synthetic signals that need finer coefficients than reflection indices give).
DIRECT_CODE = MAX_RES - MIN_RES + 1
DIRECT_SHIFTS = range(14, 31)
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


@numba.njit(cache=True, nogil=True)
def value_row(values, orders, kinds):
    """One frame's predictor values of every channel as the row the stream carries:
    coefficient-major, each value minus the previous channel's value at the same position
    when both exist with the same kind. values: int64 (n_ch, 32)."""
    n_ch = orders.size
    out = np.empty(orders.sum(), np.int64)
    k = 0
    for i in range(orders.max() if n_ch else 0):
        for c in range(n_ch):
            if i < orders[c]:
                ref = values[c - 1, i] if c > 0 and i < orders[c - 1] and kinds[c - 1] == kinds[c] else 0
                out[k] = values[c, i] - ref
                k += 1
    return out


@numba.njit(cache=True, nogil=True)
def frame_coefficients(row, orders, kinds, flat, starts, coefs, shifts):
    """Normative inverse of :func:`value_row` and the predictors it describes: coefs (n_ch, 32)
    reversed and right-aligned (coefs[c, 31 − k] = q[k]), shifts (n_ch). Returns 0, or an
    error code: 1 row length, 2 value out of range, 3 unbounded predictor, 4 kind out of range."""
    n_ch = orders.size
    values = np.zeros((n_ch, 32), np.int64)
    k = 0
    p_max = 0
    for c in range(n_ch):
        if orders[c] < 0 or orders[c] > 32:
            return 1
        p_max = max(p_max, orders[c])
        if kinds[c] < 0 or kinds[c] > MAX_CODE:
            return 4
    if orders.sum() != row.size:
        return 1
    for i in range(p_max):
        for c in range(n_ch):
            if i < orders[c]:
                ref = values[c - 1, i] if c > 0 and i < orders[c - 1] and kinds[c - 1] == kinds[c] else 0
                values[c, i] = row[k] + ref
                k += 1
    q = np.zeros(32, np.int64)
    for c in range(n_ch):
        p, kind = orders[c], kinds[c]
        coefs[c, :] = 0
        if kind < DIRECT_CODE:
            res = kind + MIN_RES
            s = np.int64(1) << (res - 1)
            for i in range(p):
                if values[c, i] < -s or values[c, i] > s:
                    return 2
            if not _step_up(values[c, :p], res, flat, starts, q):
                return 3
            shifts[c] = Q_BITS
        else:
            for i in range(p):
                if values[c, i] <= -COEF_LIMIT or values[c, i] >= COEF_LIMIT:
                    return 2
                q[i] = values[c, i]
            shifts[c] = kind - DIRECT_CODE + 14
        for i in range(p):
            coefs[c, 31 - i] = q[i]
    return 0
