"""Lossless codecs: predictive coding of integer codes, and of float32 samples."""

from .float_codec import FloatXorCodec, FloatXorZstdCodec
from .float_lpc import FloatLPCCodec
from .lpc_codec import LPCCodec, LPCX3Codec, LPCXCodec
from .lpc_v4 import LPCV4Codec
from .lzma_codec import LZMACodec
from .stream_codec import LPCStreamCodec

LosslessCodec = LPCX3Codec

__all__ = ["FloatLPCCodec", "FloatXorCodec", "FloatXorZstdCodec", "LPCCodec", "LPCStreamCodec", "LPCV4Codec", "LPCX3Codec", "LPCXCodec",
           "LZMACodec", "LosslessCodec"]
