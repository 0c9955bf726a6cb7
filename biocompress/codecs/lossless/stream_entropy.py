"""Entropy coding for the streaming codec (lpc-s1): a byte-wise range coder in numba,
over integer frequency tables, with a backward-adaptive scale per channel.

Residuals use the scale classes and shapes of the lpc-v3 coder (``residual_coder``):
class ``c`` means a mean |residual| of 2**((c − 8) / 4), shape ``sh`` one of its
generalized-Gaussian shapes; a residual splits into ``k`` raw low bits and a high part
coded from the table of (c, sh), with an escape for high parts outside ±K. Unlike
lpc-v3, no class is sent: both sides derive it, sample by sample, from a running mean of
the channel's past |residuals| (integer arithmetic), so blocks of a few samples pay
nothing for it and the scale follows bursts within a few samples.

The range coder (32-bit range, carry propagation through a cached byte, as in LZMA)
starts with the interval [0, 2**32) and ends with the shortest code value inside the
final interval; trailing zero bytes are dropped (a decoder reads zeros past the end).
Every function here is integer arithmetic: encoder and decoder agree on any machine.
The frequency tables are quantized once from the float tables of ``residual_coder``;
``table_digest()`` pins them (a test freezes it).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numba
import numpy as np

from . import residual_coder

PROB_BITS = 16
N_CLASSES = residual_coder.N_CLASSES
N_SHAPES = len(residual_coder.SHAPES)
N_KEYS = N_CLASSES * N_SHAPES
MEAN_FRAC_BITS = 4  # the running mean |residual| is kept with 4 fractional bits
MEAN_CAP = 1 << 40  # |residual| counted at most this much in the running mean
TOP = 1 << 24
_MASK32 = (1 << 32) - 1


# --- tables --------------------------------------------------------------------
def _quantize(probs: np.ndarray) -> np.ndarray:
    """Integer frequencies summing to 2**PROB_BITS, none zero."""
    total = 1 << PROB_BITS
    freq = np.floor(probs * (total - probs.size)).astype(np.int64) + 1
    freq[int(np.argmax(freq))] += total - int(freq.sum())
    return freq


@lru_cache(maxsize=1)
def tables():
    """(cum, offset, K, k): the cumulative frequencies of every key (class·3 + shape)
    end to end (2K + 3 entries each: 2K + 1 high parts, the escape, the total), where
    each starts, its K and its raw low bits."""
    cums, offsets, Ks, ks, pos = [], [], [], [], 0
    for c in range(N_CLASSES):
        for sh in range(N_SHAPES):
            probs, K, k = residual_coder._shaped_table(c, sh)
            cum = np.concatenate([[0], np.cumsum(_quantize(probs))])
            cums.append(cum)
            offsets.append(pos)
            Ks.append(K)
            ks.append(k)
            pos += cum.size
    return (np.concatenate(cums).astype(np.int64), np.asarray(offsets, np.int64), np.asarray(Ks, np.int64),
            np.asarray(ks, np.int64))


def table_digest() -> str:
    """SHA-256 of every integer table: a platform that builds other tables cannot read archives."""
    h = hashlib.sha256()
    for a in tables():
        h.update(np.ascontiguousarray(a, "<i8").tobytes())
    return h.hexdigest()


@numba.njit(cache=True, nogil=True, inline="always")
def qlog(m):
    """floor(4·log2(m)) for m ≥ 1 (0 for m < 1), in integers."""
    if m < 1:
        return 0
    b = ((np.float64(m).view(np.int64) >> 52) & 0x7FF) - 1023  # exact: 1 ≤ m < 2**53
    top = (m >> (b - 15)) if b >= 15 else (m << (15 - b))
    q = 4 * b
    if top >= 38968:
        q += 1
    if top >= 46341:
        q += 1
    if top >= 55109:
        q += 1
    return q


@numba.njit(cache=True, nogil=True, inline="always")
def class_of(m, bias):
    """Class of a channel's next residual from its running mean (4 fractional bits)."""
    c = qlog(m) - 4 * MEAN_FRAC_BITS + 8 + bias
    if c < 0:
        return 0
    if c > N_CLASSES - 1:
        return N_CLASSES - 1
    return c


