"""Lossless codecs: predictive coding of integer codes, and of float32 samples."""

from .float_codec import FloatXorCodec
from .float_lpc import FloatLPCCodec
from .lpc_codec import LPCCodec, LPCX3Codec, LPCXCodec
from .stream_codec import LPCStreamCodec

LosslessCodec = LPCX3Codec

__all__ = ["FloatLPCCodec", "FloatXorCodec", "LPCCodec", "LPCX3Codec", "LPCXCodec", "LPCStreamCodec", "LosslessCodec"]
