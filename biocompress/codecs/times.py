"""times-v1: a stream's per-sample timestamps (float64 seconds), exactly.

Input and output are f64 codes (the order-preserving map of the float64 bits, one row).
Each timestamp is predicted from the ones before it, or from a line, with IEEE-754
float64 arithmetic that every machine does alike; what is stored is the difference
between the code of the timestamp and the code of its prediction (in units in the last
place, wrapping modulo 2^64, so any bit pattern survives). A regular series gives zero
differences almost everywhere, and only the places where they are not zero are stored
(docs/FORMAT.md §8.9): a regular stream's timestamps cost a few dozen bytes a block.

Predictors (``a``, ``d``, ``k`` are stored in the payload):

* ``PREVIOUS`` — the previous timestamp (irregular series);
* ``STEP`` — the previous timestamp plus ``d``: LSL's own timestamps, where the samples
  after a chunk's first are stamped ``previous + 1.0 / srate``;
* ``LINE`` — ``a + (k + i) · d``, and ``RATE`` — ``a + (k + i) / d``: a clock that
  stamps sample ``k + i`` of a stream from its first timestamp.
"""

from __future__ import annotations

import struct
import zlib

import numba
import numpy as np

from ..errors import CorruptArchiveError
from .base import Codec, check_2d_int, check_declared_shape, register_codec
from .float_codes import codes_to_f64, f64_to_codes

PREVIOUS, STEP, LINE, RATE = 0, 1, 2, 3
_HEADER = struct.Struct("<HIBddqI")  # n_ch (=1), n, predictor, a, d, k, m (non-zero differences)
MAX_K = 1 << 52  # k + i stays an exact float64 integer
_FLIP = 0x7FFFFFFFFFFFFFFF


def predictions(kind: int, a: float, d: float, k: int, x: np.ndarray) -> np.ndarray:
    """Codes of the predictions of every timestamp of ``x`` (the encoder knows them all).

    Vectorised: each prediction uses only timestamps before it, which the decoder will
    have rebuilt exactly."""
    n = x.size
    if kind in (PREVIOUS, STEP):
        before = x[:-1]
        if kind == STEP:
            with np.errstate(invalid="ignore", over="ignore"):
                before = np.where(np.isnan(before), before, before + d)  # a NaN is kept bit for bit
        return f64_to_codes(np.concatenate([np.array([a], np.float64), before]))[:n]
    index = np.arange(n, dtype=np.float64) + np.float64(k)  # exact integers
    with np.errstate(over="ignore", divide="ignore"):
        return f64_to_codes(np.float64(a) + (index * np.float64(d) if kind == LINE else index / np.float64(d)))


@numba.njit(cache=True, nogil=True)
def _decode_step(diffs, first, d):
    """STEP: codes of x[i] = code(x[i-1] + d) + diffs[i], one sample after the other."""
    n = diffs.size
    codes = np.empty(n, np.int64)
    bits = np.empty(n, np.int64)
    values = bits.view(np.float64)
    for i in range(n):
        if i == 0:
            c = first
        else:
            prev = values[i - 1]
            values[i] = prev if prev != prev else prev + d
            c = bits[i]
            if c < 0:
                c ^= _FLIP
        c = np.int64(np.uint64(c) + np.uint64(diffs[i]))  # modulo 2^64
        codes[i] = c
        bits[i] = c ^ _FLIP if c < 0 else c
    return codes


def _zigzag(r: np.ndarray) -> np.ndarray:
    return ((r.astype(np.uint64) << np.uint64(1)) ^ (r >> 63).astype(np.uint64)).astype(np.uint64)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return ((z >> np.uint64(1)) ^ (np.uint64(0) - (z & np.uint64(1)))).view(np.int64)


def _planes(a: np.ndarray) -> bytes:
    """Little-endian bytes of ``a`` grouped by significance (byte 0 of every value, then byte 1, …)."""
    le = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(le.view(np.uint8).reshape(a.size, a.dtype.itemsize).T).tobytes()


def _from_planes(raw: bytes, dtype, m: int) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    planes = np.frombuffer(raw, np.uint8).reshape(width, m)
    return np.ascontiguousarray(planes.T).view(np.dtype(dtype).newbyteorder("<")).reshape(m).astype(dtype)


def _cost(diffs: np.ndarray) -> float:
    """Rough bits for the non-zero differences (position and value): what the encoder minimises."""
    nz = diffs[diffs != 0]
    if not nz.size:
        return 0.0
    mag = np.abs(nz.astype(np.float64))
    return float(nz.size * 10 + np.log2(mag + 1).sum())


