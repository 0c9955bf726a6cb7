"""Integer LPC synthesis of whole blocks for lpc-v4 (the decoder's recursive filter).

The predictor is lpc-v1's (§8.2): frame ``f`` of a row uses its own coefficients ``q`` (order
``p ≤ 32``) and ``shift``, history crosses frames, and the first ``p`` samples of the block are
warm-up (``pred = x[i−1]``, 0 at ``i = 0``)::

    pred[i] = (Σ_k q[k]·x[i−1−k] + 2^(shift−1)) >> shift

Everything is int64 (wrapping; the encoder keeps (Σ|q| + 1)·(max|x| + 1) < 2^62 so valid
streams never wrap). Coefficients are padded to 32 taps so that the inner product has a fixed
length, which compilers vectorize: the synthesis, recursive in time, then costs a few ns a
sample whatever the order, where a loop over the actual order runs scalar. (Inner loops
index slices from 0 up: numba then omits its negative-index wrap-around, which would
stop the vectorizer.)
"""

from __future__ import annotations

import numba
import numpy as np

TAPS = 32


@numba.njit(cache=True, nogil=True, inline="always")
def _warm_up(x, r, i, p, q, shift, synthesize):
    # one sample before the fixed-length path applies (i < 32): exact lpc-v1 semantics
    if i < p:
        pred = x[i - 1] if i > 0 else np.int64(0)
    else:
        acc = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
        for k in range(p):
            acc += q[TAPS - 1 - k] * x[i - 1 - k]
        pred = acc >> shift
    return r[i] + pred if synthesize else x[i] - pred


@numba.njit(cache=True, nogil=True)
def synthesize_rows(res, coefs, orders, shifts, frame, rows, out):
    """out[c] = the signal whose residual is res[c], for every channel c in ``rows``.

    coefs: int64 (n_ch, n_frames, 32), each frame's q reversed and right-aligned
    (coefs[c, f, 31 − k] = q[k]); orders, shifts: (n_ch, n_frames).
    """
    n = res.shape[1]
    for c in rows:
        x = out[c]
        r = res[c]
        for f in range(orders.shape[1]):
            a, b = f * frame, min(n, (f + 1) * frame)
            if a >= n:
                break
            q = coefs[c, f]
            p, shift = orders[c, f], shifts[c, f]
            half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
            start = min(b, max(a, TAPS))
            for i in range(a, start):
                x[i] = _warm_up(x, r, i, p, q, shift, True)
            for i in range(start, b):
                window = x[i - TAPS : i]
                acc = half
                for k in range(TAPS - 1):
                    acc += q[k] * window[k]
                x[i] = r[i] + ((acc + q[TAPS - 1] * window[TAPS - 1]) >> shift)
