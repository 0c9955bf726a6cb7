"""Codecs: one interface (``base.Codec``), looked up by the id stored in archives.

The codec modules load on first use (``get_codec`` of an id not yet registered, or an
attribute of this package): commands that only read an archive's metadata (``info``) never
pay for numba, scipy and torch.
"""

from .base import Codec, get_codec, register_codec, registered_codecs

__all__ = ["Codec", "get_codec", "lossless", "register_codec", "registered_codecs", "times"]


def __getattr__(name: str):
    if name in ("lossless", "times"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
