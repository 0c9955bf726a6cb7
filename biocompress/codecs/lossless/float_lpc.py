"""Lossless float32 coder: linear prediction in value, residuals counted in float steps.

Input codes are order-preserving integer maps of float32 bit patterns
(``codecs.float_codes.f32_to_codes``: adjacent floats have adjacent codes, so a code
difference counts representable floats in between). Per channel and block:

* **scaled integers**: if every value is an integer multiple ``k·2**s`` (float32
  data converted from integer ADC counts by a power-of-two gain), the integers
  ``k`` go to the integer coder (``lpc-v3``, cross-channel stage included);
* **grid**: otherwise each value is split into ``y = floor(x / Q)``, with ``Q`` the
  float32 spacing of the channel's largest binade, and the index of ``x`` among the
  float32 values in ``[y·Q, (y+1)·Q)``. The ``y`` (integers, linear in the signal, so
  zero crossings cost nothing) also go to the integer coder; the indices are stored
  in as many raw bits as their cell needs (none for values of the top binade, more
  for values near zero, whose low mantissa bits carry information no predictor has);
* **ord**: channels with NaN or ±inf are predicted by integer LPC on the values
  rounded to the same grid, and the residual is the code difference between the
  value and the float32 nearest the prediction (NaN payloads, ±inf and −0.0 are just
  codes whose residuals are large). Residuals are range-coded like the integer coder's.

Every step is integer or exactly rounded IEEE arithmetic, so decoders on any machine
agree bit for bit.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec
from ..bytepack import pack_arrays, unpack_arrays
from ..float_codes import codes_to_f32, f32_to_codes
from . import lpc, residual_coder
from .lpc_codec import LPCX3Codec, check_lpc_params

_HEADER = struct.Struct("<HI")  # n_channels, n_samples
SCALED_INT, GRID, ORD = 0, 1, 2
MIN_UNIT = -149  # 2**-149: the smallest float32 spacing (subnormals)
_GRID_BITS = 24  # y spans ±2**24 at the channel's largest finite magnitude
_F32_CODES = (-(2**31), 2**31 - 1)


def scaled_int_exponent(x: np.ndarray) -> int | None:
    """The largest s with every value of float32 ``x`` an integer times 2**s and |integer|
    below 2**31, or None (non-finite values, −0.0, or too wide a range)."""
    if not np.isfinite(x).all() or (np.signbit(x) & (x == 0)).any():
        return None
    nz = x[x != 0].astype(np.float64)
    if nz.size == 0:
        return 0
    m, e = np.frexp(nz)  # nz = m·2**e, 0.5 ≤ |m| < 1: an exact 24-bit significand m·2**24
    sig = np.abs(m * 2.0**24).astype(np.int64)
    tz = np.zeros(sig.size, np.int64)
    for b in range(1, 25):  # trailing zero bits of each significand
        tz += ((sig >> b) << b == sig) & (tz == b - 1)
    s = int((e - 24 + tz).min())
    if int(np.abs(np.ldexp(nz, -s)).max()) >= 2**31:
        return None
    return s


def grid_unit(x: np.ndarray) -> int:
    """u such that the largest finite |x| is just under 2**(_GRID_BITS + u), so that 2**u
    is the float32 spacing of its binade."""
    finite = np.abs(x[np.isfinite(x)]).astype(np.float64)
    top = float(finite.max()) if finite.size else 0.0
    return max((int(np.frexp(top)[1]) if top > 0 else 0) - _GRID_BITS, MIN_UNIT)


@numba.njit(cache=True, nogil=True)
def _ord32(v):
    # order-preserving code of float32(v) (v exactly representable in float32)
    f = np.empty(1, np.float32)
    f[0] = np.float32(v)
    b = np.int64(f.view(np.int32)[0])
    return b ^ 0x7FFFFFFF if b < 0 else b


@numba.njit(cache=True, nogil=True)
def _cell(y, q):
    # codes [lo, hi) of the float32 values in [y·q, (y+1)·q), and the bits an index needs
    lo = _ord32(float(y) * q)
    hi = _ord32(float(y + 1) * q)
    width = 0
    while (np.int64(1) << width) < hi - lo:
        width += 1
    return lo, hi, width


@numba.njit(cache=True, nogil=True)
def _grid_split(x, unit):
    # (y, index of x in its cell, bits of that index) per sample; x finite float32
    n = x.size
    y = np.empty(n, np.int64)
    idx = np.empty(n, np.int64)
    width = np.empty(n, np.int64)
    q = 2.0**unit
    f = np.empty(1, np.float32)
    for i in range(n):
        f[0] = x[i]
        b = np.int64(f.view(np.int32)[0])
        c = b ^ 0x7FFFFFFF if b < 0 else b
        yi = np.int64(np.floor(float(x[i]) / q))
        if c == -1:  # −0.0 sits just below +0.0 in code order: the cell of [−q, 0)
            yi = -1
        lo, hi, w = _cell(yi, q)
        y[i], idx[i], width[i] = yi, c - lo, w
    return y, idx, width


@numba.njit(cache=True, nogil=True)
def _pack_bits(values, width):
    # values[i] in width[i] bits, LSB first, end to end
    total = 0
    for w in width:
        total += w
    out = np.zeros((total + 7) // 8, np.uint8)
    pos = 0
    for i in range(values.size):
        v = values[i]
        for b in range(width[i]):
            if (v >> b) & 1:
                out[(pos + b) >> 3] |= np.uint8(1 << ((pos + b) & 7))
        pos += width[i]
    return out


@numba.njit(cache=True, nogil=True)
def _grid_join(y, packed, unit, with_indices):
    # (status, codes, index bits read) from y and the packed cell indices (all 0 without
    # them); status 1 = y off the grid, 2 = bits missing or an index outside its cell
    n = y.size
    out = np.empty(n, np.int64)
    q = 2.0**unit
    pos = 0
    for i in range(n):
        if y[i] < -(np.int64(1) << _GRID_BITS) or y[i] >= (np.int64(1) << _GRID_BITS):
            return 1, out, pos
        lo, hi, w = _cell(y[i], q)
        if not with_indices:
            w = 0
        if pos + w > packed.size * 8:
            return 2, out, pos
        v = np.int64(0)
        for b in range(w):
            v |= np.int64((packed[(pos + b) >> 3] >> ((pos + b) & 7)) & 1) << b
        pos += w
        if lo + v >= hi:
            return 2, out, pos
        out[i] = lo + v
    return 0, out, pos


@numba.njit(cache=True, nogil=True)
def _float_run(codes_in, r_in, q, orders, shifts, frame, unit, decode):
    # decode: codes = r + code(pred); else r = codes - code(pred). pred is integer LPC on
    # the grid values y of the decoded past, mapped back to the nearest float32.
    n = r_in.shape[0] if decode else codes_in.shape[0]
    out = np.empty(n, np.int64)
    codes = out if decode else codes_in
    y = np.zeros(n, np.int64)
    f32 = np.empty(1, np.float32)
    bits = f32.view(np.int32)
    scale_down = 2.0 ** (-unit)
    scale_up = 2.0 ** unit
    limit = float(2 ** (_GRID_BITS + 1))
    q0 = 0
    for f in range(orders.shape[0]):
        p, shift = orders[f], shifts[f]
        half = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
        for i in range(f * frame, min(n, (f + 1) * frame)):
            if i < p:
                pred = y[i - 1] if i > 0 else 0
            else:
                acc = half
                for k in range(p):
                    acc += q[q0 + k] * y[i - 1 - k]
                pred = acc >> shift
            f32[0] = np.float32(float(pred) * scale_up)
            b = np.int64(bits[0])
            pc = b ^ 0x7FFFFFFF if b < 0 else b
            if decode:
                c = r_in[i] + pc
                out[i] = c
            else:
                c = codes[i]
                out[i] = c - pc
            # the grid value of the sample just coded, for the samples after it
            b32 = c ^ 0x7FFFFFFF if c < 0 else c
            bits[0] = np.int32(b32)
            v = float(f32[0]) * scale_down
            if v != v or v > limit or v < -limit:  # NaN, inf or off the grid: no help predicting
                y[i] = 0
            else:
                y[i] = np.int64(np.rint(v))
        q0 += p
    return out


@register_codec
class FloatLPCCodec(Codec):
    """float32 codes (``f32_to_codes``): scaled-integer channels through ``lpc-v3``, the
    others predicted in value with residuals in float steps, range-coded."""

    codec_id = "float-lpc-v1"
    config_fields = ("max_order", "segment", "frame")

    def __init__(self, max_order: int = lpc.MAX_ORDER, segment: int = 256, frame: int = 4096):
        self.max_order, self.segment, self.frame = check_lpc_params(max_order, segment, frame)

    def _int_codec(self) -> LPCX3Codec:
        return LPCX3Codec(self.max_order, self.segment, self.frame)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        if codes.size and (codes.min() < _F32_CODES[0] or codes.max() > _F32_CODES[1]):
            raise ValueError("float-lpc-v1 needs float32 codes (int32 range)")
        x = codes_to_f32(codes)
        n_frames = -(-n // self.frame)
        modes = np.full(n_ch, ORD, np.uint8)
        exps = np.zeros(n_ch, np.int64)
        ints, cells, has_cells = [], [], np.zeros(n_ch, np.uint8)
        orders, shifts, rows = [], [], []
        for c in range(n_ch):
            s = scaled_int_exponent(x[c])
            if s is not None:
                modes[c], exps[c] = SCALED_INT, s
                ints.append(np.ldexp(x[c].astype(np.float64), -s).astype(np.int64))
                continue
            u = grid_unit(x[c])
            exps[c] = u
            if np.isfinite(x[c]).all():
                modes[c] = GRID
                y, idx, width = _grid_split(x[c], u)
                ints.append(y)
                if width.any() and idx.any():
                    has_cells[c] = 1
                    cells.append(_pack_bits(idx, width))
                continue
            q, o, sh = self._ord_predictor(x[c], u, n_frames)
            rows += [q, _float_run(codes[c], np.empty(0, np.int64), q, o, sh, self.frame, int(u), False)]
            orders.append(o)
            shifts.append(sh)
        int_payload = self._int_codec().encode(np.array(ints).reshape(-1, n)) if ints else b""
        params = pack_arrays(modes, exps, has_cells, np.concatenate(orders + [np.zeros(0, np.int64)]).astype(np.uint8),
                             np.concatenate(shifts + [np.zeros(0, np.int64)]).astype(np.uint8),
                             np.frombuffer(int_payload, np.uint8),
                             np.concatenate(cells + [np.zeros(0, np.uint8)]))
        body = residual_coder.encode_rows(rows, self.segment, shaped=True) if rows else b""
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + body

    def _ord_predictor(self, x: np.ndarray, u: int, n_frames: int):
        """Per-frame LPC of the grid values of a channel with non-finite samples."""
        with np.errstate(invalid="ignore", over="ignore"):
            v = np.ldexp(x.astype(np.float64), -u)
        y = np.where(np.isfinite(v) & (np.abs(v) <= 2.0 ** (_GRID_BITS + 1)), np.rint(v), 0).astype(np.int64)
        qs, orders, shifts = [], np.zeros(n_frames, np.int64), np.zeros(n_frames, np.int64)
        for f in range(n_frames):
            a = f * self.frame
            hist = min(a, lpc.MAX_ORDER)
            q, shifts[f] = lpc.choose_predictor(y[a - hist : a + self.frame], self.max_order, history=hist)
            qs.append(q)
            orders[f] = q.size
        return np.concatenate(qs) if qs else np.zeros(0, np.int64), orders, shifts

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size + 4:
            raise CorruptArchiveError("float-lpc-v1 payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        check_declared_shape(self.codec_id, n_ch, n)
        (plen,) = struct.unpack_from("<I", payload, _HEADER.size)
        start = _HEADER.size + 4
        modes, exps, has_cells, orders, shifts, int_payload, cells = unpack_arrays(payload[start : start + plen], 7)
        n_frames = -(-n // self.frame)
        ords = np.flatnonzero(modes == ORD)
        as_int = np.flatnonzero(modes != ORD)
        if (modes.size != n_ch or exps.size != n_ch or has_cells.size != n_ch or (modes > ORD).any()
                or orders.size != ords.size * n_frames or shifts.size != orders.size or (shifts > 62).any()
                or (np.abs(exps) > 400).any() or (as_int.size == 0) != (int_payload.size == 0)):
            raise CorruptArchiveError("float-lpc-v1 parameters inconsistent with header")
        orders = orders.astype(np.int64).reshape(ords.size, n_frames)
        shifts = shifts.astype(np.int64).reshape(ords.size, n_frames)
        out = np.empty((n_ch, n), np.int64)
        if as_int.size:
            k = self._int_codec().decode(int_payload.tobytes())
            if k.shape != (as_int.size, n):
                raise CorruptArchiveError("float-lpc-v1 integer part has the wrong shape")
            pos = 0
            for row, c in zip(k, as_int):
                if modes[c] == SCALED_INT:
                    out[c] = f32_to_codes(np.ldexp(row.astype(np.float64), int(exps[c])).astype(np.float32))
                    continue
                status, out[c], used = _grid_join(row, cells[pos:], int(exps[c]), bool(has_cells[c]))
                if status:
                    raise CorruptArchiveError("float-lpc-v1: " + ("grid value out of range" if status == 1
                                                                  else "cell indices damaged"))
                pos += -(-used // 8)
            if pos != cells.size:
                raise CorruptArchiveError("float-lpc-v1: cell index bytes do not match the channels")
        if ords.size:
            lengths = np.ravel(np.column_stack([orders.sum(axis=1), np.full(ords.size, n)]))
            rows = residual_coder.decode_rows(payload[start + plen :], lengths, self.segment, shaped=True)
            for j, c in enumerate(ords):
                out[c] = _float_run(np.empty(0, np.int64), rows[2 * j + 1], rows[2 * j], orders[j], shifts[j],
                                    self.frame, int(exps[c]), True)
        elif len(payload) != start + plen:
            raise CorruptArchiveError("float-lpc-v1 payload has unexpected trailing bytes")
        if out.size and (out.min() < _F32_CODES[0] or out.max() > _F32_CODES[1]):
            raise CorruptArchiveError("float-lpc-v1 decodes to codes outside float32")
        return out
