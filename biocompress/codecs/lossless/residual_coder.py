"""Range coding of prediction residuals with forward-adaptive Laplace scale classes.

Each row of residuals is cut into segments of ``segment`` samples. Every
segment gets a *scale class* c, meaning a Laplace scale s = 2**((c - 8) / 4).
Large scales split a residual into ``k`` raw low bits and a high part
``r >> k`` whose scale is below 32, so every class table stays small. High parts
outside a class table's range ±K are coded as an escape symbol followed by the
exact value in a side array.

Symbols are range-coded with constriction, grouped by class: the decoder first
reads the classes, so it knows which samples belong to which class and decodes
each group with one call on a fixed categorical table (fast: no per-symbol
parameters).
"""

from __future__ import annotations

from functools import lru_cache

import constriction
import numba
import numpy as np

from ...errors import CorruptArchiveError
from ..bytepack import pack_arrays, unpack_arrays

N_CLASSES = 140
_CLASS_ZERO = 8  # class of scale 1
_TABLE_SCALE_MAX = 32.0
_TAIL = 20.0  # table covers ±_TAIL scales of the high part
_ESCAPE_COST_BITS = 80.0
_CLASS_DELTA_MODEL = constriction.stream.model.QuantizedLaplace(
    -N_CLASSES, N_CLASSES, 0.0, 1.5
)


def class_scale(c) -> np.ndarray:
    return 2.0 ** ((np.asarray(c, np.float64) - _CLASS_ZERO) / 4.0)


def class_low_bits(c) -> np.ndarray:
    s = class_scale(c)
    return np.maximum(0, np.ceil(np.log2(s / _TABLE_SCALE_MAX))).astype(np.int64)


@lru_cache(maxsize=None)
def _table(c: int):
    """(probabilities, K, k) for class c: high part symbols -K..K then escape."""
    s = float(class_scale(c))
    k = int(class_low_bits(c))
    step = 1 << k
    K = int(np.ceil(_TAIL * s / step)) + 1
    j = np.arange(-K, K + 2, dtype=np.float64)
    edges = j * step - 0.5  # high part j collects residuals in [j·step, (j+1)·step)
    cdf = np.where(edges < 0, 0.5 * np.exp(edges / s), 1.0 - 0.5 * np.exp(-edges / s))
    probs = np.diff(cdf)
    tail = cdf[0] + (1.0 - cdf[-1])
    probs = np.append(probs, max(tail, 1e-12))
    probs = np.maximum(probs, 1e-12)
    return probs / probs.sum(), K, k


# Shaped coding (lpc-v3): each segment also picks a generalized-Gaussian shape β, density
# ∝ exp(−(|x|/α)^β) with α = s·Γ(1/β)/Γ(2/β) so that its mean |x| is the class scale s.
# Prediction residuals are neither Gaussian nor Laplacian (kurtosis 3-6, bursts above).
SHAPES = (0.75, 1.25, 2.0)
_ALPHA_OVER_SCALE = (0.5935092778940371, 1.3029767363855875, 1.7724538509055159)
_SHAPE_MODEL = constriction.stream.model.Categorical(np.full(len(SHAPES), 1.0 / len(SHAPES)), perfect=False)


@lru_cache(maxsize=None)
def _shaped_table(c: int, shape: int):
    """(probabilities, K, k) of class c with shape SHAPES[shape]: bin centres, then escape."""
    s = float(class_scale(c))
    k = int(class_low_bits(c))
    step = 1 << k
    K = int(np.ceil(_TAIL * s / step)) + 1
    beta, alpha = SHAPES[shape], s * _ALPHA_OVER_SCALE[shape]
    centre = lambda j: np.abs(j * float(step) + (step - 1) / 2.0)  # noqa: E731
    dens = np.exp(-((centre(np.arange(-K, K + 1)) / alpha) ** beta))
    outside = np.concatenate([np.arange(-4 * K - 4, -K), np.arange(K + 1, 4 * K + 4)])
    tail = float(np.exp(-((centre(outside) / alpha) ** beta)).sum())
    probs = np.append(dens, max(tail, 1e-9 * float(dens.sum())))
    probs = np.maximum(probs / probs.sum(), 1e-12)
    return probs / probs.sum(), K, k


def _any_table(c: int, shape: int | None):
    return _table(c) if shape is None else _shaped_table(c, shape)


@lru_cache(maxsize=None)
def _model(c: int, shape: int | None = None):
    probs, _, _ = _any_table(c, shape)
    return constriction.stream.model.Categorical(probs.astype(np.float64), perfect=False)


@lru_cache(maxsize=None)
def _log2_table(c: int, shape: int | None = None):
    probs, K, k = _any_table(c, shape)
    return -np.log2(probs), K, k


def _segment_bounds(lengths: np.ndarray, segment: int):
    """Segment lengths (flattened over rows) for rows of the given lengths."""
    lengths = np.asarray(lengths, np.int64)
    full, rest = np.divmod(lengths, segment)
    counts = full + (rest > 0)
    segs = np.full(int(counts.sum()), segment, np.int64)
    ends = np.cumsum(counts)
    segs[ends[rest > 0] - 1] = rest[rest > 0]
    return segs


