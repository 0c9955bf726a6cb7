"""lpc-v4 encoder analysis: a predictor for every frame of every row, and the residuals.

One numba call does a whole prediction stage of a block (no Python per frame, no BLAS):

1. least squares (covariance method): the error energy of every order at once from one
   Cholesky factor; the order minimises length/2 · log2(error) + 6 bits per coefficient;
2. the predictor as reflection coefficients (step-down; Levinson–Durbin on a windowed
   autocorrelation when it is not minimum phase), quantized at the resolution (6–12 bits)
   that minimises the same estimate with the quantized predictor's exact error energy;
   direct-form coefficients (14–30 fractional bits) when quantization loses > 10 % energy;
3. frames with many exact repeats (step-like, sawtooth, synthetic signals) also try
   ``alternatives`` (fixed polynomial predictors, or none) and keep the residual with the
   smallest Σ log2(1 + |r|): least squares chases jumps that a fixed predictor leaves alone.

Nothing here is normative: the bitstream records the choices.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import parcor
from .prediction import TAPS

COEF_BITS = 6.0  # estimated coded size of one reflection index (order choice)
MIN_SEARCH_RES, FIRST_RES = 5, 7
HEADROOM = 2.0**61  # float bound, below the int64 headroom 2^62 with margin
ALTERNATIVE_SHARE = 8  # try the alternatives when ≥ 1/8 of a frame's samples repeat exactly


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lagged_covariance(y, order):
    # C[i, j] = Σ_{t=order}^{n−1} y[t−i]·y[t−j]; row 0 by dot products over slices, the rest
    # from C[i−1, j−1] by moving the window one sample back (O(n·order)).
    n = y.shape[0]
    c = np.empty((order + 1, order + 1))
    head = y[order:n]
    for j in range(order + 1):
        lagged = y[order - j : n - j]
        acc = 0.0
        for t in range(n - order):
            acc += head[t] * lagged[t]
        c[0, j] = acc
    for i in range(1, order + 1):
        for j in range(i, order + 1):
            c[i, j] = c[i - 1, j - 1] + y[order - i] * y[order - j] - y[n - i] * y[n - j]
    for i in range(order + 1):
        for j in range(i):
            c[i, j] = c[j, i]
    return c


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
def _levinson_windowed(x, p):
    # Reflection coefficients of the Hann-windowed, mean-removed autocorrelation (minimum phase).
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
def _quadratic_error(cov, q, p, shift):
    # Error energy of the fixed-point predictor q[:p] over the analysed samples: c00 − 2qᵀc + qᵀCq.
    scale = 1.0 / float(np.int64(1) << shift)
    e = cov[0, 0]
    for i in range(p):
        ci = q[i] * scale
        e -= 2.0 * ci * cov[i + 1, 0]
        acc = 0.0
        for j in range(p):
            acc += (q[j] * scale) * cov[i + 1, j + 1]
        e += ci * acc
    return e


@numba.njit(cache=True, nogil=True, fastmath=True)
def _reweighted_covariance(y, p, offset, coef, cov):
    # One IRLS step: weights 1/|error| of the predictor coef (floored at half the mean |error|)
    # over samples t ≥ offset of y, and the weighted (p+1)² covariance of [y[t], …, y[t−p]].
    n = y.size - offset
    err = np.empty(n)
    total = 0.0
    for t in range(n):
        acc = y[offset + t]
        for k in range(p):
            acc -= coef[k] * y[offset + t - 1 - k]
        err[t] = abs(acc)
        total += err[t]
    floor = 0.5 * total / max(n, 1) + 1e-9
    for t in range(n):
        err[t] = 1.0 / max(err[t], floor)
    for i in range(p + 1):
        a = y[offset - i : offset - i + n]
        for j in range(i, p + 1):
            b = y[offset - j : offset - j + n]
            acc = 0.0
            for t in range(n):
                acc += err[t] * a[t] * b[t]
            cov[i, j] = acc
            cov[j, i] = acc


@numba.njit(cache=True, nogil=True)
def _float_error(cov, coef, p):
    e = cov[0, 0]
    for i in range(p):
        e -= 2.0 * coef[i] * cov[i + 1, 0]
        acc = 0.0
        for j in range(p):
            acc += coef[j] * cov[i + 1, j + 1]
        e += coef[i] * acc
    return e


@numba.njit(cache=True, nogil=True)
def _quantized(coef, p, cov, m, floor, e_p, weight, reflection, window, flat, starts, values, q):
    # The coded form of predictor coef (order p): reflection indices at the resolution whose
    # estimated bits (weight·m·log2(error) + indices) are fewest, or direct-form coefficients
    # when that loses > 10 % of the error energy e_p. Fills values[:p], q[:p]; (kind, shift, ok).
    kappa, ok = _step_down(coef)
    if not ok:
        kappa = _levinson_windowed(window.astype(np.float64), p)
    best_bits = np.inf
    best_res = MIN_SEARCH_RES
    best_error = 0.0
    idx = np.zeros(p, np.int64)
    qq = np.zeros(p, np.int64)
    res = FIRST_RES
    step = 1
    while reflection and MIN_SEARCH_RES <= res <= parcor.MAX_RES:  # walk up (or down) from 7 bits while it pays
        s = float(np.int64(1) << (res - 1))
        for i in range(p):
            idx[i] = np.int64(math.floor(math.asin(kappa[i]) / (0.5 * math.pi) * s + 0.5))
        if not parcor._step_up(idx, res, flat, starts, qq):
            break
        error = max(_quadratic_error(cov, qq, p, parcor.Q_BITS), floor)
        bits = weight * m * math.log2(error) + p * (res - 7 + COEF_BITS)
        if bits < best_bits:
            best_bits, best_res, best_error = bits, res, error
            values[:p] = idx
            q[:p] = qq
        elif res == FIRST_RES + 1 and step == 1:
            res, step = FIRST_RES, -1  # finer did not pay: try coarser
        else:
            break
        res += step
    kind, shift = best_res - parcor.MIN_RES, parcor.Q_BITS
    if best_error > 1.1 * e_p or best_bits == np.inf:  # tonal signals: direct form, lpc-v3's precision
        for sh in range(14, 31):
            scale = float(np.int64(1) << sh)
            big = False
            for i in range(p):
                v = math.floor(coef[i] * scale + 0.5)
                if abs(v) >= 2.0**40:
                    big = True
                qq[i] = np.int64(v) if not big else 0
            if big:
                break
            error = max(_quadratic_error(cov, qq, p, sh), floor)
            bits = weight * m * math.log2(error) + 2.0 * p
            for i in range(p):
                bits += math.log2(abs(qq[i]) + 1.0)
            if bits < best_bits:
                best_bits = bits
                kind, shift = parcor.DIRECT_CODE + sh - 14, sh
                values[:p] = qq
                q[:p] = qq
    return kind, shift, best_bits < np.inf


@numba.njit(cache=True, nogil=True)
def _least_squares_choice(window, hist, max_order, reflection, irls, flat, starts, values, q, values2, q2):
    # The least-squares predictor's order p and coded form (values, q): (p, kind, shift, ...);
    # irls > 0 also gives, in values2/q2, the same order refitted by that many reweighting
    # steps towards least |error| (Laplacian residuals): (…, kind2, shift2, True). The caller
    # keeps whichever codes the frame smaller. reflection=False: direct form only.
    n = window.size - hist
    p_max = min(max_order, n // 4, hist + n // 2)
    if p_max <= 0:
        return 0, 0, parcor.Q_BITS, 0, parcor.Q_BITS, False
    start = max(0, hist - p_max)
    y = np.empty(window.size - start)
    mean = 0.0
    for t in range(y.size):
        y[t] = window[start + t]
        mean += y[t]
    mean /= y.size
    for t in range(y.size):
        y[t] -= mean
    cov = _lagged_covariance(y, p_max)
    if not cov[0, 0] > 0.0:
        return 0, 0, parcor.Q_BITS, 0, parcor.Q_BITS, False
    L, z, usable = _cholesky_orders(cov, p_max)
    m = n - max(0, p_max - hist)
    floor = 1e-3 * m
    best_cost = 0.5 * m * math.log2(max(cov[0, 0], floor))
    p = 0
    energy = cov[0, 0]
    e_p = energy
    for i in range(usable):
        energy -= z[i] * z[i]
        cost = 0.5 * m * math.log2(max(energy, floor)) + (i + 1) * COEF_BITS
        if cost < best_cost:
            best_cost, p, e_p = cost, i + 1, max(energy, floor)
    if p == 0:
        return 0, 0, parcor.Q_BITS, 0, parcor.Q_BITS, False
    coef = _solve_order(L, z, p)
    kind, shift, ok = _quantized(coef, p, cov, m, floor, e_p, 0.5, reflection, window, flat, starts, values, q)
    if not ok:
        return 0, 0, parcor.Q_BITS, 0, parcor.Q_BITS, False
    if irls > 0:
        wcov = np.empty((p + 1, p + 1))
        solved = False
        for _ in range(irls):
            _reweighted_covariance(y, p, p_max, coef, wcov)
            Lw, zw, ok_w = _cholesky_orders(wcov, p)
            if ok_w < p:
                break
            coef = _solve_order(Lw, zw, p)
            solved = True
        if solved:
            # bits ≈ m·log2(Σ w·e²) after reweighting (≈ Σ|e|), not m/2·log2(energy)
            e_w = max(_float_error(wcov, coef, p), floor)
            kind2, shift2, ok2 = _quantized(coef, p, wcov, m, floor, e_w, 1.0, reflection, window, flat, starts,
                                            values2, q2)
            if ok2:
                return p, kind, shift, kind2, shift2, True
    return p, kind, shift, 0, parcor.Q_BITS, False


@numba.njit(cache=True, nogil=True)
def _frame_residual(x, a, b, q, p, shift, out, acc):
    # out[t − a] = x[t] − pred[t] for t in [a, b) (x is the whole row: history crosses frames);
    # tap by tap over slices, which vectorizes
    half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
    start = min(b, max(a, p))
    for t in range(a, start):  # warm-up at the block start
        out[t - a] = x[t] - (x[t - 1] if t > 0 else np.int64(0))
    m = b - start
    acc[:m] = half
    for k in range(p):
        qk = q[k]
        src = x[start - 1 - k : b - 1 - k]
        for t in range(m):
            acc[t] += qk * src[t]
    xs = x[start:b]
    dst = out[start - a : b - a]
    for t in range(m):
        dst[t] = xs[t] - (acc[t] >> shift)


@numba.njit(cache=True, nogil=True)
def _range(window, hist):
    # (min, max) of the frame window[hist:], max |value| of the whole window
    lo, hi = window[hist], window[hist]
    peak = np.int64(0)
    for v in window:
        peak = max(peak, abs(v))
    for v in window[hist:]:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi, peak


@numba.njit(cache=True, nogil=True)
def _repeats(x, a, b):
    # samples of [a, b) a fixed polynomial predictor gets exactly: x[t] = x[t−1] or the same
    # step as before
    count = 0
    lo = max(a, 2)
    cur, prev, prev2 = x[lo:b], x[lo - 1 : b - 1], x[lo - 2 : b - 2]
    for t in range(b - lo):
        d = cur[t] - prev[t]
        count += (d == 0) | (d == prev[t] - prev2[t])
    return count


@numba.njit(cache=True, nogil=True)
def _fits(q, p, peak):
    # (Σ|q| + 1)·(max|x| + 1) well below 2^62: the prediction sum cannot leave int64
    qsum = 1.0
    for k in range(p):
        qsum += abs(float(q[k]))
    return qsum * (peak + 1.0) < HEADROOM


@numba.njit(cache=True, nogil=True, fastmath=True)
def _log_cost(r, m, scratch):
    # Σ log2(1 + |r|) with log2 read off the float64 bits (exponent + mantissa as a fraction,
    # within 0.09 of the true value): a libm log per sample would dominate the analysis
    for t in range(m):
        scratch[t] = 1.0 + abs(float(r[t]))
    bits = scratch[:m].view(np.int64)
    total = 0.0
    for t in range(m):
        total += float(bits[t] - (np.int64(1023) << 52))
    return total * (1.0 / float(np.int64(1) << 52))


@numba.njit(cache=True, nogil=True)
def analyse_stage(rows, frame, max_order, polynomial, reflection, alternatives, irls, always, flat, starts, res_out,
                  values_out, orders_out, kinds_out, coefs_out, shifts_out):
    """Predictors and residuals of every row: rows (n_ch, n) int64 → res_out (n_ch, n);
    per (channel, frame): values_out (…, 32), orders_out, kinds_out, coefs_out (…, 32: the
    q reversed and right-aligned, as prediction.synthesize_rows takes them), shifts_out.
    ``polynomial``: the alternatives are the fixed predictors of orders 1–3 (stage 1), else
    no prediction (stage 2); ``alternatives=False`` skips them; ``reflection=False`` sends
    direct-form coefficients only (lpc-v3's kind of predictor; for comparisons)."""
    n_ch, n = rows.shape
    n_frames = orders_out.shape[1]
    values = np.zeros(TAPS, np.int64)
    q = np.zeros(TAPS, np.int64)
    values2 = np.zeros(TAPS, np.int64)
    q2 = np.zeros(TAPS, np.int64)
    trial = np.empty(frame, np.int64)
    best_r = np.empty(frame, np.int64)
    acc = np.empty(frame, np.int64)
    scratch = np.empty(frame)
    alt_q = np.zeros(TAPS, np.int64)
    for c in range(n_ch):
        x = rows[c]
        for f in range(n_frames):
            a, b = f * frame, min(n, (f + 1) * frame)
            m = b - a
            hist = min(a, TAPS)
            window = x[a - hist : b]
            lo, hi, peak = _range(window, hist)
            values[:] = 0
            q[:] = 0
            refit = False
            kind2, shift2 = 0, parcor.Q_BITS
            if lo == hi:  # constant frame: repeat the previous sample (κ = 1 exactly)
                p, kind, shift = 1, 0, parcor.Q_BITS
                values[0] = np.int64(1) << (parcor.MIN_RES - 1)
                q[0] = np.int64(1) << parcor.Q_BITS
            elif max_order > 0:
                values2[:] = 0
                q2[:] = 0
                p, kind, shift, kind2, shift2, refit = _least_squares_choice(window, hist, max_order, reflection, irls,
                                                                            flat, starts, values, q, values2, q2)
            else:
                p, kind, shift = 0, 0, parcor.Q_BITS
            if not _fits(q, p, peak):
                p, kind, shift, refit = 0, 0, parcor.Q_BITS, False
                values[:] = 0
                q[:] = 0
            _frame_residual(x, a, b, q, p, shift, best_r, acc)
            if refit and _fits(q2, p, peak):  # the reweighted refit, when it codes smaller
                _frame_residual(x, a, b, q2, p, shift2, trial, acc)
                if _log_cost(trial, m, scratch) < _log_cost(best_r, m, scratch):
                    kind, shift = kind2, shift2
                    values[:] = values2
                    q[:] = q2
                    best_r[:m] = trial[:m]
            # do the alternatives deserve a look? stage 2: always (its least squares can overfit
            # an almost white input); stage 1: when many samples repeat exactly
            if alternatives and m > 16 and p > 0 and (always or not polynomial
                                                      or _repeats(x, a, b) * ALTERNATIVE_SHARE >= m):
                best = _log_cost(best_r, m, scratch)
                for order in range(0 if not polynomial else 1, 4 if polynomial else 1):
                    # fixed predictors: κ = +1, −1, +1 … at resolution 4 (order 0: none)
                    alt_q[:] = 0
                    if order >= 1:
                        alt_q[0] = 1
                    if order >= 2:
                        alt_q[0], alt_q[1] = 2, -1
                    if order >= 3:
                        alt_q[0], alt_q[1], alt_q[2] = 3, -3, 1
                    for k in range(order):
                        alt_q[k] <<= parcor.Q_BITS
                    if not _fits(alt_q, order, peak):
                        continue
                    _frame_residual(x, a, b, alt_q, order, parcor.Q_BITS, trial, acc)
                    cost = _log_cost(trial, m, scratch)
                    if cost < best:
                        best = cost
                        best_r[:m] = trial[:m]
                        p, kind, shift = order, 0, parcor.Q_BITS
                        q[:] = alt_q
                        values[:] = 0
                        for k in range(order):
                            values[k] = (np.int64(1) << (parcor.MIN_RES - 1)) * (1 if k % 2 == 0 else -1)
            res_out[c, a:b] = best_r[:m]
            orders_out[c, f] = p
            kinds_out[c, f] = kind
            shifts_out[c, f] = shift
            values_out[c, f, :] = values
            coefs_out[c, f, :] = 0
            for k in range(p):
                coefs_out[c, f, TAPS - 1 - k] = q[k]


@numba.njit(cache=True, nogil=True)
def offset_and_step(x, y):
    """x = y·step + offset with y centred on 0 and step the largest common step of x (as
    lpc_codec.remove_offset_and_step; the gcd stops as soon as it reaches 1). Fills y."""
    n = x.size
    if n == 0:
        return np.int64(0), np.int64(1)
    x0 = x[0]
    g = np.int64(0)
    for t in range(n):
        d = abs(x[t] - x0)
        while d:
            g, d = d, g % d
        if g == 1:
            break
    step = g if g > 0 else np.int64(1)
    total = 0.0
    for t in range(n):
        y[t] = (x[t] - x0) // step
        total += y[t]
    centre = np.int64(np.rint(total / n))
    for t in range(n):
        y[t] -= centre
    return x0 + centre * step, step


def analyse(rows: np.ndarray, frame: int, max_order: int, polynomial: bool, reflection: bool = True,
            alternatives: bool = True, irls: int = 0, always: bool = False):
    """Python entry: (residuals, values, orders, kinds, coefs, shifts) of one stage."""
    n_ch, n = rows.shape
    n_frames = -(-n // frame)
    res = np.empty((n_ch, n), np.int64)
    values = np.zeros((n_ch, n_frames, TAPS), np.int64)
    orders = np.zeros((n_ch, n_frames), np.int64)
    kinds = np.zeros((n_ch, n_frames), np.int64)
    coefs = np.zeros((n_ch, n_frames, TAPS), np.int64)
    shifts = np.zeros((n_ch, n_frames), np.int64)
    flat, starts = parcor.all_kappa_tables()
    analyse_stage(np.ascontiguousarray(rows, np.int64), frame, max_order, polynomial, reflection, alternatives,
                  irls, always, flat, starts, res, values, orders, kinds, coefs, shifts)
    return res, values, orders, kinds, coefs, shifts
