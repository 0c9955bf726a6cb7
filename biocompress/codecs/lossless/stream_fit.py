"""Encoder-side estimation for the streaming codec (lpc-s1): what parameters to use next.

Nothing here is part of the bitstream: an encoder may choose parameters any way it
likes. This one keeps a sliding window of each channel's recent codes, LPC residuals
and coded errors, re-fits predictors, cross-channel taps and entropy settings on it,
and tells the encoder how many bits each change would save over a horizon, so that
parameters are sent only when that pays. Per-channel work runs in numba, with no BLAS.
"""

from __future__ import annotations

import numba
import numpy as np

from . import lpc
from . import stream_entropy as se
from . import stream_predict as sp
from .stream_predict import XSHIFT, H

ORDERS = np.asarray(lpc.ORDERS, np.int64)
MIN_PRECISION, MAX_PRECISION = lpc.MIN_PRECISION, lpc.MAX_PRECISION
_HEADROOM = 2.0**62
TAP_LIMIT = 1 << 20
_FASTMATH = {"reassoc", "contract"}  # encoder estimates only: summation order is free


class Window:
    """The last ``size`` samples of each channel (int64), appended block by block."""

    def __init__(self, n_ch: int, size: int):
        self.size = size
        self.data = np.zeros((n_ch, 2 * size), np.int64)
        self.fill = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if n >= self.size:
            self.data[:, : self.size] = block[:, n - self.size :]
            self.fill = self.size
            return
        if self.fill + n > self.data.shape[1]:
            keep = self.size - n
            self.data[:, :keep] = self.data[:, self.fill - keep : self.fill]
            self.fill = keep
        self.data[:, self.fill : self.fill + n] = block
        self.fill += n

    def last(self, n: int | None = None) -> np.ndarray:
        n = min(self.fill, self.size if n is None else n)
        return self.data[:, self.fill - n : self.fill]

    def clear(self) -> None:
        self.fill = 0


# --- linear prediction ---------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _cholesky(a, n):
    low = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            if i == j:
                if s <= 0.0:
                    return low, False
                low[i, i] = np.sqrt(s)
            else:
                low[i, j] = s / low[j, j]
    return low, True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def lagged_covariance(x, top):
    """(top+1)² covariance of [x[n], x[n−1], …, x[n−top]] over the window, mean removed."""
    n = x.size
    y = np.empty(n)
    mean = 0.0
    for i in range(n):
        mean += x[i]
    mean /= max(n, 1)
    for i in range(n):
        y[i] = x[i] - mean
    c = np.empty((top + 1, top + 1))
    for j in range(top + 1):
        acc = 0.0
        for t in range(top, n):
            acc += y[t] * y[t - j]
        c[0, j] = acc
    for i in range(1, top + 1):
        for j in range(i, top + 1):
            c[i, j] = c[i - 1, j - 1] + y[top - i] * y[top - j] - y[n - i] * y[n - j]
    for i in range(top + 1):
        for j in range(i):
            c[i, j] = c[j, i]
    return c


@numba.njit(cache=True, nogil=True)
def _quantize(coef, p, max_abs, precision):
    q = np.zeros(H, np.int64)
    shift = precision
    while shift > 0:
        total = 1.0
        for k in range(p):
            q[k] = np.int64(np.rint(coef[k] * float(np.int64(1) << shift)))
            total += abs(float(q[k]))
        if total * (max_abs + 1.0) < _HEADROOM:
            return q, shift
        shift -= 1
    q[:] = 0
    q[0] = 1
    return q, 0


@numba.njit(cache=True, nogil=True)
def out_of_sample(m, p):
    """Akaike's final prediction error factor: how much larger than on the m samples it was
    fitted on a p-parameter least-squares predictor's error is on new samples."""
    return (m + p) / max(m - p, 1.0)


@numba.njit(cache=True, nogil=True)
def reflection_coefficients(a, p):
    """Reflection coefficients of the predictor x̂[n] = Σ a[k]·x[n−1−k] (step-down), and
    whether it is stable (every |k| < 1)."""
    alpha = np.empty(p)
    for i in range(p):
        alpha[i] = -a[i]
    ks = np.zeros(p)
    for m in range(p, 0, -1):
        km = alpha[m - 1]
        ks[m - 1] = km
        if not abs(km) < 1.0:
            return ks, False
        scale = 1.0 / (1.0 - km * km)
        new = np.empty(m - 1)
        for i in range(m - 1):
            new[i] = (alpha[i] - km * alpha[m - 2 - i]) * scale
        for i in range(m - 1):
            alpha[i] = new[i]
    return ks, True


