"""Least-squares linear prediction with integer-exact, quantized coefficients.

Prediction of sample n from the p previous ones::

    pred[n] = (sum_k q[k] * x[n-1-k] + 2**(shift-1)) >> shift     (n >= p)
    pred[n] = x[n-1] for 0 < n < p,   pred[0] = 0                 (warm-up)

Everything on the coded path is int64 arithmetic, so encoder and decoder agree
on every machine; the float least-squares fit only chooses the coefficients.
Synthesis is recursive (each sample needs the previous decoded ones), hence the
numba kernels.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg import solve_triangular

ORDERS = (1, 2, 4, 8, 12, 16, 24, 32)
MAX_ORDER = ORDERS[-1]
_HEADROOM = 2**62


@numba.njit(cache=True, nogil=True)
def _predict(x, i, q, q0, p, shift):
    if i < p:  # warm-up: only at the start of a block, where history is missing
        return x[i - 1] if i > 0 else 0
    acc = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
    for k in range(p):
        acc += q[q0 + k] * x[i - 1 - k]
    return acc >> shift


@numba.njit(cache=True, nogil=True)
def lpc_residual(x, q, orders, shifts, frame):
    """Residuals of x; frame f (samples [f·frame, (f+1)·frame)) uses predictor f."""
    n = x.shape[0]
    r = np.empty(n, np.int64)
    q0 = 0
    for f in range(orders.shape[0]):
        for i in range(f * frame, min(n, (f + 1) * frame)):
            r[i] = x[i] - _predict(x, i, q, q0, orders[f], shifts[f])
        q0 += orders[f]
    return r


@numba.njit(cache=True, nogil=True)
def lpc_restore(r, q, orders, shifts, frame):
    n = r.shape[0]
    x = np.empty(n, np.int64)
    q0 = 0
    for f in range(orders.shape[0]):
        for i in range(f * frame, min(n, (f + 1) * frame)):
            x[i] = r[i] + _predict(x, i, q, q0, orders[f], shifts[f])
        q0 += orders[f]
    return x


@numba.njit(cache=True, nogil=True)
def _lagged_covariance_kernel(y, order):
    # C[i, j] = sum_{n=order}^{N-1} y[n-i] y[n-j]; C[i, j] follows from C[i-1, j-1]
    # by moving the summation window one sample back: O(N·order) instead of O(N·order²).
    n = y.shape[0]
    c = np.empty((order + 1, order + 1))
    for j in range(order + 1):
        acc = 0.0
        for t in range(order, n):
            acc += y[t] * y[t - j]
        c[0, j] = acc
    for i in range(1, order + 1):
        for j in range(i, order + 1):
            c[i, j] = c[i - 1, j - 1] + y[order - i] * y[order - j] - y[n - i] * y[n - j]
    for i in range(order + 1):
        for j in range(i):
            c[i, j] = c[j, i]
    return c


def _lagged_covariance(x: np.ndarray, max_order: int) -> np.ndarray:
    """(max_order+1)² covariance of [x[n], x[n-1], …, x[n-max_order]] over the block.

    The block mean is removed first; DC is then carried by coefficients summing to ~1.
    """
    y = x.astype(np.float64)
    return _lagged_covariance_kernel(y - y.mean(), max_order)


def choose_predictor(x: np.ndarray, max_order: int = MAX_ORDER, coef_bits: float = 14.0, history: int = 0):
    """Pick order and quantized coefficients for one frame.

    ``x`` holds ``history`` samples before the frame, then the frame. Order is
    chosen by an estimate of the coded size: n/2·log2(residual energy) plus the
    cost of the coefficients. Returns (q int64[p], shift).
    """
    n = x.shape[0] - history
    orders = [p for p in ORDERS if p <= max_order and p < n // 4 and p <= history + n // 2]
    if not orders or np.ptp(x[history:]) == 0:
        return np.ones(1 if x.shape[0] > 1 else 0, np.int64), 0
    top = orders[-1]
    start = max(0, history - top)
    cov = _lagged_covariance(x[start:], top)
    m = n - top
    ridge = 1e-10 * np.trace(cov) / (top + 1) + 1e-12
    try:
        # One Cholesky factor serves every order: the order-p normal equations use its
        # leading p×p block, and their residual energy is cov00 − ‖z[:p]‖², z = L⁻¹·rhs.
        chol = np.linalg.cholesky(cov[1:, 1:] + ridge * np.eye(top))
    except np.linalg.LinAlgError:
        return np.ones(1, np.int64), 0
    z = solve_triangular(chol, cov[1:, 0], lower=True)
    energy = np.maximum(cov[0, 0] - np.cumsum(z**2), 1e-3 * m)
    p_all = np.asarray(orders)
    cost = 0.5 * m * np.log2(energy[p_all - 1] / m) + p_all * coef_bits
    p = int(p_all[np.argmin(cost)])
    coef = solve_triangular(chol[:p, :p].T, z[:p], lower=False)
    if not np.isfinite(coef).all():
        return np.ones(1, np.int64), 0
    return quantize(coef, int(np.abs(x).max()))


def quantize(coef: np.ndarray, max_abs_x: int, precision: int = 14):
    """Fixed-point coefficients with ``precision`` fractional bits, shrunk to avoid overflow."""
    shift = precision
    while shift > 0:
        q = np.round(coef * (1 << shift)).astype(np.int64)
        if (np.abs(q).sum() + 1) * (max_abs_x + 1) < _HEADROOM:
            return q, shift
        shift -= 1
    return np.ones(1, np.int64), 0
