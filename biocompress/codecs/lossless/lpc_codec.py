"""Lossless codec v1: per-channel least-squares LPC + class-sorted range coding."""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, register_codec
from ..bytepack import pack_arrays, unpack_arrays
from . import lpc, residual_coder

_HEADER = struct.Struct("<HI")  # n_channels, n_samples


def remove_offset_and_step(x: np.ndarray):
    """x = y·step + offset with y centred on 0 and step the largest common step of x.

    Formats often store values on a coarser grid than their integer type (unused
    low bits, gain-scaled codes); dividing the step out saves those bits.
    """
    if x.size == 0:
        return 0, 1, x
    step = int(np.gcd.reduce(np.abs(x - x[0]))) or 1
    y = (x - x[0]) // step
    centre = int(np.round(y.mean()))
    return int(x[0]) + centre * step, step, y - centre


@register_codec
class LPCCodec(Codec):
    """Per-channel least-squares LPC (order ≤ ``max_order``), residuals range-coded.

    A block's channels are coded independently; each channel is cut into frames
    of ``frame`` samples, each with its own predictor (history crosses frames, so
    only the block start needs a warm-up).

    Parameters
    ----------
    max_order : int
        Highest prediction order tried per channel block.
    segment : int
        Samples per residual segment sharing one Laplace scale class.
    """

    codec_id = "lpc-v1"
    config_fields = ("max_order", "segment", "frame")

    def __init__(self, max_order: int = lpc.MAX_ORDER, segment: int = 256, frame: int = 4096):
        if max_order not in lpc.ORDERS:
            raise ValueError(f"max_order must be one of {lpc.ORDERS}, got {max_order}")
        if not 16 <= segment <= 65536:
            raise ValueError(f"segment must be within 16..65536, got {segment}")
        if not 256 <= frame <= 1 << 20:
            raise ValueError(f"frame must be within 256..2**20, got {frame}")
        self.max_order = int(max_order)
        self.segment = int(segment)
        self.frame = int(frame)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        n_frames = -(-n // self.frame)
        orders = np.zeros((n_ch, n_frames), np.int64)
        shifts = np.zeros((n_ch, n_frames), np.int64)
        offsets, steps, rows = [], [], []
        for ch, x in enumerate(codes):
            offset, step, x = remove_offset_and_step(x)
            qs = []
            for f in range(n_frames):
                a = f * self.frame
                hist = min(a, lpc.MAX_ORDER)
                q, shift = lpc.choose_predictor(x[a - hist : a + self.frame], self.max_order, history=hist)
                qs.append(q)
                orders[ch, f], shifts[ch, f] = q.size, shift
            q = np.concatenate(qs) if qs else np.zeros(0, np.int64)
            r = lpc.lpc_residual(x, q, orders[ch], shifts[ch], self.frame)
            p0 = int(orders[ch, 0]) if n_frames else 0
            # coefficients travel through the range coder too: a row of their own
            rows += [q, r[:p0], r[p0:]]
            offsets.append(offset)
            steps.append(step)
        params = pack_arrays(
            orders.astype(np.uint8).ravel(), shifts.astype(np.uint8).ravel(),
            np.asarray(offsets, np.int64), np.asarray(steps, np.int64),
        )
        body = residual_coder.encode_rows(rows, self.segment)
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + body

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size + 4:
            raise CorruptArchiveError("lpc-v1 payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        (plen,) = struct.unpack_from("<I", payload, _HEADER.size)
        start = _HEADER.size + 4
        orders, shifts, offsets, steps = unpack_arrays(payload[start : start + plen], 4)
        n_frames = -(-n // self.frame)
        if (orders.size != n_ch * n_frames or shifts.size != orders.size or offsets.size != n_ch
                or steps.size != n_ch or (steps < 1).any() or (shifts > 62).any()):
            raise CorruptArchiveError("lpc-v1 predictor parameters inconsistent with header")
        orders = orders.astype(np.int64).reshape(n_ch, n_frames)
        shifts = shifts.astype(np.int64).reshape(n_ch, n_frames)
        p0 = orders[:, 0] if n_frames else np.zeros(n_ch, np.int64)
        if (p0 > n).any():
            raise CorruptArchiveError("lpc-v1 predictor order longer than the block")
        lengths = np.ravel(np.column_stack([orders.sum(axis=1), p0, n - p0]))
        rows = residual_coder.decode_rows(payload[start + plen :], lengths, self.segment)
        out = np.empty((n_ch, n), np.int64)
        for ch in range(n_ch):
            q, warm, main = rows[3 * ch : 3 * ch + 3]
            y = lpc.lpc_restore(np.concatenate([warm, main]), q, orders[ch], shifts[ch], self.frame)
            out[ch] = y * steps[ch] + offsets[ch]
        return out