@lru_cache(maxsize=2)
def _flat_tables(shaped: bool = False):
    """All tables' -log2 p end to end (key = class, or class·len(SHAPES) + shape)."""
    keys = [(c, sh) for c in range(N_CLASSES) for sh in range(len(SHAPES))] if shaped else \
        [(c, None) for c in range(N_CLASSES)]
    tables = [_log2_table(c, sh) for c, sh in keys]
    K = np.array([t[1] for t in tables], np.int64)
    k = np.array([t[2] for t in tables], np.int64)
    offsets = np.concatenate([[0], np.cumsum(2 * K + 2)[:-1]])
    return np.concatenate([t[0] for t in tables]), offsets, K, k


@numba.njit(cache=True, nogil=True)
def _refine_keys(res, seg_len, guess, flat, offsets, K_of, k_of, escape_bits, n_shapes):
    # Per segment, the table key (class·n_shapes + shape) among classes guess-2..guess+2
    # and every shape that codes it in fewest bits.
    out = np.empty(seg_len.size, np.int64)
    pos = 0
    for j in range(seg_len.size):
        n = seg_len[j]
        best_bits = np.inf
        best_key = 0
        lo = min(max(guess[j] - 2, 0), N_CLASSES - 1)
        hi_c = min(max(guess[j] + 2, 0), N_CLASSES - 1)
        for c in range(lo, hi_c + 1):
            for sh in range(n_shapes):
                key = c * n_shapes + sh
                K, k, base = K_of[key], k_of[key], offsets[key]
                bits = 0.0
                for t in range(pos, pos + n):
                    hi = res[t] >> k
                    if hi > K or hi < -K:
                        bits += flat[base + 2 * K + 1] + k + escape_bits
                    else:
                        bits += flat[base + hi + K] + k
                if bits < best_bits:
                    best_bits, best_key = bits, key
        out[j] = best_key
        pos += n
    return out