@numba.njit(cache=True, nogil=True)
def _companded(k):
    # v in [−1, 1] with v·(3 − v²)/2 = k (the inverse of the decoder's companding)
    lo, hi = -1.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid * (3.0 - mid * mid) * 0.5 < k:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@numba.njit(cache=True, nogil=True)
def _choose_parcor(ks, p, cov, top, m, horizon, cost, offset, Ks, ks_tab):
    """(precision, coded values, energy) of the best-coded quantization of reflection
    coefficients ``ks`` (cost = estimated residual bits over the horizon + the values' bits)."""
    v = np.empty(p)
    for i in range(p):
        v[i] = _companded(ks[i])
    best_total, best_prec, best_e = np.inf, 0, 0.0
    best_row = np.zeros(H, np.int64)
    row = np.zeros(H, np.int64)
    q = np.zeros(H, np.int64)
    c0 = np.zeros(1, np.int64)
    warm = np.zeros((1, 1), np.int64)
    for prec in range(4, sp.MAX_PRECISION + 1):
        limit = np.int64(1) << prec
        for i in range(p):
            row[i] = min(max(np.int64(np.rint(v[i] * limit)), -limit), limit)
        shift = sp.step_up(sp.PARCOR, p, prec, row, 0, q, c0, warm, False)
        energy = prediction_energy(cov, top, p, shift, q)
        if energy <= 0:
            continue
        bits = 0.0
        for i in range(p):
            bits += np.log2(abs(float(row[i])) + 1.0) + 1.5
        total = 0.5 * horizon * np.log2(energy / m) + bits
        if total < best_total:
            best_total, best_prec, best_e = total, prec, energy
            best_row[:] = row
        elif prec >= best_prec + 2:
            break
    return best_prec, best_row, best_e


@numba.njit(cache=True, nogil=True)
def fit_predictors(x, max_order, horizon, coef_bits, cost, offset, Ks, ks_tab):
    """Per channel of the window ``x`` (n_ch, W): the predictor minimising the estimated
    coded size over ``horizon`` samples plus its coefficients. Returns (forms, orders,
    precisions, coefs (n_ch, H), covariances (n_ch, top+1, top+1), top)."""
    n_ch, w = x.shape
    top = 0
    for p in ORDERS:
        if p <= max_order and p < w // 4:
            top = p
    forms = np.zeros(n_ch, np.int64)
    orders = np.ones(n_ch, np.int64)
    precisions = np.zeros(n_ch, np.int64)
    coefs = np.zeros((n_ch, H), np.int64)
    coefs[:, 0] = 1
    covs = np.zeros((n_ch, top + 1, top + 1))
    if top == 0:
        return forms, orders, precisions, coefs, covs, top
    m = float(w - top)
    for c in range(n_ch):
        xc = x[c].astype(np.float64)
        lo, hi = xc.min(), xc.max()
        if hi == lo:
            continue
        cov = lagged_covariance(xc, top)
        covs[c] = cov
        ridge = 1e-10 * np.trace(cov) / (top + 1) + 1e-12
        a = cov[1:, 1:].copy()
        for i in range(top):
            a[i, i] += ridge
        low, ok = _cholesky(a, top)
        if not ok:
            continue
        z = np.empty(top)
        for i in range(top):
            s = cov[i + 1, 0]
            for k in range(i):
                s -= low[i, k] * z[k]
            z[i] = s / low[i, i]
        best_p, best_cost, energy_p = 0, np.inf, cov[0, 0]
        acc = cov[0, 0]
        for p in range(1, top + 1):
            acc -= z[p - 1] * z[p - 1]
            is_order = False
            for o in ORDERS:
                if o == p:
                    is_order = True
            if not is_order:
                continue
            energy = max(acc, 1e-3 * m) * out_of_sample(m, p)
            cost_p = 0.5 * horizon * np.log2(energy / m) + p * coef_bits
            if cost_p < best_cost:
                best_p, best_cost, energy_p = p, cost_p, energy
        p = best_p
        coef = np.zeros(p)
        for i in range(p - 1, -1, -1):
            s = z[i]
            for k in range(i + 1, p):
                s -= low[k, i] * coef[k]
            coef[i] = s / low[i, i]
        finite = True
        for k in range(p):
            if not np.isfinite(coef[k]):
                finite = False
        if not finite:
            continue
        refl, stable = reflection_coefficients(coef, p)
        if stable:
            prec, row, energy = _choose_parcor(refl, p, cov, top, m, horizon, cost, offset, Ks, ks_tab)
            if prec > 0:
                forms[c], orders[c], precisions[c], coefs[c] = sp.PARCOR, p, prec, row
                continue
        gain_bits = 0.5 * np.log2(max(cov[0, 0], 1e-300) / energy_p)
        precision = min(max(int(np.ceil(gain_bits)) + 4, MIN_PRECISION), MAX_PRECISION)
        q, shift = _quantize(coef, p, max(abs(lo), abs(hi)), precision)
        forms[c], orders[c], precisions[c], coefs[c] = sp.DIRECT, p, shift, q
    return forms, orders, precisions, coefs, covs, top