@numba.njit(cache=True, nogil=True, inline="always")
def update_mean(m, e, rate):
    a = e if e >= 0 else -e
    if a < 0 or a > MEAN_CAP:  # -2**63, or a spike: counted as MEAN_CAP
        a = MEAN_CAP
    return m + (((a << MEAN_FRAC_BITS) - m) >> rate)


# --- range encoder ---------------------------------------------------------------
# state: int64[5] = low, range, cache, cache_size, bytes written; the buffer grows as needed.
LOW, RANGE, CACHE, PENDING, POS = 0, 1, 2, 3, 4


def new_encoder(capacity: int = 256):
    state = np.array([0, _MASK32, 0, 1, 0], np.int64)
    return state, np.empty(max(64, capacity), np.uint8)


SLACK = 64  # bytes any one value needs at most, beyond the pending carry run


@numba.njit(cache=True, nogil=True, inline="always")
def reserve(buf, st):
    """The buffer, grown when fewer than SLACK bytes are free: call before each value."""
    if st[POS] + st[PENDING] + SLACK <= buf.size:
        return buf
    return _grow(buf, st)


@numba.njit(cache=True, nogil=True)
def _grow(buf, st):
    out = np.empty(2 * buf.size + st[PENDING] + SLACK, np.uint8)
    out[: st[POS]] = buf[: st[POS]]
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _shift_low(buf, st):
    low = st[LOW]
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = st[CACHE]
        while True:
            buf[st[POS]] = (temp + carry) & 0xFF
            st[POS] += 1
            temp = 0xFF
            st[PENDING] -= 1
            if st[PENDING] == 0:
                break
        st[CACHE] = (low >> 24) & 0xFF
    st[PENDING] += 1
    st[LOW] = (low & 0x00FFFFFF) << 8


@numba.njit(cache=True, nogil=True, inline="always")
def _normalize_enc(buf, st):
    while st[RANGE] < TOP:
        st[RANGE] <<= 8
        _shift_low(buf, st)


@numba.njit(cache=True, nogil=True, inline="always")
def put(buf, st, start, freq):
    """Code the symbol [start, start + freq) of a table summing to 2**PROB_BITS."""
    r = st[RANGE] >> PROB_BITS
    st[LOW] += r * start
    st[RANGE] = r * freq
    _normalize_enc(buf, st)


@numba.njit(cache=True, nogil=True, inline="always")
def put_raw(buf, st, value, nbits):
    """``nbits`` (≤ 16) equiprobable bits of ``value``."""
    if nbits == 0:
        return
    r = st[RANGE] >> nbits
    st[LOW] += r * (value & ((1 << nbits) - 1))
    st[RANGE] = r
    _normalize_enc(buf, st)


@numba.njit(cache=True, nogil=True)
def put_bits(buf, st, value, nbits):
    """Up to 64 raw bits of ``value`` (an int64 bit pattern), low chunks first."""
    done = 0
    while done < nbits:
        n = min(16, nbits - done)
        put_raw(buf, st, (value >> done) & 0xFFFF, n)
        done += n


@numba.njit(cache=True, nogil=True)
def put_wide(buf, st, value):
    """Any int64: zigzag, then its bit length (7 raw bits) and its bits."""
    u = (value << 1) ^ (value >> 63)
    n = 64 if u < 0 else 0
    if u > 0:
        v = u
        while v > 0:
            v >>= 1
            n += 1
    put_bits(buf, st, n, 7)
    put_bits(buf, st, u, n)


@numba.njit(cache=True, nogil=True, inline="always")
def put_value(buf, st, value, key, cum, offset, Ks, ks):
    """One value coded with table ``key``: high part (or escape + wide value), then low bits."""
    K, k, base = Ks[key], ks[key], offset[key]
    hi = value >> k
    if hi > K or hi < -K:
        sym = 2 * K + 1
        put(buf, st, cum[base + sym], cum[base + sym + 1] - cum[base + sym])
        put_wide(buf, st, hi)
    else:
        sym = hi + K
        put(buf, st, cum[base + sym], cum[base + sym + 1] - cum[base + sym])
    if k:
        put_bits(buf, st, value & ((np.int64(1) << k) - 1), k)


