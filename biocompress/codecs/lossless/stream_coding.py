"""The range-coded body of an lpc-s1 block: parameter changes, then residuals.

One kernel codes a whole block (every channel) and one decodes it, so a block of a few
samples costs a few microseconds of Python. The body layout is normative; see FORMAT.md
§8.11. ``decode_body`` validates every parameter as it reads it (status ≠ 0 on anything
a writer cannot have written) so that the prediction kernels can trust them.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from . import stream_entropy as se
from .stream_predict import DIRECT, MAX_REFS, PARCOR, H
from .stream_predict import MAX_PRECISION as MAX_PARCOR_PRECISION

LATTICE, LPC, CROSS, ENTROPY = 1, 2, 4, 8
ALL_GROUPS = LATTICE | LPC | CROSS | ENTROPY
CHANGE_FREQ = 1024  # of 2**16: a continuation block's "this channel's parameters change" flag
BIAS_MIN, BIAS_BITS = -4, 4
RATE_MIN, RATE_BITS = 2, 2
LMS_BITS = 3  # sign-sign LMS step 2**(v − 1), 0 = off
MAX_SHIFT = 62
KEY_BITS = 9  # a coded row's table key (class·3 + shape) < N_KEYS = 420

OK, BAD_MASK, BAD_STEP, BAD_ORDER, BAD_SHIFT, BAD_KEY, BAD_REFS, BAD_SHAPE, BAD_CLASS, BAD_COEF = range(10)
STATUS_TEXT = ("ok", "empty change mask", "lattice step or base out of range", "predictor order above 32",
               "predictor shift above 62", "table key out of range", "cross-channel references invalid",
               "entropy shape out of range", "start class out of range",
               "reflection coefficient out of range")


@lru_cache(maxsize=1)
def coding_tables():
    """(cum, offset, K, k, cost): the integer tables and each symbol's cost in bits."""
    cum, offset, Ks, ks = se.tables()
    cost = np.zeros(cum.size, np.float64)
    freq = np.diff(cum).astype(np.float64)
    cost[:-1] = se.PROB_BITS - np.log2(np.maximum(freq, 1.0))  # meaningful where freq > 0
    return cum, offset, Ks, ks, cost


@numba.njit(cache=True, nogil=True)
def _bit_length(v):
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n


ROW_RATE = 1  # a parameter row's running mean follows each value closely


@numba.njit(cache=True, nogil=True)
def _row_bits(values, count, start, shape, cost, offset, Ks, ks):
    m = start_mean(start)
    bits = 0.0
    for i in range(count):
        key = se.class_of(m, 0) * se.N_SHAPES + shape
        K, k, base = Ks[key], ks[key], offset[key]
        hi = values[i] >> k
        if hi > K or hi < -K:
            bits += cost[base + 2 * K + 1] + k + 7 + 2 * _bit_length(abs(hi))
        else:
            bits += cost[base + hi + K] + k
        m = se.update_mean(m, values[i], ROW_RATE)
    return bits


@numba.njit(cache=True, nogil=True)
def row_key(values, count, cost, offset, Ks, ks):
    """(start key, bits): the start class·3 + shape that codes values[:count] (adaptive
    scale along the row) in fewest bits, and those bits (with the key's own 9)."""
    if count == 0:
        return 0, 0.0
    a = abs(float(values[0]))
    guess = int(np.rint(4.0 * np.log2(max(a, 0.25)) + 8.0))
    best_key, best_bits = 0, np.inf
    for c in range(max(0, guess - 2), min(se.N_CLASSES - 1, guess + 2) + 1):
        for sh in range(se.N_SHAPES):
            bits = _row_bits(values, count, c, sh, cost, offset, Ks, ks)
            if bits < best_bits:
                best_key, best_bits = c * se.N_SHAPES + sh, bits
    return best_key, best_bits + KEY_BITS


@numba.njit(cache=True, nogil=True)
def row_cost(values, count, cost, offset, Ks, ks):
    """Bits of coding values[:count] as a parameter row."""
    return row_key(values, count, cost, offset, Ks, ks)[1]


