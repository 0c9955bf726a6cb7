"""Lossless codecs: predictive coding of integer codes, and a float fallback."""

from .float_codec import FloatXorCodec
from .lpc_codec import LPCCodec, LPCX3Codec, LPCXCodec

LosslessCodec = LPCX3Codec

__all__ = ["FloatXorCodec", "LPCCodec", "LPCX3Codec", "LPCXCodec", "LosslessCodec"]
