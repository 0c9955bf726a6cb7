"""Prediction kernels of the streaming codec (lpc-s1), over a block and the history a
chain carries into it.

Per channel, the lattice values ``y`` of a block follow the ``H`` samples before it
(``hist``, right-aligned). A sample at chain position ``g`` (samples since the key
block) is predicted as in lpc-v1 (§8.2 of FORMAT.md)::

    pred = y[g−1] if 0 < g < p, 0 if g = 0          (warm-up, only after a key block)
    pred = (2**(shift−1) + Σ_k q[k]·y[g−1−k]) >> shift     (g ≥ p)

and the LPC residual ``r = y − pred`` is then predicted from earlier channels' residuals
(lags −1, 0, +1), as in lpc-v3's cross-channel stage: the residual at lag −1 of the
block's first sample is the last one of the previous block (0 after a key block), at
lag +1 of its last sample 0. All arithmetic is wrapping int64, so encoder and decoder
agree whatever the values (a float64 path is taken where every partial sum is an
integer below 2**53, which gives the same integers).

The kernels trust their inputs: the codec validates every order, shift and reference
before calling them (numba does no bounds checks).
"""

from __future__ import annotations

import numba
import numpy as np

H = 32  # history samples a chain carries per channel (= the highest order)
MAX_REFS = 7
XSHIFT = 12  # fractional bits of the cross-channel taps
_FLOAT_EXACT = 4.0e15
_FASTMATH = {"reassoc", "contract"}


PARCOR_SHIFT = 24  # fractional bits of reflection coefficients and the predictors built from them
MAX_PRECISION = 20  # most fractional bits of a coded reflection coefficient
DIRECT, PARCOR = 0, 1


@numba.njit(cache=True, nogil=True)
def reflection_q24(u, precision):
    """Reflection coefficient (24 fractional bits) of the coded value u, |u| ≤ 2**precision:
    g(v) = v·(3 − v²)/2 at v = u / 2**precision (fine steps near ±1, like an arcsine)."""
    num = u * (3 * (np.int64(1) << (2 * precision)) - u * u)
    s = 3 * precision + 1 - PARCOR_SHIFT
    if s > 0:
        return (num + (np.int64(1) << (s - 1))) >> s
    return num << (-s)


@numba.njit(cache=True, nogil=True)
def step_up(form, order, precision, coef, centre, q, c0, warm, with_warm):
    """The integer predictor of one channel from its coded parameters: q (direct-form
    coefficients, ``shift`` fractional bits), c0 (the constant term that centres the
    prediction on ``centre``), and for PARCOR with ``with_warm`` the nested predictors
    of orders 1…p−1 (warm[g, :g], for the first samples after a key block). Returns shift."""
    p = order
    for k in range(q.size):
        q[k] = 0
    if form == DIRECT:
        for k in range(p):
            q[k] = coef[k]
        shift = precision
    else:
        shift = PARCOR_SHIFT
        alpha = np.zeros(p + 1, np.int64)
        prev = np.zeros(p + 1, np.int64)
        for m in range(p):
            km = reflection_q24(coef[m], precision)
            for i in range(m):
                prev[i] = alpha[i]
            for i in range(m):
                alpha[i] = prev[i] + ((km * prev[m - 1 - i] + (np.int64(1) << (PARCOR_SHIFT - 1))) >> PARCOR_SHIFT)
            alpha[m] = km
            if with_warm and m + 1 < p:
                total = np.int64(0)
                for i in range(m + 1):
                    warm[m + 1, i] = -alpha[i]
                    total += alpha[i]
                warm[m + 1, H - 1] = centre * ((np.int64(1) << shift) + total)  # c0 of order m + 1
        for k in range(p):
            q[k] = -alpha[k]
    total = np.int64(0)
    for k in range(p):
        total += q[k]
    c0[0] = centre * ((np.int64(1) << shift) - total) if p > 0 else centre
    return shift


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _predict_run(z, zf, lo, i0, n, g0, form, p, shift, q, c0, centre, warm, synthesize, r, y_out):
    # one channel: z[i0:i0+n] are the block's samples (written here when synthesizing), z[lo:i0]
    # its history; g0 = chain position of the block's first sample
    half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
    scale = 1.0 / float(np.int64(1) << shift)
    qsum = 0.0
    for k in range(p):
        qsum += abs(float(q[k]))
    big = 0.0
    end = i0 if synthesize else i0 + n
    for i in range(lo, end):
        zf[i] = float(z[i])
        big = max(big, abs(zf[i]))
    fixed = abs(float(c0)) + float(half)
    for i in range(n):
        g = g0 + i
        j = i0 + i
        if g < p:  # the first samples of a chain: no history yet
            if g == 0:
                pred = centre
            elif form == DIRECT:
                pred = z[j - 1]
            else:
                acc_w = half + warm[g, H - 1]
                for k in range(g):
                    acc_w += warm[g, k] * z[j - 1 - k]
                pred = acc_w >> shift
        elif fixed + qsum * big < _FLOAT_EXACT:
            acc = float(half) + float(c0)
            for k in range(p):
                acc += float(q[k]) * zf[j - 1 - k]
            pred = np.int64(np.floor(acc * scale))
        else:
            acc_i = half + c0
            for k in range(p):
                acc_i += q[k] * z[j - 1 - k]
            pred = acc_i >> shift
        if synthesize:
            v = r[i] + pred
            z[j] = v
            zf[j] = float(v)
            big = max(big, abs(zf[j]))
            y_out[i] = v
        else:
            r[i] = z[j] - pred


