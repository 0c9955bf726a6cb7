"""Codecs: one interface (``base.Codec``), looked up by the id stored in archives."""

from . import lossless, times
from .base import Codec, get_codec, register_codec, registered_codecs

__all__ = ["Codec", "get_codec", "lossless", "register_codec", "registered_codecs", "times"]
