"""The cross-channel stage of lpc-v4: lpc-v3's frame-bounded stage (FORMAT.md §8.3–8.4), faster.

Encoder: the same choices as :func:`cross_channel.choose` with ``framed=True``: per frame,
each channel takes the ``n_refs`` earlier channels whose residuals correlate most with its
own, fits taps at lags −1, 0, +1 by (re)weighted least squares, and keeps them when the
estimated saving beats their cost; one numba call per block, no BLAS, no Python per frame.
Both sides predict with :func:`predict_frame`: the integers of lpc-v3's prediction,
accumulated tap by tap over slices so that it vectorizes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .cross_channel import COEF_LIMIT, LAGS, NO_REF, SHIFT

TAP_COST_BITS = 14.0
_LAGS = np.asarray(LAGS, np.int64)


@numba.njit(cache=True, nogil=True)
def predict_frame(residuals, refs, taps, a, b, out):
    """out[t − a] = (2^(SHIFT−1) + Σ_{j, lag} tap·r_j[t + lag]) >> SHIFT for t in [a, b), with
    r_j[t + lag] = 0 outside [a, b); taps in reference-major, lag order (int64, wrapping)."""
    m = b - a
    out[:m] = np.int64(1) << (SHIFT - 1)
    k = 0
    for j in refs:
        row = residuals[j]
        for lag in _LAGS:
            tap = taps[k]
            k += 1
            lo, hi = max(a, a - lag), min(b, b - lag)
            if hi <= lo:
                continue
            src = row[lo + lag : hi + lag]
            dst = out[lo - a : hi - a]
            for t in range(hi - lo):
                dst[t] += tap * src[t]
    for t in range(m):
        out[t] >>= SHIFT


@numba.njit(cache=True, nogil=True)
def restore_frames(errors, refs, taps, n_taps, frame, length, wanted):
    """Decoder, in place: errors → residuals over samples [0, length), frame by frame,
    channel by channel, for the channels marked in ``wanted`` (their references first).
    refs (n_ch, n_frames, slots) int64 NO_REF-padded and already checked; taps: each
    frame's row, end to end; n_taps: taps per frame. Returns 0, or 1 + frame of a tap count
    that does not match its references."""
    n_ch = errors.shape[0]
    pred = np.empty(frame, np.int64)
    pos = 0
    for f in range(refs.shape[1]):
        a, b = f * frame, min(length, (f + 1) * frame)
        if a >= b:
            break
        k = pos
        for c in range(n_ch):
            used = 0
            for j in refs[c, f]:
                used += j != NO_REF
            if used and wanted[c]:
                predict_frame(errors, refs[c, f, :used], taps[k : k + used * _LAGS.size], a, b, pred)
                row = errors[c, a:b]
                for t in range(b - a):
                    row[t] += pred[t]
            k += used * _LAGS.size
        if k - pos != n_taps[f]:
            return f + 1
        pos = k
    return 0


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot(u, v):
    acc = 0.0
    for t in range(u.size):
        acc += u[t] * v[t]
    return acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot3(w, u, v):
    acc = 0.0
    for t in range(u.size):
        acc += w[t] * u[t] * v[t]
    return acc


@numba.njit(cache=True, nogil=True)
def _lagged_dot(w, u, v, a, b, lu, lv, weighted):
    # Σ_{t∈[a,b)} w[t−a]·u[t+lu]·v[t+lv], terms whose index leaves [a, b) being zero
    lo = max(a, a - lu, a - lv)
    hi = min(b, b - lu, b - lv)
    if hi <= lo:
        return 0.0
    us, vs = u[lo + lu : hi + lu], v[lo + lv : hi + lv]
    if weighted:
        return _dot3(w[lo - a : hi - a], us, vs)
    return _dot(us, vs)


@numba.njit(cache=True, nogil=True)
def _solve(gram, rhs):
    # Cholesky solve with a small ridge; returns (fit, ok)
    k = rhs.size
    trace = 0.0
    for i in range(k):
        trace += gram[i, i]
    ridge = 1e-9 * trace + 1e-12
    L = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            acc = gram[i, j] + (ridge if i == j else 0.0)
            for m in range(j):
                acc -= L[i, m] * L[j, m]
            if i == j:
                if not acc > 0.0:
                    return rhs, False
                L[i, i] = math.sqrt(acc)
            else:
                L[i, j] = acc / L[j, j]
    z = np.empty(k)
    for i in range(k):
        acc = rhs[i]
        for m in range(i):
            acc -= L[i, m] * z[m]
        z[i] = acc / L[i, i]
    fit = np.empty(k)
    for i in range(k - 1, -1, -1):
        acc = z[i]
        for m in range(i + 1, k):
            acc -= L[m, i] * fit[m]
        fit[i] = acc / L[i, i]
    return fit, True


@numba.njit(cache=True, nogil=True, fastmath=True)
def _coded_bits(e, segment):
    # rough coded size of residuals under segment-adaptive Laplace models (bits)
    n = e.size
    bits = 0.0
    for s0 in range(0, n, segment):
        s1 = min(n, s0 + segment)
        acc = 0.0
        for t in range(s0, s1):
            acc += abs(float(e[t]))
        bits += (s1 - s0) * math.log2(acc / (s1 - s0) + 0.7)
    return bits


@numba.njit(cache=True, nogil=True)
def choose_kernel(residuals, frame, n_refs, irls_steps, errors, refs_out, taps_out):
    """errors (= residuals on entry) get the cross-channel errors; refs_out (n_ch, n_frames,
    n_refs) int64 NO_REF-padded; taps_out (n_ch, n_frames, 3·n_refs) int64."""
    n_ch, n = residuals.shape
    n_frames = refs_out.shape[1]
    n_lags = _LAGS.size
    rf = np.empty((n_ch, min(frame, n)))
    pred_i = np.empty(frame, np.int64)
    for f in range(n_frames):
        a, b = f * frame, min(n, (f + 1) * frame)
        m = b - a
        if m < 16:  # too short to fit taps worth their cost
            continue
        for c in range(n_ch):
            for t in range(m):
                rf[c, t] = residuals[c, a + t]
        gram = np.zeros((n_ch, n_ch))  # only ranks references: every 4th sample will do
        for c in range(n_ch):
            for j in range(c + 1):
                gram[c, j] = _dot(rf[c, :m:4], rf[j, :m:4])
        peak = np.zeros(n_ch)
        for c in range(n_ch):
            for t in range(max(0, a - 1), min(n, b + 1)):
                peak[c] = max(peak[c], abs(float(residuals[c, t])))
        w = np.ones(m)
        # unweighted products of reference pairs at lag pairs, shared by the channels that use them
        pair = np.full((n_ch, n_ch, n_lags, n_lags), np.nan)
        for c in range(1, n_ch):
            if gram[c, c] == 0.0:
                continue
            # the n_refs earlier channels of largest |correlation| (stable order), ascending
            score = np.empty(c)
            for j in range(c):
                den = math.sqrt(gram[c, c] * gram[j, j])
                score[j] = abs(gram[c, j]) / den if den > 0.0 else 0.0
            order = np.argsort(-score, kind="mergesort")
            n_use = min(n_refs, c)
            cand = np.sort(order[:n_use])
            k = n_use * n_lags
            y = rf[c, :m]
            w[:] = 1.0
            fit = np.zeros(k)
            ok = False
            for it in range(irls_steps + 1):
                g = np.empty((k, k))
                rhs = np.empty(k)
                weighted = it > 0
                for i in range(k):
                    ji, li = cand[i // n_lags], _LAGS[i % n_lags]
                    rhs[i] = _lagged_dot(w, rf[ji], y, 0, m, li, 0, weighted)
                    for i2 in range(i + 1):
                        j2, l2 = cand[i2 // n_lags], _LAGS[i2 % n_lags]
                        if weighted:
                            g[i, i2] = _lagged_dot(w, rf[ji], rf[j2], 0, m, li, l2, True)
                        else:
                            cached = pair[ji, j2, i % n_lags, i2 % n_lags]
                            if np.isnan(cached):
                                cached = _lagged_dot(w, rf[ji], rf[j2], 0, m, li, l2, False)
                                pair[ji, j2, i % n_lags, i2 % n_lags] = cached
                            g[i, i2] = cached
                        g[i2, i] = g[i, i2]
                fit, ok = _solve(g, rhs)
                if not ok:
                    break
                if it < irls_steps:
                    pred = np.zeros(m)
                    for i in range(k):
                        ji, li = cand[i // n_lags], _LAGS[i % n_lags]
                        lo, hi = max(0, -li), min(m, m - li)
                        src = rf[ji, lo + li : hi + li]
                        fi = fit[i]
                        for t in range(hi - lo):
                            pred[lo + t] += fi * src[t]
                    mean = 0.0
                    for t in range(m):
                        pred[t] = abs(y[t] - pred[t])
                        mean += pred[t]
                    mean = 0.5 * mean / m + 1e-9
                    for t in range(m):
                        w[t] = 1.0 / max(pred[t], mean)
            if not ok:
                continue
            q = np.empty(k, np.int64)
            qsum = 1.0
            for i in range(k):
                v = math.floor(fit[i] * (1 << SHIFT) + 0.5)
                v = min(max(v, -float(COEF_LIMIT)), float(COEF_LIMIT))
                q[i] = np.int64(v)
                qsum += abs(v)
            big = 0.0
            for j in cand:
                big = max(big, peak[j])
            if qsum * (big + 1.0) >= 2.0**61:
                continue
            predict_frame(residuals, cand, q, a, b, pred_i)
            e = residuals[c, a:b] - pred_i[:m]
            gain = _coded_bits(residuals[c, a:b], 256) - _coded_bits(e, 256)
            if gain > k * TAP_COST_BITS + 8:
                errors[c, a:b] = e
                refs_out[c, f, :n_use] = cand
                taps_out[c, f, :k] = q


def choose(residuals: np.ndarray, frame: int, n_refs: int, irls_steps: int = 1):
    """(errors, refs int64 (n_ch, n_frames, n_refs) NO_REF-padded, taps (n_ch, n_frames, 3·n_refs))."""
    residuals = np.ascontiguousarray(residuals, np.int64)
    n_ch, n = residuals.shape
    n_frames = -(-n // frame)
    errors = residuals.copy()
    refs = np.full((n_ch, n_frames, n_refs), NO_REF, np.int64)
    taps = np.zeros((n_ch, n_frames, n_refs * len(LAGS)), np.int64)
    if n_refs and n_ch > 1 and n:
        choose_kernel(residuals, frame, n_refs, irls_steps, errors, refs, taps)
    return errors, refs, taps