@numba.njit(cache=True, nogil=True)
def finish(buf, st):
    """End the stream with the shortest value inside the final interval; returns the bytes
    (the always-zero first byte dropped, and up to MAX_STRIPPED trailing zero bytes)."""
    buf = reserve(buf, st)
    low, rng = st[LOW], st[RANGE]
    for nbytes in range(5):  # code value with only ``nbytes`` significant bytes below bit 32
        unit = np.int64(1) << (32 - 8 * nbytes)
        v = (low + unit - 1) // unit * unit
        if v < low + rng:
            st[LOW] = v
            break
    for _ in range(5):
        _shift_low(buf, st)
    end = st[POS]
    while end > max(1, st[POS] - MAX_STRIPPED) and buf[end - 1] == 0:
        end -= 1
    return buf[1:end].copy()


# A decoder reads zeros past the end of its bytes; a valid stream needs at most MAX_STRIPPED + 1
# of them, so a decoder that needed more than MAX_OVERREAD was given damaged bytes. Every
# coded value narrows the range by at least MIN_BITS bits (the most probable symbol of any
# table), so n values need at least n·MIN_BITS bits: a block's declared size is checked
# against its bytes before anything is allocated.
MAX_STRIPPED = 16
MAX_OVERREAD = 32


@lru_cache(maxsize=1)
def min_bits() -> float:
    cum, offset, Ks, _ = tables()
    top = max(int(np.diff(cum[o : o + 2 * K + 3]).max()) for o, K in zip(offset.tolist(), Ks.tolist()))
    return float(PROB_BITS - np.log2(top))


def max_values(n_bytes: int) -> int:
    """The most values ``n_bytes`` of range-coded stream can hold."""
    return int((8 * (n_bytes + MAX_OVERREAD) + 32) / min_bits()) + 1


# --- range decoder ---------------------------------------------------------------
# state: int64[5] = code, range, read position, bytes read past the end, the last 4 bytes read.
CODE, DRANGE, DPOS, OVER, WINDOW = 0, 1, 2, 3, 4


@numba.njit(cache=True, nogil=True, inline="always")
def _next_byte(data, st):
    p = st[DPOS]
    st[DPOS] = p + 1
    byte = np.int64(0)
    if p < data.size:
        byte = np.int64(data[p])
    else:
        st[OVER] += 1
    st[WINDOW] = ((st[WINDOW] << 8) | byte) & _MASK32
    return byte


@numba.njit(cache=True, nogil=True)
def start_decoder(data, pos):
    """A decoder reading ``data`` from ``pos``."""
    st = np.zeros(5, np.int64)
    st[DPOS] = pos
    st[DRANGE] = _MASK32
    code = np.int64(0)
    for _ in range(4):
        code = (code << 8) | _next_byte(data, st)
    st[CODE] = code
    return st


@numba.njit(cache=True, nogil=True, inline="always")
def _normalize_dec(data, st):
    while st[DRANGE] < TOP:
        st[CODE] = ((st[CODE] << 8) | _next_byte(data, st)) & _MASK32
        st[DRANGE] <<= 8


@numba.njit(cache=True, nogil=True, inline="always")
def get_target(st):
    """The frequency slot of the next symbol (clamped: damaged streams stay in range)."""
    r = st[DRANGE] >> PROB_BITS
    v = st[CODE] // r
    total = np.int64(1) << PROB_BITS
    return v if v < total else total - 1


@numba.njit(cache=True, nogil=True, inline="always")
def take(data, st, start, freq):
    r = st[DRANGE] >> PROB_BITS
    st[CODE] -= r * start
    st[DRANGE] = r * freq
    _normalize_dec(data, st)