@numba.njit(cache=True, nogil=True)
def prediction_energy(cov, top, order, shift, q):
    """Residual energy over the window of the quantized predictor (order, shift, q), from
    the window's covariance (−1 when the order exceeds what the covariance covers)."""
    if order > top:
        return -1.0
    a = np.zeros(top + 1)
    a[0] = 1.0
    scale = 1.0 / float(np.int64(1) << shift)
    for k in range(order):
        a[k + 1] = -float(q[k]) * scale
    total = 0.0
    for i in range(top + 1):
        if a[i] == 0.0:
            continue
        for j in range(top + 1):
            total += a[i] * cov[i, j] * a[j]
    return total


@numba.njit(cache=True, nogil=True)
def parameter_energy(cov, top, form, order, precision, coef):
    """prediction_energy of the predictor the coded parameters describe."""
    q = np.zeros(H, np.int64)
    c0 = np.zeros(1, np.int64)
    warm = np.zeros((1, 1), np.int64)
    shift = sp.step_up(form, order, precision, coef, 0, q, c0, warm, False)
    return prediction_energy(cov, top, order, shift, q)


# --- cross-channel stage ---------------------------------------------------------------
@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _dot(a, b, lag):
    # Σ_t a[t]·b[t + lag] over the t where both exist
    n = a.size
    lo, hi = max(0, -lag), min(n, n - lag)
    acc = 0.0
    for t in range(lo, hi):
        acc += a[t] * b[t + lag]
    return acc


@numba.njit(cache=True, nogil=True)
def _solve_spd(gram, rhs, d):
    tr = 0.0
    for i in range(d):
        tr += gram[i, i]
    for i in range(d):
        gram[i, i] += 1e-9 * tr + 1e-12
    low, ok = _cholesky(gram, d)
    fit = np.zeros(d)
    if not ok:
        return fit, False
    z = np.empty(d)
    for i in range(d):
        s = rhs[i]
        for k in range(i):
            s -= low[i, k] * z[k]
        z[i] = s / low[i, i]
    for i in range(d - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, d):
            s -= low[k, i] * fit[k]
        fit[i] = s / low[i, i]
    return fit, True


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tail_bits(rf, c, refs, nref, taps, w, recent):
    # laplace_bits of channel c's errors with these taps over the last ``recent`` samples
    total = 0.0
    for t in range(w - recent, w):
        acc = float(1 << (XSHIFT - 1))
        for a in range(nref):
            j = refs[a]
            before = rf[j, t - 1] if t > 0 else 0.0
            after = rf[j, t + 1] if t + 1 < w else 0.0
            acc += taps[a, 0] * before + taps[a, 1] * rf[j, t] + taps[a, 2] * after
        total += abs(rf[c, t] - np.floor(acc / (1 << XSHIFT)))
    return recent * np.log2(total / max(recent, 1) + 0.7)


