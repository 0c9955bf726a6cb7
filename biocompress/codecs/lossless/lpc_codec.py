"""Lossless codec v1: per-channel least-squares LPC + class-sorted range coding."""

from __future__ import annotations

import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, register_codec
from ..bytepack import pack_arrays, unpack_arrays
from . import lpc, residual_coder

_HEADER = struct.Struct("<HI")  # n_channels, n_samples


@register_codec
class LPCCodec(Codec):
    """Per-channel least-squares LPC (order ≤ ``max_order``), residuals range-coded.

    Parameters
    ----------
    max_order : int
        Highest prediction order tried per channel block.
    segment : int
        Samples per residual segment sharing one Laplace scale class.
    """

    codec_id = "lpc-v1"
    config_fields = ("max_order", "segment")

    def __init__(self, max_order: int = lpc.MAX_ORDER, segment: int = 256):
        if max_order not in lpc.ORDERS:
            raise ValueError(f"max_order must be one of {lpc.ORDERS}, got {max_order}")
        if not 16 <= segment <= 65536:
            raise ValueError(f"segment must be within 16..65536, got {segment}")
        self.max_order = int(max_order)
        self.segment = int(segment)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        orders, shifts, means, rows = [], [], [], []
        for x in codes:
            # predict around the block mean: least squares is fitted on centred data
            mean = int(np.round(x.mean())) if x.size else 0
            x = x - mean
            q, shift = lpc.choose_predictor(x, self.max_order)
            r = lpc.lpc_residual(x, q, shift)
            p = q.size
            # coefficients travel through the range coder too: a row of their own
            rows += [q, r[:p], r[p:]]
            orders.append(p)
            shifts.append(shift)
            means.append(mean)
        params = pack_arrays(
            np.asarray(orders, np.uint8), np.asarray(shifts, np.uint8), np.asarray(means, np.int64)
        )
        body = residual_coder.encode_rows(rows, self.segment)
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + body

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size + 4:
            raise CorruptArchiveError("lpc-v1 payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        (plen,) = struct.unpack_from("<I", payload, _HEADER.size)
        start = _HEADER.size + 4
        orders, shifts, means = unpack_arrays(payload[start : start + plen], 3)
        if orders.size != n_ch or shifts.size != n_ch or means.size != n_ch or (orders > n).any() or (shifts > 62).any():
            raise CorruptArchiveError("lpc-v1 predictor parameters inconsistent with header")
        p = orders.astype(np.int64)
        lengths = np.ravel(np.column_stack([p, p, n - p]))
        rows = residual_coder.decode_rows(payload[start + plen :], lengths, self.segment)
        out = np.empty((n_ch, n), np.int64)
        for ch in range(n_ch):
            q, warm, main = rows[3 * ch : 3 * ch + 3]
            out[ch] = lpc.lpc_restore(np.concatenate([warm, main]), q, int(shifts[ch])) + means[ch]
        return out