@numba.njit(cache=True, nogil=True)
def _put_row(buf, st, values, count, cum, offset, Ks, ks, cost):
    start_key, _ = row_key(values, count, cost, offset, Ks, ks)
    se.put_bits(buf, st, start_key, KEY_BITS)
    m = start_mean(start_key // se.N_SHAPES)
    shape = start_key % se.N_SHAPES
    for i in range(count):
        buf = se.reserve(buf, st)
        key = se.class_of(m, 0) * se.N_SHAPES + shape
        se.put_value(buf, st, values[i], key, cum, offset, Ks, ks)
        m = se.update_mean(m, values[i], ROW_RATE)
    return buf


@numba.njit(cache=True, nogil=True)
def encode_body(key_block, masks, step, base, form, order, precision, coef, centre, coef_prev, centre_prev,
                lpc_delta, nref, refs, taps, taps_prev,
                cross_delta, bias, shape, rate, lms, start, e, m, cum, offset, Ks, ks, cost, capacity):
    """The body bytes of a block; ``m`` (running means) is updated in place."""
    st = np.array([0, (1 << 32) - 1, 0, 1, 0], np.int64)
    buf = np.empty(capacity, np.uint8)
    n_ch = e.shape[0]
    row = np.empty(max(H, 3 * MAX_REFS), np.int64)
    for c in range(n_ch):
        buf = se.reserve(buf, st)
        if not key_block:
            changed = masks[c] != 0
            if changed:
                se.put(buf, st, 0, CHANGE_FREQ)
                se.put_raw(buf, st, masks[c], 4)
            else:
                se.put(buf, st, CHANGE_FREQ, (1 << se.PROB_BITS) - CHANGE_FREQ)
    for c in range(n_ch):
        mask = ALL_GROUPS if key_block else masks[c]
        buf = se.reserve(buf, st)
        if mask & LATTICE:
            se.put_wide(buf, st, step[c])
            if step[c] > 1:
                se.put_wide(buf, st, base[c])
        if mask & LPC:
            p = order[c]
            se.put_raw(buf, st, p, 6)
            if p > 0:
                se.put_raw(buf, st, form[c], 1)
                se.put_raw(buf, st, precision[c], 6)
                delta = lpc_delta[c] and not key_block
                if not key_block:
                    se.put_raw(buf, st, 1 if delta else 0, 1)
                for k in range(p):
                    row[k] = coef[c, k] - coef_prev[c, k] if delta else coef[c, k]
                buf = _put_row(buf, st, row, p, cum, offset, Ks, ks, cost)
            buf = se.reserve(buf, st)
            se.put_wide(buf, st, centre[c] if key_block else centre[c] - centre_prev[c])
        if mask & CROSS:
            buf = se.reserve(buf, st)
            se.put_raw(buf, st, nref[c], 3)
            width = _bit_length(c - 1) if c > 1 else 0
            for a in range(nref[c]):
                se.put_bits(buf, st, refs[c, a], width)
            if nref[c] > 0:
                delta = cross_delta[c] and not key_block
                if not key_block:
                    se.put_raw(buf, st, 1 if delta else 0, 1)
                for a in range(nref[c]):
                    for lag in range(3):
                        row[3 * a + lag] = taps[c, a, lag] - taps_prev[c, a, lag] if delta else taps[c, a, lag]
                buf = _put_row(buf, st, row, 3 * nref[c], cum, offset, Ks, ks, cost)
        if mask & ENTROPY:
            buf = se.reserve(buf, st)
            se.put_raw(buf, st, bias[c] - BIAS_MIN, BIAS_BITS)
            se.put_raw(buf, st, shape[c], 2)
            se.put_raw(buf, st, rate[c] - RATE_MIN, RATE_BITS)
            se.put_raw(buf, st, lms[c], LMS_BITS)
            if key_block:
                se.put_raw(buf, st, start[c], 8)
    buf = se.encode_residuals(buf, st, e, m, bias, shape, rate, cum, offset, Ks, ks)
    return se.finish(buf, st)


@numba.njit(cache=True, nogil=True)
def _get_row(data, st, out, count, cum, offset, Ks, ks):
    start_key = se.get_bits(data, st, KEY_BITS)
    if start_key >= se.N_KEYS:
        return False
    m = start_mean(start_key // se.N_SHAPES)
    shape = start_key % se.N_SHAPES
    for i in range(count):
        key = se.class_of(m, 0) * se.N_SHAPES + shape
        out[i] = se.get_value(data, st, key, cum, offset, Ks, ks)
        m = se.update_mean(m, out[i], ROW_RATE)
    return True


@numba.njit(cache=True, nogil=True)
def decode_body(data, pos, key_block, n, masks, step, base, form, order, precision, coef, centre, nref, refs, taps,
                bias, shape, rate, lms, m, cum, offset, Ks, ks):
    """Parse a block body from ``data[pos:]`` into the parameter arrays (which hold the
    previous block's values, updated in place) and return (status, e, decoder state).
    ``masks`` receives each channel's changed groups."""
    n_ch = masks.size
    st = se.start_decoder(data, pos)
    e = np.empty((n_ch, n), np.int64)
    row = np.empty(max(H, 3 * MAX_REFS), np.int64)
    for c in range(n_ch):
        if key_block:
            masks[c] = ALL_GROUPS
            continue
        target = se.get_target(st)
        if target < CHANGE_FREQ:
            se.take(data, st, 0, CHANGE_FREQ)
            masks[c] = se.get_raw(data, st, 4)
            if masks[c] == 0:
                return BAD_MASK, e, st
        else:
            se.take(data, st, CHANGE_FREQ, (1 << se.PROB_BITS) - CHANGE_FREQ)
            masks[c] = 0
    for c in range(n_ch):
        mask = masks[c]
        if mask & LATTICE:
            step[c] = se.get_wide(data, st)
            base[c] = se.get_wide(data, st) if step[c] > 1 else 0
            if step[c] < 1 or step[c] > (np.int64(1) << 62) or base[c] < 0 or base[c] >= step[c]:
                return BAD_STEP, e, st
        if mask & LPC:
            p = se.get_raw(data, st, 6)
            if p > H:
                return BAD_ORDER, e, st
            order[c] = p
            if p > 0:
                form[c] = se.get_raw(data, st, 1)
                precision[c] = se.get_raw(data, st, 6)
                if precision[c] > (MAX_SHIFT if form[c] == DIRECT else MAX_PARCOR_PRECISION) or \
                        (form[c] == PARCOR and precision[c] < 1):
                    return BAD_SHIFT, e, st
                delta = False if key_block else se.get_raw(data, st, 1) == 1
                if not _get_row(data, st, row, p, cum, offset, Ks, ks):
                    return BAD_KEY, e, st
                limit = np.int64(1) << precision[c]
                for k in range(p):
                    coef[c, k] = coef[c, k] + row[k] if delta else row[k]
                    if form[c] == PARCOR and (coef[c, k] > limit or coef[c, k] < -limit):
                        return BAD_COEF, e, st
            else:
                form[c] = DIRECT
                precision[c] = 0
            for k in range(p, H):
                coef[c, k] = 0
            centre[c] = se.get_wide(data, st) + (0 if key_block else centre[c])
        if mask & CROSS:
            k_refs = se.get_raw(data, st, 3)
            if k_refs > c:
                return BAD_REFS, e, st
            width = _bit_length(c - 1) if c > 1 else 0
            for a in range(k_refs):
                refs[c, a] = se.get_bits(data, st, width)
                if refs[c, a] >= c:
                    return BAD_REFS, e, st
            if k_refs > 0:
                delta = False if key_block else se.get_raw(data, st, 1) == 1
                if delta and k_refs != nref[c]:
                    return BAD_REFS, e, st
                if not _get_row(data, st, row, 3 * k_refs, cum, offset, Ks, ks):
                    return BAD_KEY, e, st
                for a in range(k_refs):
                    for lag in range(3):
                        taps[c, a, lag] = taps[c, a, lag] + row[3 * a + lag] if delta else row[3 * a + lag]
            nref[c] = k_refs
        if mask & ENTROPY:
            bias[c] = se.get_raw(data, st, BIAS_BITS) + BIAS_MIN
            shape[c] = se.get_raw(data, st, 2)
            rate[c] = se.get_raw(data, st, RATE_BITS) + RATE_MIN
            lms[c] = se.get_raw(data, st, LMS_BITS)
            if shape[c] >= se.N_SHAPES:
                return BAD_SHAPE, e, st
            if key_block:
                start = se.get_raw(data, st, 8)
                if start >= se.N_CLASSES:
                    return BAD_CLASS, e, st
                m[c] = start_mean(start)
    se.decode_residuals(data, st, e, m, bias, shape, rate, cum, offset, Ks, ks)
    return OK, e, st


@numba.njit(cache=True, nogil=True)
def start_mean(c):
    """The running mean a key block starts a channel with, for start class ``c`` (bias 0):
    the smallest mean of that class."""
    q = c + 4 * se.MEAN_FRAC_BITS - 8  # qlog value of class c
    b = q // 4
    frac = q % 4
    t = 32768 if frac == 0 else (38968 if frac == 1 else (46341 if frac == 2 else 55109))
    return ((np.int64(1) << b) * t + 32767) >> 15


@numba.njit(cache=True, nogil=True)
def start_class(m):
    """The start class a key block sends for a running mean ``m`` (bias 0)."""
    return se.class_of(m, 0)
