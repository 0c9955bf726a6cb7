"""Context-adaptive range coding of quantized wavelet coefficients (``sdwt-v2``).

At the steps a PRDN target asks for, most wavelet coefficients are zero, and the non-zero ones
cluster: in time (a burst spans neighbouring coefficients), across scales (a coefficient whose
parent is non-zero is likely non-zero) and in whole sub-bands (a principal component far below
the step is zero everywhere). Forward-adaptive Laplace classes per segment (``residual_coder``)
pay at least ≈ 0.2 bit per zero; here each coefficient is coded as binary decisions whose
probabilities adapt as the stream goes and depend on its neighbours, so long runs of zeros cost
almost nothing.

Layout of one block (rows × the concatenated sub-bands, approximation first):

- per row, per sub-band, a *class* K (0…MAX_CLASS): 0 means the whole sub-band is zero,
  otherwise K − CLASS_ZERO = ⌊log2 mean|q|⌋ (clipped). It is coded as 5 binary decisions
  (a tree, most significant first) in the context of the class of the same sub-band one row
  above (or of the previous sub-band on the first row).
- then, for a sub-band with K > 0, every coefficient q: its magnitude's high part
  h = |q| >> s, s = max(0, K − CLASS_ZERO − 1), as a "non-zero" decision in the context of
  (K, the two previous high parts, the parent coefficient one scale coarser) and, when
  non-zero, h − 1 in unary (UNARY decisions at most, in the context of K, the previous high
  part and the position; beyond, the rest as a wide integer); then the s low bits and the sign
  of a non-zero q as raw bits.

Each decision's probability is the mean of a fast (shift FAST) and a slow (shift SLOW)
estimate, both 16-bit integers that start at one half: encoder and decoder agree exactly on
any machine. The range coder is ``stream_entropy``'s (32-bit range, LZMA-style carry).
"""

from __future__ import annotations

import numba
import numpy as np

from ...errors import CorruptArchiveError
from ..lossless import stream_entropy as rc

MAX_CLASS = 31
CLASS_ZERO = 12  # class K ≥ 1 means ⌊log2 mean|q|⌋ = K − CLASS_ZERO
CLASS_BITS = 5
N_KC = 16  # coefficient contexts distinguish classes up to this
UNARY = 14
FAST, SLOW = 4, 6
HALF = 1 << (rc.PROB_BITS - 1)
P_MIN, P_MAX = 32, (1 << rc.PROB_BITS) - 32
MAX_MAGNITUDE = 1 << 41

# context tables (one pair of estimates per context), laid out one after another
_N_CLASS_CTX = (MAX_CLASS + 1) * (1 << CLASS_BITS)
_N_SIG_CTX = N_KC * 3 * 2 * 3
_N_MAG_CTX = N_KC * 4 * UNARY
_SIG0 = _N_CLASS_CTX
_MAG0 = _SIG0 + _N_SIG_CTX
N_CONTEXTS = _MAG0 + _N_MAG_CTX


def class_of(band: np.ndarray) -> int:
    """A sub-band's class: 0 if all zero, else CLASS_ZERO + ⌊log2 mean|q|⌋ within 1…MAX_CLASS."""
    total = float(np.abs(band).sum())
    if total == 0:
        return 0
    return int(np.clip(np.floor(np.log2(total / band.size)) + CLASS_ZERO, 1, MAX_CLASS))


@numba.njit(cache=True, nogil=True, inline="always")
def _prob(pf, ps, c):
    p = ((pf[c] >> 8) + (ps[c] >> 8)) >> 1
    return min(max(p, P_MIN), P_MAX)