@numba.njit(cache=True, nogil=True, inline="always")
def get_raw(data, st, nbits):
    if nbits == 0:
        return np.int64(0)
    r = st[DRANGE] >> nbits
    v = st[CODE] // r
    top = (np.int64(1) << nbits) - 1
    v = min(v, top)
    st[CODE] -= v * r
    st[DRANGE] = r
    _normalize_dec(data, st)
    return v


@numba.njit(cache=True, nogil=True)
def get_bits(data, st, nbits):
    v = np.int64(0)
    done = 0
    while done < nbits:
        n = min(16, nbits - done)
        v |= get_raw(data, st, n) << done
        done += n
    return v


@numba.njit(cache=True, nogil=True)
def get_wide(data, st):
    n = get_bits(data, st, 7)
    n = min(n, 64)
    u = get_bits(data, st, n)
    return ((u >> 1) & 0x7FFFFFFFFFFFFFFF) ^ -(u & 1)


@numba.njit(cache=True, nogil=True, inline="always")
def find_symbol(cum, base, n_sym, target):
    # largest s in [0, n_sym) with cum[base + s] ≤ target (cum[base] = 0)
    lo, hi = 0, n_sym - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if cum[base + mid] <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


@numba.njit(cache=True, nogil=True)
def get_value(data, st, key, cum, offset, Ks, ks):
    K, k, base = Ks[key], ks[key], offset[key]
    sym = find_symbol(cum, base, 2 * K + 2, get_target(st))
    take(data, st, cum[base + sym], cum[base + sym + 1] - cum[base + sym])
    if sym == 2 * K + 1:
        hi = get_wide(data, st)
    else:
        hi = sym - K
    if k:
        return (hi << k) | get_bits(data, st, k)
    return hi


@numba.njit(cache=True, nogil=True)
def ended_canonically(data, pos, st):
    """Whether the stream ``data[pos:]`` ended as an encoder ends one: every byte read, the
    code value the shortest in the final interval, and exactly the trailing zeros that
    ``finish`` drops read back. Bytes that differ from what the encoder wrote either decode
    to other values or fail this (a stream is the unique encoding of what it decodes to)."""
    if st[DPOS] - st[OVER] != data.size or st[OVER] > MAX_STRIPPED:
        return False
    if st[OVER] < MAX_STRIPPED and data.size > pos and data[data.size - 1] == 0:
        return False
    low = (st[WINDOW] - st[CODE]) & _MASK32
    for nbytes in range(5):
        unit = np.int64(1) << (32 - 8 * nbytes)
        v = (low + unit - 1) // unit * unit
        if v < low + st[DRANGE]:
            return (v & _MASK32) == st[WINDOW]
    return False


# --- the residual rows: the same coding as put_value/get_value, with the coder state in
# local variables (the per-sample loop of every block) ---------------------------------------
@numba.njit(cache=True, nogil=True, inline="always")
def _enc_shift(buf, low, cache, pending, pos):
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = cache
        while True:
            buf[pos] = (temp + carry) & 0xFF
            pos += 1
            temp = 0xFF
            pending -= 1
            if pending == 0:
                break
        cache = (low >> 24) & 0xFF
    pending += 1
    low = (low & 0x00FFFFFF) << 8
    return low, cache, pending, pos


@numba.njit(cache=True, nogil=True, inline="always")
def _enc(buf, low, rng, cache, pending, pos, start, freq, bits):
    r = rng >> bits
    low += r * start
    rng = r * freq
    while rng < TOP:
        rng <<= 8
        low, cache, pending, pos = _enc_shift(buf, low, cache, pending, pos)
    return low, rng, cache, pending, pos


