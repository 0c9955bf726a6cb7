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

ORDERS = (1, 2, 4, 8, 12, 16, 24, 32)
MAX_ORDER = ORDERS[-1]
_HEADROOM = 2**62
MIN_PRECISION, MAX_PRECISION = 14, 24  # fractional bits of the quantized coefficients


# Float64 represents every integer below 2**53 exactly, so while Σ|q|·max|x| stays
# under this bound the prediction sum is exact in any summation order: the kernels then
# run it in float64, which LLVM vectorizes (reassociation allowed), and fall back to
# int64 otherwise. Both paths give the same integers.
_FLOAT_EXACT = 4.0e15
_FASTMATH = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _run(x_in, r_in, q, orders, shifts, frame, synthesize):
    # synthesize: x = r + pred (decoder); else r = x - pred (encoder, x given)
    n = r_in.shape[0] if synthesize else x_in.shape[0]
    out = np.empty(n, np.int64)
    x = out if synthesize else x_in
    xf = np.empty(n, np.float64)
    big = 0.0  # max |x| over the samples so far
    if not synthesize:
        for i in range(n):
            xf[i] = x[i]
    q0 = 0
    for f in range(orders.shape[0]):
        p, shift = orders[f], shifts[f]
        qf = q[q0 : q0 + p][::-1].astype(np.float64)  # reversed: a dot product with xf[i-p:i]
        qsum = 0.0
        for k in range(p):
            qsum += abs(qf[k])
        half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
        scale = 1.0 / float(np.int64(1) << shift)
        stop = min(n, (f + 1) * frame)
        if not synthesize:  # the frame's samples and their history are known up front
            for i in range(max(0, f * frame - p), stop):
                big = max(big, abs(xf[i]))
        for i in range(f * frame, stop):
            if i < p:  # warm-up: only at the start of a block, where history is missing
                pred = x[i - 1] if i > 0 else 0
            elif qsum * big < _FLOAT_EXACT:
                acc = float(half)
                for k in range(p):
                    acc += qf[k] * xf[i - p + k]
                pred = np.int64(np.floor(acc * scale))
            else:
                acc_i = half
                for k in range(p):
                    acc_i += q[q0 + k] * x[i - 1 - k]
                pred = acc_i >> shift
            if synthesize:
                v = r_in[i] + pred
                out[i] = v
                xf[i] = v
                big = max(big, abs(xf[i]))
            else:
                out[i] = x[i] - pred
        q0 += p
    return out


def lpc_residual(x, q, orders, shifts, frame):
    """Residuals of x; frame f (samples [f·frame, (f+1)·frame)) uses predictor f."""
    return _run(np.asarray(x, np.int64), np.empty(0, np.int64), q, orders, shifts, frame, False)


def lpc_restore(r, q, orders, shifts, frame):
    """Inverse of :func:`lpc_residual`."""
    return _run(np.empty(0, np.int64), np.asarray(r, np.int64), q, orders, shifts, frame, True)


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
    # imported here: the integer codecs never need scipy (~0.1 s to import)
    from scipy.linalg import solve_triangular

    z = solve_triangular(chol, cov[1:, 0], lower=True)
    energy = np.maximum(cov[0, 0] - np.cumsum(z**2), 1e-3 * m)
    p_all = np.asarray(orders)
    cost = 0.5 * m * np.log2(energy[p_all - 1] / m) + p_all * coef_bits
    p = int(p_all[np.argmin(cost)])
    coef = solve_triangular(chol[:p, :p].T, z[:p], lower=False)
    if not np.isfinite(coef).all():
        return np.ones(1, np.int64), 0
    # Coefficient errors add noise ∝ 2^-precision·|x|: the more the predictor removes
    # (gain in bits), the finer the coefficients must be (EEG ~10 bits → 15; pure tones → 24).
    gain_bits = 0.5 * np.log2(max(cov[0, 0], 1e-300) / energy[p - 1])
    precision = int(np.clip(np.ceil(gain_bits) + 4, MIN_PRECISION, MAX_PRECISION))
    return quantize(coef, int(np.abs(x).max()), precision)


def quantize(coef: np.ndarray, max_abs_x: int, precision: int = 14):
    """Fixed-point coefficients with ``precision`` fractional bits, shrunk to avoid overflow."""
    shift = precision
    while shift > 0:
        q = np.round(coef * (1 << shift)).astype(np.int64)
        if (int(np.abs(q).sum()) + 1) * (max_abs_x + 1) < _HEADROOM:  # Python ints: no overflow
            return q, shift
        shift -= 1
    return np.ones(1, np.int64), 0