@numba.njit(cache=True, nogil=True)
def derive(form, order, precision, coef, centre, which, pq, pshift, pc0):
    """The integer predictors (pq, pshift, pc0) of channels ``which`` from their parameters."""
    q = np.zeros(H, np.int64)
    c0 = np.zeros(1, np.int64)
    warm = np.zeros((1, 1), np.int64)
    for c in which:
        pshift[c] = step_up(form[c], order[c], precision[c], coef[c], centre[c], q, c0, warm, False)
        pq[c] = q
        pc0[c] = c0[0]


@numba.njit(cache=True, nogil=True)
def _run_block(x, hist, since_key, form, order, precision, coef, centre, pq, pshift, pc0, synthesize):
    n_ch, n = x.shape
    out = np.empty((n_ch, n), np.int64)
    z = np.empty(H + n, np.int64)
    zf = np.empty(H + n, np.float64)
    q = np.zeros(H, np.int64)
    c0 = np.zeros(1, np.int64)
    warm = np.zeros((H, H), np.int64)
    lo = H - min(since_key, H)
    for c in range(n_ch):
        z[:H] = hist[c]
        if not synthesize:
            z[H:] = x[c]
        if form[c] == PARCOR and since_key < order[c]:  # warm-up: the nested predictors too
            step_up(form[c], order[c], precision[c], coef[c], centre[c], q, c0, warm, True)
        if synthesize:
            _predict_run(z, zf, lo, H, n, since_key, form[c], order[c], pshift[c], pq[c], pc0[c], centre[c], warm,
                         True, x[c], out[c])
        else:
            _predict_run(z, zf, lo, H, n, since_key, form[c], order[c], pshift[c], pq[c], pc0[c], centre[c], warm,
                         False, out[c], out[c])
    return out


def lpc_residuals(y, hist, since_key, s):
    """LPC residuals r (n_ch, n) of the block ``y`` after ``hist`` (n_ch, H); ``s`` holds the
    parameters and derived predictors (a ChainState)."""
    return _run_block(y, hist, since_key, s.form, s.order, s.precision, s.coef, s.centre, s.pq, s.pshift, s.pc0,
                      False)


def lpc_synthesis(r, hist, since_key, s):
    """Inverse of :func:`lpc_residuals`: the block's y from its residuals."""
    return _run_block(r, hist, since_key, s.form, s.order, s.precision, s.coef, s.centre, s.pq, s.pshift, s.pc0,
                      True)


