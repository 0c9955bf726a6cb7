"""Lossless fallback for float samples: XOR with the previous sample, byte shuffle, zlib.

Input codes are order-preserving integer maps of float bit patterns
(``codecs.float_codes.f32_to_codes`` / ``f64_to_codes``); ``width`` is 4 for float32
and 8 for float64. XOR of neighbouring samples zeroes their shared sign and
exponent bits; grouping bytes by significance then lets zlib find the runs.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec

_HEADER = struct.Struct("<HI")
_UINT = {4: np.uint32, 8: np.uint64}
_INT = {4: np.int32, 8: np.int64}


@register_codec
class FloatXorCodec(Codec):
    codec_id = "float-xor-zlib-v1"
    config_fields = ("width", "level")

    def __init__(self, width: int = 8, level: int = 9):
        if width not in _UINT:
            raise ValueError(f"width must be 4 or 8 bytes, got {width}")
        self.width = int(width)
        self.level = int(level)

    def encode(self, codes) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        if self.width == 4 and codes.size and (codes.min() < -(2**31) or codes.max() >= 2**31):
            raise ValueError("float-xor width 4 needs codes in int32 range")
        u = codes.astype(_INT[self.width]).view(_UINT[self.width])
        x = u.copy()
        x[:, 1:] ^= u[:, :-1]
        planes = x.astype(x.dtype.newbyteorder("<")).view(np.uint8).reshape(n_ch, n, self.width)
        shuffled = np.ascontiguousarray(planes.transpose(0, 2, 1))
        return _HEADER.pack(n_ch, n) + zlib.compress(shuffled.tobytes(), self.level)

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEADER.size:
            raise CorruptArchiveError("float payload shorter than its header")
        n_ch, n = _HEADER.unpack_from(payload)
        check_declared_shape(self.codec_id, n_ch, n)
        inflate = zlib.decompressobj()
        try:  # never inflate past the declared size
            raw = inflate.decompress(payload[_HEADER.size :], n_ch * n * self.width + 1)
        except zlib.error as exc:
            raise CorruptArchiveError(f"float payload: {exc}") from exc
        if len(raw) != n_ch * n * self.width or not inflate.eof or inflate.unused_data:
            raise CorruptArchiveError("float payload has the wrong decoded size")
        planes = np.frombuffer(raw, np.uint8).reshape(n_ch, self.width, n).transpose(0, 2, 1)
        x = np.ascontiguousarray(planes).view(np.dtype(_UINT[self.width]).newbyteorder("<"))
        x = x.reshape(n_ch, n).astype(_UINT[self.width])
        u = np.bitwise_xor.accumulate(x, axis=1)
        return u.view(_INT[self.width]).astype(np.int64)
