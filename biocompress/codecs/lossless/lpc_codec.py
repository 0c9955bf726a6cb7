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
        orders, shifts, coefs, rows = [], [], [], []
        for x in codes:
            q, shift = lpc.choose_predictor(x, self.max_order)
            r = lpc.lpc_residual(x, q, shift)
            p = q.size
            rows += [r[:p], r[p:]]
            orders.append(p)
            shifts.append(shift)
            coefs.append(q)
        params = pack_arrays(
            np.asarray(orders, np.uint8),
            np.asarray(shifts, np.uint8),
            np.concatenate(coefs).astype(np.int64) if coefs else np.zeros(0, np.int64),
        )
        body = residual_coder.encode_rows(rows, self.segment)
        return _HEADER.pack(n_ch, n) + struct.pack("<I", len(params)) + params + body

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size + 4:
            raise CorruptArchiveError("lpc-v1 payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        (plen,) = struct.unpack_from("<I", payload, _HEADER.size)
        start = _HEADER.size + 4
        orders, shifts, coefs = unpack_arrays(payload[start : start + plen], 3)
        if orders.size != n_ch or int(orders.sum()) != coefs.size or (orders > n).any():
            raise CorruptArchiveError("lpc-v1 predictor parameters inconsistent with header")
        lengths = np.ravel(np.column_stack([orders, n - orders.astype(np.int64)]))
        rows = residual_coder.decode_rows(payload[start + plen :], lengths, self.segment)
        out = np.empty((n_ch, n), np.int64)
        q_all = np.split(coefs, np.cumsum(orders.astype(np.int64))[:-1]) if n_ch else []
        for ch in range(n_ch):
            r = np.concatenate([rows[2 * ch], rows[2 * ch + 1]])
            out[ch] = lpc.lpc_restore(r, q_all[ch], int(shifts[ch]))
        return out