@register_codec
class TimesCodec(Codec):
    """Timestamps (one row of f64 codes), exactly; see the module docstring."""

    codec_id = "times-v1"
    config_fields = ()
    level = 9

    def encode(self, codes, hints=()) -> bytes:
        return self.encode_with(codes, hints)[0]

    def encode_with(self, codes, hints=(), *, search: bool = True) -> tuple[bytes, tuple]:
        """The payload and the predictor chosen, ``(kind, a, d, k)``.

        ``hints``: more predictors to try, e.g. the previous block's line moved on by its
        length, or the stream's nominal period (a stream lane passes them); without
        ``search``, only those (and the previous timestamp when none is usable)."""
        codes = check_2d_int(codes)
        if codes.shape[0] != 1:
            raise ValueError(f"{self.codec_id} codes one row of timestamps, got {codes.shape[0]} rows")
        x = codes_to_f64(codes[0])
        best, best_cost, best_diffs = None, None, None
        for cand in self._candidates(x, hints, search):
            kind, a, d, k = cand
            diffs = codes[0] - predictions(kind, a, d, k, x)  # int64 arithmetic wraps: modulo 2^64
            cost = _cost(diffs)
            if best is None or cost < best_cost:
                best, best_cost, best_diffs = cand, cost, diffs
            if cost == 0:
                break
        kind, a, d, k = best
        where = np.flatnonzero(best_diffs)
        gaps = np.diff(np.concatenate([[-1], where])).astype(np.int64) - 1
        body = _planes(gaps.astype(np.uint32)) + _planes(_zigzag(best_diffs[where]))
        head = _HEADER.pack(1, x.size, kind, a, d, k, where.size)
        return head + zlib.compress(body, self.level), best

    @staticmethod
    def _candidates(x: np.ndarray, hints, search: bool = True) -> list[tuple]:
        n = x.size
        first = float(x[0]) if n else 0.0
        found, periods, rates = [], [], []
        for kind, a, d, k in hints:
            if kind in (PREVIOUS, STEP):  # these predict the first timestamp as the one stored
                a, k = first, 0
                d = d if kind == STEP else 0.0
            if _usable(kind, a, d, k):
                found.append((kind, float(a), float(d), int(k)))
            if kind == STEP and np.isfinite(d):
                periods.append(float(d))
        if not search:
            return found or [(PREVIOUS, first, 0.0, 0)]
        found.insert(0, (PREVIOUS, first, 0.0, 0))
        finite = x[np.isfinite(x)]
        if finite.size >= 2:
            with np.errstate(over="ignore", invalid="ignore"):
                steps = np.diff(finite)
            steps = steps[np.isfinite(steps)]
            if steps.size:
                dm = float(np.median(steps))
                periods.append(dm)
                if dm > 0 and np.isfinite(1.0 / dm) and round(1.0 / dm) >= 1:
                    rates.append(float(round(1.0 / dm)))
                    periods.append(1.0 / rates[-1])
        for d in dict.fromkeys(p for p in periods if p != 0):  # a step of 0 is the previous timestamp
            found.append((STEP, first, d, 0))
            if np.isfinite(first):
                found.append((LINE, first, d, 0))
        for r in dict.fromkeys(rates):
            if np.isfinite(first):
                found.append((RATE, first, r, 0))
        return [c for c in dict.fromkeys(found) if _usable(*c)]

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size:
            raise CorruptArchiveError(f"{self.codec_id} payload shorter than its header")
        n_ch, n, kind, a, d, k, m = _HEADER.unpack_from(payload)
        if n_ch != 1:
            raise CorruptArchiveError(f"{self.codec_id} payload declares {n_ch} rows, not 1")
        check_declared_shape(self.codec_id, n_ch, n)
        if not _usable(kind, a, d, k) or m > n:
            raise CorruptArchiveError(f"{self.codec_id} payload has an impossible predictor or count")
        inflate = zlib.decompressobj()
        try:  # never inflate past the declared size
            body = inflate.decompress(payload[_HEADER.size :], 12 * m + 1)
        except zlib.error as exc:
            raise CorruptArchiveError(f"{self.codec_id} payload: {exc}") from exc
        if len(body) != 12 * m or not inflate.eof or inflate.unused_data:
            raise CorruptArchiveError(f"{self.codec_id} payload has the wrong decoded size")
        gaps = _from_planes(body[: 4 * m], np.uint32, m).astype(np.int64)
        values = _unzigzag(_from_planes(body[4 * m :], np.uint64, m))
        where = np.cumsum(gaps + 1) - 1
        if m and (where[-1] >= n or (values == 0).any()):
            raise CorruptArchiveError(f"{self.codec_id} payload places differences outside the block")
        diffs = np.zeros(n, np.int64)
        diffs[where] = values
        if n == 0:
            return np.zeros((1, 0), np.int64)
        if kind == PREVIOUS:
            return _wrapping_cumsum(int(f64_to_codes(np.array([a]))[0]), diffs)[np.newaxis]
        if kind == STEP:
            return _decode_step(diffs, int(f64_to_codes(np.array([a]))[0]), float(d))[np.newaxis]
        return (predictions(kind, a, d, k, np.empty(n)) + diffs)[np.newaxis]


def _wrapping_cumsum(first: int, diffs: np.ndarray) -> np.ndarray:
    """codes[0] = first + diffs[0], codes[i] = codes[i-1] + diffs[i], modulo 2^64."""
    steps = diffs.view(np.uint64).copy()
    steps[:1] += np.array([first & 0xFFFFFFFFFFFFFFFF], np.uint64)  # array arithmetic wraps silently
    return np.cumsum(steps, dtype=np.uint64).view(np.int64)


def _usable(kind, a, d, k) -> bool:
    """Whether a predictor's parameters are ones the format allows: no NaN from the arithmetic,
    and the parameters a predictor does not use at zero."""
    if kind == PREVIOUS:
        return d == 0 and k == 0
    if kind == STEP:
        return bool(np.isfinite(d)) and k == 0
    if kind in (LINE, RATE):
        return bool(np.isfinite(a) and np.isfinite(d) and 0 <= k < MAX_K and (kind == LINE or d != 0))
    return False
