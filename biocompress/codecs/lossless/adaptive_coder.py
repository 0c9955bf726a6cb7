"""Residual coding for lpc-v4: a backward-adaptive scale per sample, a shape per segment,
static tables, and a range-coding variant (rANS) written for numba.

Each row of residuals is coded sample by sample. The model of sample ``t`` is chosen from
what the decoder already knows: an exponential average ``m`` of the row's recent |residual|
gives a scale index ``j`` (8 per octave), and the segment's shape (one of :data:`SHAPES`,
sent at the start of each segment of ``segment`` samples, or "all zero") picks one of the
tables of discretized generalized-Gaussian densities. Large scales split a residual into
raw low bits and a high part, so that every table stays below 256 symbols; high parts
beyond a table's range are an escape symbol followed by an Elias-gamma code.

Symbols are coded by rANS (64-bit state, 32-bit words, 15-bit frequencies) and the raw bits
go to a separate bit string, so decoding is one pass of table look-ups: no per-symbol
model parameters (constriction's QuantizedLaplace costs ~100 ns/symbol, a table ~30 ns;
this coder's whole per-sample decode is a few ns in numba).
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache

import numba
import numpy as np

from ...errors import CorruptArchiveError

PREC = 15
M = 1 << PREC
SHAPES = (0.7, 1.0, 1.4, 2.0)  # generalized-Gaussian β: heavier than Laplace … Gaussian
N_SHAPES = len(SHAPES)
# Segment headers: 0…3 adaptive scale with shape 0…3; 4 every residual is 0; 5…8 one
# static scale for the whole segment (4 raw bits place it around the adaptive one), shape 0…3.
ZERO_SEGMENT = N_SHAPES
STATIC = N_SHAPES + 1
N_HEADERS = 2 * N_SHAPES + 1
STATIC_BITS = 4  # static index = adaptive index + delta − 8, delta in 0…15
J_SPLIT = 64  # scale indices j ≥ 64 (scale ≥ 16) split off j//8 − 7 raw low bits
N_COLUMNS = 72  # tables per shape: j < 64 exact integer bins, then 8 scale-invariant ones
K_MAX = 126  # high parts −K…K (K ≤ K_MAX), then the escape symbol: ≤ 254 symbols
TAIL = 10.0  # a table covers ±TAIL scales
EMA_SHIFT = 3  # m += (16·|r| − m) >> 3
CONTEXT_OFFSET = 2  # tables are read 2/8 octave above the average: scale estimates are noisy
MAG_CAP = 1 << 30  # |r| counted into the average at most this large
LUT_SHIFT = PREC - 8  # decoder look-up: symbol of each 128-slot bucket


def column_scale(col: int) -> float:
    """Mean |x| of the density of table column ``col`` (high-part units for split columns)."""
    return 2.0 ** ((col - 32) / 8.0) if col < J_SPLIT else 2.0 ** ((col - 8 - 32) / 8.0)


@lru_cache(maxsize=None)
def _table_probabilities(shape: int, col: int) -> tuple[np.ndarray, int]:
    """Normative (float64): probabilities of symbols −K…K and escape, and K."""
    beta = SHAPES[shape]
    s = column_scale(col)
    alpha = s * math.exp(math.lgamma(1.0 / beta) - math.lgamma(2.0 / beta))
    K = min(K_MAX, int(math.ceil(TAIL * s)) + 1)
    centre_shift = 0.5 if col >= J_SPLIT else 0.0  # split columns: bins [j, j+1) of the high part
    i = np.arange(-K, K + 1, dtype=np.float64)
    dens = np.exp(-((np.abs(i + centre_shift) / alpha) ** beta))
    beyond = np.arange(K + 1, 8 * K + 64, dtype=np.float64)
    tail = 2.0 * float(np.exp(-(((beyond + centre_shift) / alpha) ** beta)).sum())
    p = np.append(dens, max(tail, 1e-9 * float(dens.sum())))
    return p / p.sum(), K


@lru_cache(maxsize=1)
def tables():
    """(freq int32[t, 256], cum int32[t, 257], K int64[t], lut uint8[t, 256], cost float32[t, 256])
    for t = shape·N_COLUMNS + column; frequencies sum to M, every symbol of a table ≥ 1."""
    n_tab = N_SHAPES * N_COLUMNS
    freq = np.zeros((n_tab, 256), np.int32)
    cum = np.zeros((n_tab, 257), np.int32)
    Ks = np.zeros(n_tab, np.int64)
    lut = np.zeros((n_tab, 1 << (PREC - LUT_SHIFT)), np.uint8)
    cost = np.zeros((n_tab, 256), np.float32)
    for sh in range(N_SHAPES):
        for col in range(N_COLUMNS):
            t = sh * N_COLUMNS + col
            p, K = _table_probabilities(sh, col)
            a = p.size
            f = np.maximum(1, np.floor(p * (M - a) + 0.5)).astype(np.int64)
            f[int(np.argmax(f))] += M - int(f.sum())
            freq[t, :a] = f
            cum[t, 1 : a + 1] = np.cumsum(f)
            cum[t, a + 1 :] = M
            Ks[t] = K
            starts = np.arange(lut.shape[1], dtype=np.int64) << LUT_SHIFT
            lut[t] = np.searchsorted(cum[t, 1 : a + 1], starts, side="right")
            cost[t, :a] = -np.log2(f / M)
    return freq, cum, Ks, lut, cost


HEADER_FREQ = np.array([M // N_HEADERS] * (N_HEADERS - 1) + [M - (N_HEADERS - 1) * (M // N_HEADERS)], np.int64)
HEADER_CUM = np.concatenate([[0], np.cumsum(HEADER_FREQ)]).astype(np.int64)
HEADER_FREQ_NB, HEADER_CUM_NB = HEADER_FREQ, HEADER_CUM  # read by the kernels as constants


# --------------------------------------------------------------------------- shared kernels


@numba.njit(cache=True, nogil=True, inline="always")
def _msb(v):
    # floor(log2 v) for v ≥ 1 (binary search on shifts)
    n = 0
    if v >> 32:
        v >>= 32
        n += 32
    if v >> 16:
        v >>= 16
        n += 16
    if v >> 8:
        v >>= 8
        n += 8
    if v >> 4:
        v >>= 4
        n += 4
    if v >> 2:
        v >>= 2
        n += 2
    if v >> 1:
        n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _scale_index(m):
    # j = 8·log2(m) with the fraction from the next 3 bits (m has 4 fractional bits: j = 32 at |r| ≈ 1)
    if m < 1:
        return 0
    b = _msb(m)
    frac = ((m << 3) >> b) & 7 if b < 3 else (m >> (b - 3)) & 7
    return 8 * b + frac


@numba.njit(cache=True, nogil=True, inline="always")
def _average_from_index(j):
    return ((8 + (j & 7)) << (j >> 3)) >> 3


# --------------------------------------------------------------------------- encoder


@numba.njit(cache=True, nogil=True)
def _ensure(raw, nbytes, need):
    # raw with room for `need` more bytes after nbytes
    if nbytes + need <= raw.size:
        return raw
    bigger = np.zeros(2 * raw.size + need, np.uint8)
    bigger[:nbytes] = raw[:nbytes]
    return bigger


@numba.njit(cache=True, nogil=True, inline="always")
def _symbol_cost(v, j, Ks, cost4, out):
    # adds the bits of residual v coded at scale index j, for every shape, to out
    if j < J_SPLIT:
        col, k = j, 0
    else:
        col, k = J_SPLIT + ((j - J_SPLIT) & 7), ((j - J_SPLIT) >> 3) + 1
    hi = v >> k
    K = Ks[col]
    if hi > K or hi < -K:
        e = (hi - K) if hi > 0 else (-K - hi)
        extra = k + 2 * _msb(e) + 2
        for sh in range(N_SHAPES):
            out[sh] += cost4[col, 2 * K + 1, sh] + extra
    else:
        for sh in range(N_SHAPES):
            out[sh] += cost4[col, hi + K, sh] + k


@numba.njit(cache=True, nogil=True)
def _encode_kernel(res, lengths, segment, static_span, freq, cum, rcp, Ks, cost4):
    # res: all rows end to end. Returns (rANS words, raw bytes).
    total = res.size
    n_seg = 0
    for r in range(lengths.size):
        n_seg += (lengths[r] + segment - 1) // segment
    cols = np.empty(total, np.int16)
    syms = np.empty(total, np.int16)
    raw = np.zeros(total // 2 + 64, np.uint8)
    nbytes = 0
    acc = np.uint64(0)  # pending raw bits, LSB first
    nacc = 0
    fbuf = np.empty(1, np.float64)
    ibuf = fbuf.view(np.int64)
    pos = 0
    seg_head = np.empty(n_seg, np.int64)
    seg_cost = np.zeros(N_SHAPES)
    jidx = np.empty(segment, np.int64)
    si = 0
    for r in range(lengths.size):
        n = lengths[r]
        # the row's initial scale index: 8 raw bits
        total_mag = 0
        for t in range(pos, pos + min(n, 32)):
            total_mag += min(abs(res[t]), MAG_CAP)
        j0 = min(255, _scale_index((total_mag << 4) // max(1, min(n, 32))))
        raw = _ensure(raw, nbytes, 16)
        acc |= np.uint64(j0) << np.uint64(nacc)
        nacc += 8
        while nacc >= 8:
            raw[nbytes] = np.uint8(acc & np.uint64(255))
            nbytes += 1
            acc >>= np.uint64(8)
            nacc -= 8
        m = _average_from_index(j0)
        for a in range(pos, pos + n, segment):
            b_end = min(pos + n, a + segment)
            nonzero = False
            for t in range(a, b_end):
                if res[t] != 0:
                    nonzero = True
                    break
            if not nonzero:
                seg_head[si] = ZERO_SEGMENT
                si += 1
                for t in range(a, b_end):
                    m -= m >> EMA_SHIFT
                continue
            raw = _ensure(raw, nbytes, (b_end - a) * 32 + 64)
            # pass 1: adaptive columns (and their costs for every shape); the segment's mean
            m_start = m
            j_start = _scale_index(m_start) + CONTEXT_OFFSET
            seg_cost[:] = 0.0
            total_mag = 0
            for t in range(a, b_end):
                if m < 1:
                    j = CONTEXT_OFFSET
                else:
                    fbuf[0] = float(m)
                    j = (ibuf[0] >> 49) - (1023 << 3) + CONTEXT_OFFSET
                v = res[t]
                _symbol_cost(v, j, Ks, cost4, seg_cost)
                jidx[t - a] = j
                mag = min(abs(v), MAG_CAP)
                total_mag += mag
                m += ((mag << 4) - m) >> EMA_SHIFT
            best = 0
            for sh in range(1, N_SHAPES):
                if seg_cost[sh] < seg_cost[best]:
                    best = sh
            best_bits = seg_cost[best]
            # static candidates around the segment's maximum-likelihood scale
            j_ml = _scale_index((total_mag << 4) // (b_end - a)) + CONTEXT_OFFSET
            j_static = -1
            for cand in range(j_ml - static_span, j_ml + static_span + 1):
                jc = min(max(cand, j_start - 8, 0), j_start + 7)
                if jc == j_static:
                    continue
                seg_cost[:] = STATIC_BITS
                for t in range(a, b_end):
                    _symbol_cost(res[t], jc, Ks, cost4, seg_cost)
                for sh in range(N_SHAPES):
                    if seg_cost[sh] < best_bits:
                        best_bits = seg_cost[sh]
                        best = STATIC + sh
                        j_static = jc
            seg_head[si] = best
            si += 1
            if best >= STATIC:
                delta = j_static - j_start + 8
                acc |= np.uint64(delta) << np.uint64(nacc)
                nacc += STATIC_BITS
                while nacc >= 8:
                    raw[nbytes] = np.uint8(acc & np.uint64(255))
                    nbytes += 1
                    acc >>= np.uint64(8)
                    nacc -= 8
            # pass 2: symbols and raw bits of the chosen scales
            for t in range(a, b_end):
                j = j_static if best >= STATIC else jidx[t - a]
                if j < J_SPLIT:
                    col, k = j, 0
                else:
                    col, k = J_SPLIT + ((j - J_SPLIT) & 7), ((j - J_SPLIT) >> 3) + 1
                v = res[t]
                hi = v >> k
                K = Ks[col]
                if k:
                    acc |= np.uint64(v - (hi << k)) << np.uint64(nacc)
                    nacc += k
                    if nacc >= 32:
                        for _ in range(4):
                            raw[nbytes] = np.uint8(acc & np.uint64(255))
                            nbytes += 1
                            acc >>= np.uint64(8)
                        nacc -= 32
                if hi > K or hi < -K:
                    sym = 2 * K + 1
                    e = (hi - K) if hi > 0 else (-K - hi)  # ≥ 1: sign, nb zeros, a one, nb low bits
                    nb = _msb(e)
                    head = np.int64(1 if hi < 0 else 0) | (np.int64(1) << (nb + 1))
                    for piece, width in ((head, nb + 2), (e, nb)):
                        done = 0
                        while done < width:
                            w = min(24, width - done)
                            acc |= np.uint64((piece >> done) & ((np.int64(1) << w) - 1)) << np.uint64(nacc)
                            nacc += w
                            done += w
                            while nacc >= 8:
                                raw[nbytes] = np.uint8(acc & np.uint64(255))
                                nbytes += 1
                                acc >>= np.uint64(8)
                                nacc -= 8
                else:
                    sym = hi + K
                cols[t] = col
                syms[t] = sym
        pos += n
    raw = _ensure(raw, nbytes, 16)
    while nacc > 0:
        raw[nbytes] = np.uint8(acc & np.uint64(255))
        nbytes += 1
        acc >>= np.uint64(8)
        nacc -= 8
    # rANS, in reverse: the decoder reads headers and symbols forward
    words = np.empty(total + n_seg + 4, np.uint32)  # at most one word per symbol
    nw = 0
    x = np.int64(1) << 31
    si = n_seg - 1
    end = total
    for r in range(lengths.size - 1, -1, -1):
        n = lengths[r]
        start = end - n
        n_row_seg = (n + segment - 1) // segment
        for qi in range(n_row_seg - 1, -1, -1):
            a = start + qi * segment
            b_end = min(end, a + segment)
            head = seg_head[si]
            si -= 1
            if head != ZERO_SEGMENT:
                base = (head if head < ZERO_SEGMENT else head - STATIC) * N_COLUMNS
                for t in range(b_end - 1, a - 1, -1):
                    tab = base + cols[t]
                    s = syms[t]
                    f = np.int64(freq[tab, s])
                    if x >= (f << 48):
                        words[nw] = np.uint32(x & 0xFFFFFFFF)
                        nw += 1
                        x >>= 32
                    # x // f through a float reciprocal (x < f·2^48: off by at most one, fixed below)
                    qt = np.int64(float(x) * rcp[tab, s])
                    rem = x - qt * f
                    if rem < 0:
                        qt -= 1
                        rem += f
                    elif rem >= f:
                        qt += 1
                        rem -= f
                    x = (qt << PREC) + rem + cum[tab, s]
            f = HEADER_FREQ_NB[head]
            if x >= (f << 48):
                words[nw] = np.uint32(x & 0xFFFFFFFF)
                nw += 1
                x >>= 32
            x = ((x // f) << PREC) + (x % f) + HEADER_CUM_NB[head]
        end = start
    words[nw] = np.uint32(x & 0xFFFFFFFF)
    words[nw + 1] = np.uint32(x >> 32)
    nw += 2
    return words[:nw][::-1].copy(), raw[:nbytes].copy()


@lru_cache(maxsize=1)
def _encoder_tables():
    """Reciprocal frequencies and the shape-innermost cost table (encoder helpers)."""
    freq, _, _, _, cost = tables()
    rcp = np.where(freq > 0, 1.0 / np.maximum(freq, 1), 0.0)
    cost4 = np.ascontiguousarray(cost.reshape(N_SHAPES, N_COLUMNS, 256).transpose(1, 2, 0))
    return rcp, cost4


def encode_rows(rows, segment: int, static_span: int = 1) -> bytes:
    """Code int64 rows (lengths known to the decoder) as one stream: ``u32 n_words``,
    the rANS words (u32, decoder order), then the raw bits."""
    lengths = np.array([r.size for r in rows], np.int64)
    res = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    freq, cum, Ks, _, _ = tables()
    rcp, cost4 = _encoder_tables()
    words, raw = _encode_kernel(res, lengths, int(segment), int(static_span), freq, cum, rcp, Ks, cost4)
    return struct.pack("<I", words.size) + words.astype("<u4").tobytes() + raw.tobytes()


# --------------------------------------------------------------------------- decoder


@numba.njit(cache=True, nogil=True)
def _read_escape(raw, bitbuf, nbits, rpos):
    # sign, Elias gamma of e ≥ 1: returns (signed e or 0 when the bits run out, state)
    out = np.int64(0)
    nb = -1
    sign = np.int64(0)
    while True:
        if nbits == 0:
            if rpos >= raw.size:
                return np.int64(0), bitbuf, nbits, rpos
            bitbuf = np.uint64(raw[rpos])
            rpos += 1
            nbits = 8
        bit = np.int64(bitbuf & np.uint64(1))
        bitbuf >>= np.uint64(1)
        nbits -= 1
        if nb == -1:
            sign = bit
            nb = 0
        elif bit:
            break
        else:
            nb += 1
            if nb > 62:
                return np.int64(0), bitbuf, nbits, rpos
    out = np.int64(1) << nb
    for b in range(nb):
        if nbits == 0:
            if rpos >= raw.size:
                return np.int64(0), bitbuf, nbits, rpos
            bitbuf = np.uint64(raw[rpos])
            rpos += 1
            nbits = 8
        out |= np.int64(bitbuf & np.uint64(1)) << b
        bitbuf >>= np.uint64(1)
        nbits -= 1
    return (-out if sign else out), bitbuf, nbits, rpos


@numba.njit(cache=True, nogil=True)
def _decode_kernel(words, raw, lengths, segment, freq, cum, Ks, lut, out, exact):
    # 0 on success, else an error code (1: words exhausted, 2: raw bits exhausted,
    # 3: bad header, 4: escape too long, 5: final state wrong)
    if words.size < 2 or words[0] >= np.uint32(1 << 31):
        return 1
    x = (np.int64(words[0]) << 32) | np.int64(words[1])
    wi = 2
    fbuf = np.empty(1, np.float64)
    ibuf = fbuf.view(np.int64)
    n_raw = raw.size
    bitbuf = np.uint64(0)
    nbits = 0
    rpos = 0
    pos = 0
    low = np.int64(1) << 31
    for r in range(lengths.size):
        n = lengths[r]
        # refill and read 8 bits
        while nbits <= 56 and rpos < n_raw:
            bitbuf |= np.uint64(raw[rpos]) << np.uint64(nbits)
            rpos += 1
            nbits += 8
        if nbits < 8:
            return 2
        j0 = np.int64(bitbuf & np.uint64(255))
        bitbuf >>= np.uint64(8)
        nbits -= 8
        m = _average_from_index(j0)
        for a in range(pos, pos + n, segment):
            b_end = min(pos + n, a + segment)
            slot = x & (M - 1)
            head = 0
            while HEADER_CUM_NB[head + 1] <= slot:
                head += 1
            x = HEADER_FREQ_NB[head] * (x >> PREC) + slot - HEADER_CUM_NB[head]
            if x < low:
                if wi >= words.size:
                    return 1
                x = (x << 32) | np.int64(words[wi])
                wi += 1
            if head == ZERO_SEGMENT:
                for t in range(a, b_end):
                    out[t] = 0
                    m -= m >> EMA_SHIFT
                continue
            static = head >= STATIC
            j_fixed = 0
            if static:
                if nbits < STATIC_BITS:
                    while nbits <= 56 and rpos < n_raw:
                        bitbuf |= np.uint64(raw[rpos]) << np.uint64(nbits)
                        rpos += 1
                        nbits += 8
                    if nbits < STATIC_BITS:
                        return 2
                delta = np.int64(bitbuf & np.uint64((1 << STATIC_BITS) - 1))
                bitbuf >>= np.uint64(STATIC_BITS)
                nbits -= STATIC_BITS
                j_fixed = max(0, _scale_index(m) + CONTEXT_OFFSET + delta - 8)
            base = (head - STATIC if static else head) * N_COLUMNS
            for t in range(a, b_end):
                if static:
                    j = j_fixed
                elif m < 1:
                    j = CONTEXT_OFFSET
                else:
                    fbuf[0] = float(m)
                    j = (ibuf[0] >> 49) - (1023 << 3) + CONTEXT_OFFSET
                if j < J_SPLIT:
                    col, k = j, 0
                else:
                    col, k = J_SPLIT + ((j - J_SPLIT) & 7), ((j - J_SPLIT) >> 3) + 1
                tab = base + col
                slot = x & (M - 1)
                s = np.int64(lut[tab, slot >> LUT_SHIFT])
                while cum[tab, s + 1] <= slot:
                    s += 1
                x = np.int64(freq[tab, s]) * (x >> PREC) + slot - cum[tab, s]
                if x < low:
                    if wi >= words.size:
                        return 1
                    x = (x << 32) | np.int64(words[wi])
                    wi += 1
                K = Ks[col]
                lo = np.int64(0)
                if k:
                    if nbits < k:
                        if rpos + 4 <= n_raw:  # four bytes at once (nbits < 27 here)
                            bitbuf |= (np.uint64(raw[rpos]) | (np.uint64(raw[rpos + 1]) << np.uint64(8))
                                       | (np.uint64(raw[rpos + 2]) << np.uint64(16))
                                       | (np.uint64(raw[rpos + 3]) << np.uint64(24))) << np.uint64(nbits)
                            rpos += 4
                            nbits += 32
                        while nbits <= 56 and rpos < n_raw:
                            bitbuf |= np.uint64(raw[rpos]) << np.uint64(nbits)
                            rpos += 1
                            nbits += 8
                    if nbits < k:
                        return 2
                    lo = np.int64(bitbuf & ((np.uint64(1) << np.uint64(k)) - np.uint64(1)))
                    bitbuf >>= np.uint64(k)
                    nbits -= k
                if s == 2 * K + 1:
                    e, bitbuf, nbits, rpos = _read_escape(raw, bitbuf, nbits, rpos)
                    if e == 0:
                        return 4
                    hi = e - K if e < 0 else K + e
                else:
                    hi = s - K
                v = (hi << k) + lo
                out[t] = v
                mag = min(abs(v), MAG_CAP)
                m += ((mag << 4) - m) >> EMA_SHIFT
        pos += n
    if exact and (x != low or wi != words.size):
        return 5
    if exact and (rpos != n_raw or nbits >= 8 or bitbuf != 0):  # raw bits: only the last byte's padding left
        return 6
    return 0


def decode_rows(payload: bytes, lengths, segment: int, exact: bool = True) -> list[np.ndarray]:
    """Inverse of :func:`encode_rows` for rows of the given lengths; ``exact=False`` decodes
    the first rows of a stream that holds more (the stream's end is then not checked)."""
    lengths = np.asarray(lengths, np.int64)
    return split_rows(decode_flat(payload, lengths, segment, exact), lengths)


def split_rows(flat: np.ndarray, lengths) -> list[np.ndarray]:
    ends = np.cumsum(lengths)
    return [flat[e - n : e] for e, n in zip(ends.tolist(), np.asarray(lengths).tolist())]


_ERRORS = {1: "range-coder words exhausted", 2: "raw bits exhausted", 4: "bad escape code",
           5: "range-coder final state wrong", 6: "raw bits left over"}


def decode_flat(payload: bytes, lengths: np.ndarray, segment: int, exact: bool = True) -> np.ndarray:
    """All rows end to end (int64)."""
    if len(payload) < 4:
        raise CorruptArchiveError("residual stream shorter than its header")
    (n_words,) = struct.unpack_from("<I", payload)
    if 4 + 4 * n_words > len(payload):
        raise CorruptArchiveError("residual stream truncated")
    words = np.frombuffer(payload, "<u4", n_words, 4).astype(np.uint32)
    raw = np.frombuffer(payload, np.uint8, len(payload) - 4 - 4 * n_words, 4 + 4 * n_words)
    out = np.empty(int(np.sum(lengths)), np.int64)
    freq, cum, Ks, lut, _ = tables()
    status = _decode_kernel(words, raw, np.asarray(lengths, np.int64), int(segment), freq, cum, Ks, lut, out, exact)
    if status:
        raise CorruptArchiveError(f"residual stream cannot be decoded: {_ERRORS.get(status, status)}")
    return out