@numba.njit(cache=True, nogil=True)
def encode_residuals(buf, st, e, m, bias, shape, rate, cum, offset, Ks, ks):
    """Code every channel's residuals (channel after channel) with the backward-adaptive
    scale; ``m`` is updated in place. Returns the buffer (grown if needed)."""
    n_ch, n = e.shape
    low, rng, cache, pending, pos = st[LOW], st[RANGE], st[CACHE], st[PENDING], st[POS]
    for c in range(n_ch):
        mc, b, sh, rt = m[c], bias[c], shape[c], rate[c]
        for t in range(n):
            if pos + pending + SLACK > buf.size:
                st[LOW], st[RANGE], st[CACHE], st[PENDING], st[POS] = low, rng, cache, pending, pos
                buf = _grow(buf, st)
            v = e[c, t]
            key = class_of(mc, b) * N_SHAPES + sh
            K, k, base = Ks[key], ks[key], offset[key]
            hi = v >> k
            if hi > K or hi < -K:
                sym = 2 * K + 1
                low, rng, cache, pending, pos = _enc(buf, low, rng, cache, pending, pos, cum[base + sym],
                                                     cum[base + sym + 1] - cum[base + sym], PROB_BITS)
                st[LOW], st[RANGE], st[CACHE], st[PENDING], st[POS] = low, rng, cache, pending, pos
                put_wide(buf, st, hi)
                low, rng, cache, pending, pos = st[LOW], st[RANGE], st[CACHE], st[PENDING], st[POS]
            else:
                sym = hi + K
                low, rng, cache, pending, pos = _enc(buf, low, rng, cache, pending, pos, cum[base + sym],
                                                     cum[base + sym + 1] - cum[base + sym], PROB_BITS)
            done = 0
            while done < k:
                nb = min(16, k - done)
                low, rng, cache, pending, pos = _enc(buf, low, rng, cache, pending, pos,
                                                     (v >> done) & ((1 << nb) - 1), 1, nb)
                done += nb
            mc = update_mean(mc, v, rt)
        m[c] = mc
    st[LOW], st[RANGE], st[CACHE], st[PENDING], st[POS] = low, rng, cache, pending, pos
    return buf


@numba.njit(cache=True, nogil=True, inline="always")
def _dec_norm(data, code, rng, pos, over, window):
    while rng < TOP:
        if pos < data.size:
            byte = np.int64(data[pos])
        else:
            byte = np.int64(0)
            over += 1
        pos += 1
        code = ((code << 8) | byte) & _MASK32
        window = ((window << 8) | byte) & _MASK32
        rng <<= 8
    return code, rng, pos, over, window


@numba.njit(cache=True, nogil=True)
def decode_residuals(data, st, e, m, bias, shape, rate, cum, offset, Ks, ks):
    """Inverse of :func:`encode_residuals`: fills e (n_ch, n); ``m`` updated in place."""
    n_ch, n = e.shape
    code, rng, pos, over, window = st[CODE], st[DRANGE], st[DPOS], st[OVER], st[WINDOW]
    total = np.int64(1) << PROB_BITS
    for c in range(n_ch):
        mc, b, sh, rt = m[c], bias[c], shape[c], rate[c]
        for t in range(n):
            key = class_of(mc, b) * N_SHAPES + sh
            K, k, base = Ks[key], ks[key], offset[key]
            r = rng >> PROB_BITS
            target = code // r
            if target >= total:
                target = total - 1
            sym = find_symbol(cum, base, 2 * K + 2, target)
            code -= r * cum[base + sym]
            rng = r * (cum[base + sym + 1] - cum[base + sym])
            code, rng, pos, over, window = _dec_norm(data, code, rng, pos, over, window)
            if sym == 2 * K + 1:
                st[CODE], st[DRANGE], st[DPOS], st[OVER], st[WINDOW] = code, rng, pos, over, window
                hi = get_wide(data, st)
                code, rng, pos, over, window = st[CODE], st[DRANGE], st[DPOS], st[OVER], st[WINDOW]
            else:
                hi = sym - K
            lo = np.int64(0)
            done = 0
            while done < k:
                nb = min(16, k - done)
                r = rng >> nb
                v = code // r
                top = (np.int64(1) << nb) - 1
                v = min(v, top)
                code -= v * r
                rng = r
                code, rng, pos, over, window = _dec_norm(data, code, rng, pos, over, window)
                lo |= v << done
                done += nb
            value = (hi << k) | lo if k else hi
            e[c, t] = value
            mc = update_mean(mc, value, rt)
        m[c] = mc
    st[CODE], st[DRANGE], st[DPOS], st[OVER], st[WINDOW] = code, rng, pos, over, window