def _guess_classes(res: np.ndarray, seg_len: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    mean_abs = np.add.reduceat(np.abs(res), starts) / seg_len
    return np.rint(4 * np.log2(np.maximum(mean_abs, 1e-3)) + _CLASS_ZERO).astype(np.int64)


def choose_classes(res: np.ndarray, seg_len: np.ndarray, shaped: bool = False) -> np.ndarray:
    """Table key per segment: start at the maximum-likelihood scale, refine by exact cost.

    Unshaped: the key is the class. Shaped: class·len(SHAPES) + shape.
    """
    if res.size == 0:
        return np.zeros(0, np.int64)
    guess = _guess_classes(res, seg_len)
    flat, offsets, K_of, k_of = _flat_tables(shaped)
    n_shapes = len(SHAPES) if shaped else 1
    return _refine_keys(res, seg_len, guess, flat, offsets, K_of, k_of, _ESCAPE_COST_BITS, n_shapes)


def _pack_low_bits(lo: np.ndarray, k: int) -> np.ndarray:
    bits = ((lo[:, None] >> np.arange(k, dtype=np.int64)) & 1).astype(np.uint8)
    return np.packbits(bits.ravel(), bitorder="little")


@numba.njit(cache=True, nogil=True)
def _group_by_key(seg_key, seg_len, n_keys):
    # Stable counting sort of the samples by their segment's key, done per segment:
    # order[i] = position (in row order) of the i-th sample once grouped by key.
    counts = np.zeros(n_keys + 1, np.int64)
    for j in range(seg_key.size):
        counts[seg_key[j] + 1] += seg_len[j]
    starts = np.cumsum(counts)
    fill = starts[:-1].copy()
    order = np.empty(starts[-1], np.int64)
    pos = 0
    for j in range(seg_key.size):
        c = seg_key[j]
        for t in range(seg_len[j]):
            order[fill[c] + t] = pos + t
        fill[c] += seg_len[j]
        pos += seg_len[j]
    return order, starts


def _class_groups(classes: np.ndarray, seg_len: np.ndarray, n_keys: int = N_CLASSES):
    """Samples grouped by table key: (order, present keys, bounds of each key's group)."""
    order, starts = _group_by_key(np.asarray(classes, np.int64), np.asarray(seg_len, np.int64), n_keys)
    present = np.flatnonzero(np.diff(starts))
    bounds = np.append(starts[present], starts[-1])
    return order, present, bounds


def _split_key(key: int, shaped: bool):
    return (key // len(SHAPES), key % len(SHAPES)) if shaped else (key, None)


def encode_rows(rows: list[np.ndarray], segment: int, shaped: bool = False) -> bytes:
    """Range-code int64 residual rows; row lengths must be known to the decoder.

    ``shaped`` (lpc-v3): every segment also has a shape out of :data:`SHAPES`.
    """
    lengths = np.array([r.size for r in rows], np.int64)
    res = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    seg_len = _segment_bounds(lengths, segment)
    keys = choose_classes(res, seg_len, shaped)
    n_shapes = len(SHAPES) if shaped else 1
    order, present, bounds = _class_groups(keys, seg_len, N_CLASSES * n_shapes)
    res_sorted = res[order]

    encoder = constriction.stream.queue.RangeEncoder()
    deltas = np.diff(keys // n_shapes, prepend=0).astype(np.int32)
    encoder.encode(deltas, _CLASS_DELTA_MODEL)
    if shaped:
        encoder.encode((keys % n_shapes).astype(np.int32), _SHAPE_MODEL)
    low_parts, escapes = [], []
    for i, key in enumerate(present):
        seg = res_sorted[bounds[i] : bounds[i + 1]]
        c, shape = _split_key(int(key), shaped)
        _, K, k = _any_table(c, shape)
        hi = seg >> k
        esc = np.abs(hi) > K
        symbols = np.where(esc, 2 * K + 1, hi + K).astype(np.int32)
        encoder.encode(symbols, _model(c, shape))
        escapes.append(hi[esc])
        if k:
            low_parts.append(_pack_low_bits(seg & ((1 << k) - 1), k))
    low = np.concatenate(low_parts) if low_parts else np.zeros(0, np.uint8)
    esc_all = np.concatenate(escapes) if escapes else np.zeros(0, np.int64)
    return pack_arrays(encoder.get_compressed(), low, esc_all.astype(np.int64))


def decode_rows(payload: bytes, lengths, segment: int, shaped: bool = False) -> list[np.ndarray]:
    try:
        return _decode_rows(payload, lengths, segment, shaped)
    except (AssertionError, ValueError, OverflowError) as exc:  # constriction's reports of bad data
        raise CorruptArchiveError(f"residual stream cannot be decoded: {exc}") from exc


def _decode_rows(payload: bytes, lengths, segment: int, shaped: bool) -> list[np.ndarray]:
    words, low, esc_all = unpack_arrays(payload, 3)
    if (words.dtype, low.dtype, esc_all.dtype) != (np.uint32, np.uint8, np.int64):
        raise CorruptArchiveError("residual stream: unexpected array types")
    lengths = np.asarray(lengths, np.int64)
    seg_len = _segment_bounds(lengths, segment)
    decoder = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
    deltas = decoder.decode(_CLASS_DELTA_MODEL, seg_len.size).astype(np.int64)
    classes = np.cumsum(deltas)
    if classes.size and (classes.min() < 0 or classes.max() >= N_CLASSES):
        raise CorruptArchiveError("residual stream: scale class out of range")
    n_shapes = len(SHAPES) if shaped else 1
    keys = classes * n_shapes
    if shaped:
        keys += decoder.decode(_SHAPE_MODEL, seg_len.size).astype(np.int64)
    order, present, bounds = _class_groups(keys, seg_len, N_CLASSES * n_shapes)
    symbols = np.empty(order.size, np.int32)
    K_of = np.empty(present.size, np.int64)
    k_of = np.empty(present.size, np.int64)
    for i, key in enumerate(present):
        c, shape = _split_key(int(key), shaped)
        _, K_of[i], k_of[i] = _any_table(c, shape)
        symbols[bounds[i] : bounds[i + 1]] = decoder.decode(_model(c, shape), int(bounds[i + 1] - bounds[i]))
    status, res = _unpack_symbols(symbols, bounds, K_of, k_of, esc_all, low, order)
    if status:
        raise CorruptArchiveError("residual stream: " + ("missing escape values" if status == 1 else "low bits truncated"))
    ends = np.cumsum(lengths)
    return [res[e - m : e] for e, m in zip(ends.tolist(), lengths.tolist())]


@numba.njit(cache=True, nogil=True)
def _unpack_symbols(symbols, bounds, K_of, k_of, esc, low, order):
    # Symbols (grouped by key) → residuals in row order: escapes replaced from ``esc``, low
    # bits appended from ``low`` (one LSB-first bit string per group, each from a fresh byte).
    res = np.empty(symbols.size, np.int64)
    esc_pos = 0
    byte0 = 0
    for g in range(K_of.size):
        K, k = K_of[g], k_of[g]
        n = bounds[g + 1] - bounds[g]
        nbytes = (n * k + 7) // 8
        if byte0 + nbytes > low.size:
            return 2, res
        for t in range(bounds[g], bounds[g + 1]):
            sym = symbols[t]
            if sym == 2 * K + 1:
                if esc_pos >= esc.size:
                    return 1, res
                hi = esc[esc_pos]
                esc_pos += 1
            else:
                hi = np.int64(sym) - K
            lo = np.int64(0)
            bit = (t - bounds[g]) * k
            for b in range(k):
                pos = bit + b
                lo |= np.int64((low[byte0 + (pos >> 3)] >> (pos & 7)) & 1) << b
            res[order[t]] = (hi << k) | lo
        byte0 += nbytes
    return 0, res