@numba.njit(cache=True, nogil=True, inline="always")
def _adapt(pf, ps, c, bit):
    # pf[c] and ps[c] hold the estimates in their high bits, the decisions seen (≤ 255) in the low 8:
    # the first decisions move the estimates by 1/2, 1/4, … (learning), later ones by 2**-FAST, 2**-SLOW
    seen = pf[c] & 255
    fast, slow = min(FAST, _bit_length(seen + 1)), min(SLOW, _bit_length(seen + 1))
    f, s = pf[c] >> 8, ps[c] >> 8
    if bit:
        f += ((1 << rc.PROB_BITS) - f) >> fast
        s += ((1 << rc.PROB_BITS) - s) >> slow
    else:
        f -= f >> fast
        s -= s >> slow
    pf[c] = (f << 8) | min(seen + 1, 255)
    ps[c] = s << 8


@numba.njit(cache=True, nogil=True, inline="always")
def _bit_length(v):
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _put_bit(buf, st, pf, ps, c, bit):
    p1 = _prob(pf, ps, c)  # probability of a 1
    if bit:
        rc.put(buf, st, (1 << rc.PROB_BITS) - p1, p1)
    else:
        rc.put(buf, st, 0, (1 << rc.PROB_BITS) - p1)
    _adapt(pf, ps, c, bit)


@numba.njit(cache=True, nogil=True, inline="always")
def _get_bit(data, st, pf, ps, c):
    p1 = _prob(pf, ps, c)
    p0 = (1 << rc.PROB_BITS) - p1
    bit = 1 if rc.get_target(st) >= p0 else 0
    if bit:
        rc.take(data, st, p0, p1)
    else:
        rc.take(data, st, 0, p0)
    _adapt(pf, ps, c, bit)
    return bit


@numba.njit(cache=True, nogil=True, inline="always")
def _sig_context(kc, h1, h2, parent):
    return _SIG0 + ((kc * 3 + min(h1, 2)) * 2 + min(h2, 1)) * 3 + min(parent, 2)


@numba.njit(cache=True, nogil=True, inline="always")
def _class_ref(classes, r, b):
    if r > 0:
        return classes[r - 1, b]
    return classes[r, b - 1] if b > 0 else 0


@numba.njit(cache=True, nogil=True)
def _encode(q, starts, classes, buf, st):
    pf = np.full(N_CONTEXTS, HALF << 8, np.int64)
    ps = np.full(N_CONTEXTS, HALF << 8, np.int64)
    n_rows, n_bands = classes.shape
    for r in range(n_rows):
        for b in range(n_bands):
            buf = rc.reserve(buf, st)
            K = classes[r, b]
            base, node = _class_ref(classes, r, b) * (1 << CLASS_BITS), 1
            for j in range(CLASS_BITS - 1, -1, -1):
                bit = (K >> j) & 1
                _put_bit(buf, st, pf, ps, base + node, bit)
                node = 2 * node + bit
            if K == 0:
                continue
            s = max(0, K - CLASS_ZERO - 1)
            kc = min(K, N_KC - 1)
            lo, hi = starts[b], starts[b + 1]
            h1, h2 = 0, 0
            for i in range(lo, hi):
                buf = rc.reserve(buf, st)
                v = q[r, i]
                a = -v if v < 0 else v
                h = a >> s
                parent = 0
                if b >= 1:
                    pv = q[r, starts[b - 1] + min((i - lo) >> (1 if b >= 2 else 0), starts[b] - starts[b - 1] - 1)]
                    parent = -pv if pv < 0 else pv
                _put_bit(buf, st, pf, ps, _sig_context(kc, h1, h2, parent), 1 if h > 0 else 0)
                if h > 0:
                    m = h - 1
                    c0 = _MAG0 + (kc * 4 + min(h1, 3)) * UNARY
                    for j in range(UNARY):
                        bit = 1 if m > j else 0
                        _put_bit(buf, st, pf, ps, c0 + j, bit)
                        if bit == 0:
                            break
                    if m >= UNARY:
                        rc.put_wide(buf, st, m - UNARY)
                if s:
                    rc.put_bits(buf, st, a, s)
                if a:
                    rc.put_raw(buf, st, 1 if v < 0 else 0, 1)
                h2, h1 = h1, h
    return buf


