"""``lzma-v1``: integer codes through LZMA2, for blocks a predictor cannot beat.

Linear prediction wins on recorded signals, but a block that repeats itself exactly (a
signal generator's sine and square waves, a calibration pattern, a test file's periodic
ramp) is coded best by a dictionary coder that finds the repeats. The stream encoder tries
this codec only on blocks its predictive codec already codes in a few bits per sample
(:mod:`biocompress.codecs.fallback`) and keeps whichever payload is smaller.

Payload (docs/FORMAT.md §8.12): ``n_channels`` (u16), ``n_samples`` (u32), the sample width
in bytes (u8: 1, 2, 4 or 8), the LZMA2 dictionary size (u32), then a raw LZMA2 stream of
the codes, channel after channel, as little-endian signed integers of that width.
"""

from __future__ import annotations

import lzma
import struct

import numpy as np

from ...errors import CorruptArchiveError
from ..base import Codec, check_2d_int, check_declared_shape, register_codec

_HEAD = struct.Struct("<HIBI")
_WIDTHS = (1, 2, 4, 8)
MAX_DICT = 64 << 20
MIN_DICT = 4096


def _filters(dict_size: int) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}]


def _width(codes: np.ndarray) -> int:
    if codes.size == 0:
        return 1
    lo, hi = int(codes.min()), int(codes.max())
    for w in _WIDTHS:
        if -(1 << (8 * w - 1)) <= lo and hi < (1 << (8 * w - 1)):
            return w
    return 8


@register_codec
class LZMACodec(Codec):
    """Codes of a block, channel after channel, LZMA2-compressed (preset 9, extreme)."""

    codec_id = "lzma-v1"

    def encode(self, codes: np.ndarray) -> bytes:
        codes = check_2d_int(codes)
        n_ch, n = codes.shape
        if n_ch >= 1 << 16 or n >= 1 << 32:
            raise ValueError(f"lzma-v1 codes at most 65535 channels × 2^32 samples, got {codes.shape}")
        width = _width(codes)
        raw = codes.astype(f"<i{width}").tobytes()
        dict_size = min(MAX_DICT, max(MIN_DICT, 1 << max(len(raw) - 1, 1).bit_length()))
        body = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_filters(dict_size))
        return _HEAD.pack(n_ch, n, width, dict_size) + body

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) < _HEAD.size:
            raise CorruptArchiveError("lzma-v1 payload is shorter than its header")
        n_ch, n, width, dict_size = _HEAD.unpack_from(payload, 0)
        check_declared_shape(self.codec_id, n_ch, n)
        expected = n_ch * n * width
        if width not in _WIDTHS or not MIN_DICT <= dict_size <= min(MAX_DICT, max(MIN_DICT, 2 * expected)):
            raise CorruptArchiveError(f"lzma-v1 header is invalid (width {width}, dictionary {dict_size})")
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_filters(dict_size))
        try:
            raw = dec.decompress(payload[_HEAD.size :], max_length=expected + 1)
        except lzma.LZMAError as exc:
            raise CorruptArchiveError(f"lzma-v1 stream is damaged ({exc})") from None
        if len(raw) != expected or not dec.eof or dec.unused_data:
            raise CorruptArchiveError(f"lzma-v1 stream does not hold the {n_ch} × {n} samples it declares")
        return np.frombuffer(raw, f"<i{width}").astype(np.int64).reshape(n_ch, n)