@numba.njit(cache=True, nogil=True, inline="always")
def _cross_prediction(r, r_last, c, t, n, refs, nref, taps):
    acc = np.int64(1) << (XSHIFT - 1)
    for a in range(nref[c]):
        j = refs[c, a]
        before = r[j, t - 1] if t > 0 else r_last[j]
        after = r[j, t + 1] if t + 1 < n else np.int64(0)
        acc += taps[c, a, 0] * before + taps[c, a, 1] * r[j, t] + taps[c, a, 2] * after
    return acc >> XSHIFT


@numba.njit(cache=True, nogil=True)
def cross_errors(r, r_last, refs, nref, taps):
    """Cross-channel errors e (n_ch, n) of the LPC residuals r (references j < c)."""
    n_ch, n = r.shape
    e = r.copy()
    for c in range(n_ch):
        if nref[c] == 0:
            continue
        for t in range(n):
            e[c, t] = r[c, t] - _cross_prediction(r, r_last, c, t, n, refs, nref, taps)
    return e


@numba.njit(cache=True, nogil=True)
def cross_restore(e, r_last, refs, nref, taps):
    """Inverse of :func:`cross_errors`, in channel order."""
    n_ch, n = e.shape
    r = e.copy()
    for c in range(n_ch):
        if nref[c] == 0:
            continue
        for t in range(n):
            r[c, t] = e[c, t] + _cross_prediction(r, r_last, c, t, n, refs, nref, taps)
    return r


LMS_TAPS = 16
LMS_SHIFT = 14  # fractional bits of the sign-sign LMS weights


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _lms_run(src, weights, hist, mu_log, restore):
    # per channel: x = [the 16 last errors, oldest first] + this block's; weights are applied
    # in the same (chronological) order, wl[i] to x[j − 16 + i]
    n_ch, n = src.shape
    out = src.copy()
    x = np.empty(LMS_TAPS + n, np.int64)
    wl = np.empty(LMS_TAPS, np.int64)
    for c in range(n_ch):
        if mu_log[c] == 0:
            continue
        mu = np.int64(1) << (mu_log[c] - 1)
        for i in range(LMS_TAPS):
            wl[i] = weights[c, LMS_TAPS - 1 - i]
            x[i] = hist[c, LMS_TAPS - 1 - i]
        if not restore:
            for t in range(n):
                x[LMS_TAPS + t] = src[c, t]
        for t in range(n):
            j = LMS_TAPS + t
            acc = np.int64(1) << (LMS_SHIFT - 1)
            for i in range(LMS_TAPS):
                acc += wl[i] * x[t + i]
            pred = acc >> LMS_SHIFT
            if restore:
                x[j] = src[c, t] + pred
                out[c, t] = x[j]
                f = src[c, t]
            else:
                f = src[c, t] - pred
                out[c, t] = f
            s = mu if f > 0 else (-mu if f < 0 else np.int64(0))
            for i in range(LMS_TAPS):
                v = x[t + i]
                wl[i] += s * ((v > 0) - (v < 0))
        for i in range(LMS_TAPS):
            weights[c, LMS_TAPS - 1 - i] = wl[i]
            hist[c, LMS_TAPS - 1 - i] = x[n + i]
    return out


def lms_errors(e, weights, hist, mu_log):
    """The last stage (encoder): each channel's cross-channel errors e predicted from its own
    16 previous ones by a sign-sign LMS filter, whose weights (14 fractional bits) adapt every
    sample in coder and decoder alike, so nothing is sent: pred = (2**13 + Σ w[k]·e[t−1−k]) >> 14,
    then w[k] += μ·sign(f)·sign(e[t−1−k]) with f = e[t] − pred, what the entropy coder codes.
    ``weights`` and ``hist`` (n_ch, 16; hist[k] = e[t−1−k]) are updated in place; μ = 2**(mu_log − 1),
    mu_log 0 turns the stage off."""
    return _lms_run(e, weights, hist, mu_log, False)


def lms_restore(f, weights, hist, mu_log):
    """Inverse of :func:`lms_errors`."""
    return _lms_run(f, weights, hist, mu_log, True)
