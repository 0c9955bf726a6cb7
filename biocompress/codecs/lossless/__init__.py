"""Lossless codecs: predictive coding of integer codes, and a float fallback."""

from .float_codec import FloatXorCodec
from .lpc_codec import LPCCodec, LPCXCodec

LosslessCodec = LPCXCodec

__all__ = ["FloatXorCodec", "LPCCodec", "LPCXCodec", "LosslessCodec"]