@numba.njit(cache=True, nogil=True)
def fit_cross(r, n_refs, prev_nref, prev_refs, prev_taps, recent):
    """Per channel c ≥ 1 of the residual window r (n_ch, W): the ``n_refs`` earlier channels
    most correlated with it, least-squares taps for lags −1, 0, +1 (quantized), and the
    estimated bits over the last ``recent`` samples with the new taps, with the current ones
    and with none. Returns (nref, refs, taps, bits_new, bits_prev, bits_none)."""
    n_ch, w = r.shape
    width = prev_refs.shape[1]
    nref = np.zeros(n_ch, np.int64)
    refs = np.zeros((n_ch, width), np.int64)
    taps = np.zeros((n_ch, width, 3), np.int64)
    bits_new = np.zeros(n_ch)
    bits_prev = np.zeros(n_ch)
    bits_none = np.zeros(n_ch)
    rf = np.empty((n_ch, w))
    norm = np.zeros(n_ch)
    for c in range(n_ch):
        mean = 0.0
        for t in range(w):
            mean += float(r[c, t])
        mean /= max(w, 1)
        for t in range(w):
            rf[c, t] = float(r[c, t]) - mean
        norm[c] = _dot(rf[c], rf[c], 0)
    no_refs = np.zeros(width, np.int64)
    no_taps = np.zeros((width, 3), np.int64)
    lagged = np.full((n_ch, n_ch, 5), np.nan)  # C_ab(lag), lags −2…2, computed when first needed
    for c in range(n_ch):
        bits_none[c] = _tail_bits(rf, c, no_refs, 0, no_taps, w, recent)
        bits_prev[c] = _tail_bits(rf, c, prev_refs[c], prev_nref[c], prev_taps[c], w, recent) \
            if prev_nref[c] else bits_none[c]
        k = min(n_refs, c)
        bits_new[c] = bits_none[c]
        if k == 0 or norm[c] == 0.0 or w < 16:
            continue
        corr = np.zeros(c)
        for j in range(c):
            if norm[j] > 0.0:
                corr[j] = abs(_dot(rf[c], rf[j], 0)) / np.sqrt(norm[c] * norm[j])
        cand = np.sort(np.argsort(-corr)[:k])
        d = 3 * k
        gram = np.zeros((d, d))
        rhs = np.zeros(d)
        for a in range(k):
            for la in range(3):
                rhs[3 * a + la] = _dot(rf[c], rf[cand[a]], la - 1)
            for b in range(a, k):
                # Σ_t r_a[t + la − 1]·r_b[t + lb − 1] ≈ C_ab(lb − la) (window edges aside)
                ja, jb = cand[a], cand[b]
                for lag in range(-2, 3):
                    if ja == jb and lag < 0:
                        continue
                    if np.isnan(lagged[ja, jb, lag + 2]):
                        lagged[ja, jb, lag + 2] = _dot(rf[ja], rf[jb], lag)
                        lagged[jb, ja, 2 - lag] = lagged[ja, jb, lag + 2]
                for la in range(3):
                    for lb in range(3):
                        v = lagged[ja, jb, lb - la + 2]
                        gram[3 * a + la, 3 * b + lb] = v
                        gram[3 * b + lb, 3 * a + la] = v
        fit, ok = _solve_spd(gram, rhs, d)
        if not ok:
            continue
        for a in range(k):
            refs[c, a] = cand[a]
            for lag in range(3):
                v = np.rint(fit[3 * a + lag] * (1 << XSHIFT))
                taps[c, a, lag] = np.int64(min(max(v, -TAP_LIMIT), TAP_LIMIT))
        nref[c] = k
        bits_new[c] = _tail_bits(rf, c, refs[c], k, taps[c], w, recent) + 0.5 * recent * np.log2(out_of_sample(w, d))
    return nref, refs, taps, bits_new, bits_prev, bits_none


# --- entropy settings -----------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def adaptive_bits(e, m0, bias, shape, rate, cost, offset, Ks, ks):
    """Bits of coding e with the backward-adaptive scale (start mean m0) and these settings."""
    m = m0
    bits = 0.0
    for t in range(e.size):
        key = se.class_of(m, bias) * se.N_SHAPES + shape
        K, k, base = Ks[key], ks[key], offset[key]
        hi = e[t] >> k
        if hi > K or hi < -K:
            bits += cost[base + 2 * K + 1] + k + 40.0
        else:
            bits += cost[base + hi + K] + k
        m = se.update_mean(m, e[t], rate)
    return bits


@numba.njit(cache=True, nogil=True)
def fit_entropy(e, bias, shape, rate, bias_min, bias_max, rate_min, rate_max, cost, offset, Ks, ks):
    """Per channel of the error window e (n_ch, W): the (bias, shape, rate) near the current
    ones that code it in fewest bits; returns them with the bits saved over the current."""
    n_ch, w = e.shape
    nb, ns, nr = bias.copy(), shape.copy(), rate.copy()
    saved = np.zeros(n_ch)
    for c in range(n_ch):
        row = e[c]
        head = min(w, 32)
        s = 0
        for t in range(head):
            a = row[t] if row[t] >= 0 else -row[t]
            s += min(a, se.MEAN_CAP)
        m0 = (s << se.MEAN_FRAC_BITS) // max(head, 1)
        current = adaptive_bits(row, m0, bias[c], shape[c], rate[c], cost, offset, Ks, ks)
        best = current
        for rt in range(max(rate_min, rate[c] - 1), min(rate_max, rate[c] + 1) + 1):
            for b in range(max(bias_min, bias[c] - 1), min(bias_max, bias[c] + 1) + 1):
                for sh in range(se.N_SHAPES):
                    if rt == rate[c] and b == bias[c] and sh == shape[c]:
                        continue
                    if rt != rate[c] and b != bias[c]:
                        continue
                    bits = adaptive_bits(row, m0, b, sh, rt, cost, offset, Ks, ks)
                    if bits < best:
                        best, nb[c], ns[c], nr[c] = bits, b, sh, rt
        saved[c] = current - best
    return nb, ns, nr, saved