@numba.njit(cache=True, nogil=True)
def _decode(data, starts, n_rows, out):
    """Fills ``out`` (n_rows × total); returns 0, or 1 for a stream no encoder writes (values out
    of range, or not ended as ``finish`` ends a stream)."""
    st = rc.start_decoder(data, 0)
    pf = np.full(N_CONTEXTS, HALF << 8, np.int64)
    ps = np.full(N_CONTEXTS, HALF << 8, np.int64)
    n_bands = starts.size - 1
    classes = np.zeros((n_rows, n_bands), np.int64)
    for r in range(n_rows):
        for b in range(n_bands):
            base, node = _class_ref(classes, r, b) * (1 << CLASS_BITS), 1
            for j in range(CLASS_BITS):
                node = 2 * node + _get_bit(data, st, pf, ps, base + node)
            K = node - (1 << CLASS_BITS)
            classes[r, b] = K
            lo, hi = starts[b], starts[b + 1]
            if K == 0:
                out[r, lo:hi] = 0
                continue
            s = max(0, K - CLASS_ZERO - 1)
            kc = min(K, N_KC - 1)
            h1, h2 = 0, 0
            for i in range(lo, hi):
                parent = 0
                if b >= 1:
                    pv = out[r, starts[b - 1] + min((i - lo) >> (1 if b >= 2 else 0), starts[b] - starts[b - 1] - 1)]
                    parent = -pv if pv < 0 else pv
                h = 0
                if _get_bit(data, st, pf, ps, _sig_context(kc, h1, h2, parent)):
                    m = 0
                    c0 = _MAG0 + (kc * 4 + min(h1, 3)) * UNARY
                    for j in range(UNARY):
                        if _get_bit(data, st, pf, ps, c0 + j) == 0:
                            break
                        m += 1
                    if m >= UNARY:
                        w = rc.get_wide(data, st)
                        if w < 0 or w > MAX_MAGNITUDE:
                            return 1
                        m += w
                    h = m + 1
                if h > (MAX_MAGNITUDE >> s):
                    return 1
                a = (h << s) | rc.get_bits(data, st, s) if s else h
                if a > MAX_MAGNITUDE:
                    return 1
                if a and rc.get_raw(data, st, 1):
                    a = -a
                out[r, i] = a
                h2, h1 = h1, h
            if st[rc.OVER] > rc.MAX_OVERREAD:
                return 1
    return 0 if rc.ended_canonically(data, 0, st) else 1


def band_starts(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, np.int64))]).astype(np.int64)


def encode(q: np.ndarray, sizes) -> bytes:
    """Rows of quantized coefficients ``q`` (int64, n_rows × sum(sizes)), sub-bands of ``sizes``."""
    q = np.ascontiguousarray(q, np.int64)
    starts = band_starts(sizes)
    if q.ndim != 2 or q.shape[1] != starts[-1]:
        raise ValueError(f"coefficients of shape {q.shape} for sub-bands totalling {starts[-1]}")
    if q.size and np.abs(q).max() > MAX_MAGNITUDE:
        raise ValueError("coefficients too large to code")
    classes = np.array([[class_of(q[r, starts[b]:starts[b + 1]]) for b in range(len(starts) - 1)]
                        for r in range(q.shape[0])], np.int64).reshape(q.shape[0], len(starts) - 1)
    st, buf = rc.new_encoder(max(256, q.size // 4))
    buf = _encode(q, starts, classes, buf, st)
    return bytes(rc.finish(buf, st))


def decode(codec_id: str, payload: bytes, n_rows: int, sizes) -> np.ndarray:
    """The inverse of :func:`encode`; a stream no encoder writes raises CorruptArchiveError."""
    starts = band_starts(sizes)
    out = np.empty((n_rows, int(starts[-1])), np.int64)
    if n_rows and starts[-1] and _decode(np.frombuffer(payload, np.uint8), starts, n_rows, out):
        raise CorruptArchiveError(f"{codec_id} coefficient stream damaged")
    return out
