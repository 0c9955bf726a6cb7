"""The one interface every codec implements, and the registry that finds them.

A codec's ``get_config()`` dict is stored next to the data it encoded; it lists
the fields that decide the bitstream explicitly (never "all attributes"), so
that ``get_codec(config)`` rebuilds a decoder for any archive written before.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..errors import CorruptArchiveError

_REGISTRY: dict[str, type["Codec"]] = {}


class Codec(ABC):
    """Encodes a 2-D int64 array (n_channels, n_samples) to bytes and back exactly."""

    codec_id: ClassVar[str]
    config_fields: ClassVar[tuple[str, ...]] = ()
    lossy: ClassVar[bool] = False  # lossy codecs decode to approximations (and may take floats)

    @abstractmethod
    def encode(self, codes: np.ndarray) -> bytes: ...

    @abstractmethod
    def decode(self, payload: bytes) -> np.ndarray: ...

    def decode_prefix(self, payload: bytes, stop: int | None = None, channels=None) -> np.ndarray:
        """At least samples [0, stop) of at least rows ``channels`` (None: all).

        Codecs that can decode less than a whole block override this; the result may
        be longer than ``stop`` and other rows may hold anything.
        """
        return self.decode(payload)

    def split_decode(self, payload: bytes, stop: int | None = None, channels=None):
        """``decode_prefix`` cut into independent parts: ``(parts, join)``.

        Each part is a picklable tuple starting with the bytes it decodes (their length
        balances the work); it decodes through :meth:`decode_part` anywhere, in any
        order (a reader spreads parts over processes); ``join(results)`` then gives what
        ``decode_prefix`` would. Codecs whose blocks split (e.g. into frames) override it.
        """
        return [(payload, stop, channels)], lambda results: results[0]

    def decode_part(self, part):
        return self.decode_prefix(*part)

    # --- stateful codecs (live streams): blocks that continue the block before them ---
    stateful: ClassVar[bool] = False

    def is_key(self, payload: bytes) -> bool:
        """Whether the block decodes on its own (always, for a codec that is not stateful)."""
        return True

    def decode_with(self, payload: bytes, state):
        """(codes, state after the block): ``state`` is what the previous block of the same
        channel group left (None before a key block). Stateless codecs ignore it."""
        return self.decode(payload), None

    def encode_stream(self):
        """An encoder for one channel group's consecutive blocks: ``encode(codes) -> bytes``."""
        return _Blockwise(self)

    def get_config(self) -> dict:
        return {"id": self.codec_id, **{f: getattr(self, f) for f in self.config_fields}}

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        unknown = set(config) - {"id", *cls.config_fields}
        if unknown:
            raise CorruptArchiveError(f"codec {cls.codec_id}: unknown config keys {sorted(unknown)}")
        return cls(**{k: v for k, v in config.items() if k != "id"})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({args})"


class _Blockwise:
    """A stateless codec's stream encoder: every block on its own."""

    def __init__(self, codec: Codec):
        self.codec = codec

    def encode(self, codes, key: bool | None = None) -> bytes:
        return self.codec.encode(codes)


def register_codec(cls: type[Codec]) -> type[Codec]:
    if cls.codec_id in _REGISTRY and _REGISTRY[cls.codec_id] is not cls:
        raise ValueError(f"codec id {cls.codec_id!r} registered twice")
    _REGISTRY[cls.codec_id] = cls
    return cls


# The lossy wavelet coders (no model; a step per channel or per component, which rate control calibrates)
WAVELET_IDS = ("dwt-v1", "sdwt-v1", "dwt-v2", "sdwt-v2", "sdwt-v3", "sdwt-v4", "dwt-v3", "sdwt-v5")
# Codecs whose modules import torch: loaded on first use, so that lossless work never pays for it.
_LAZY = {"ae-v1": "biocompress.codecs.lossy.ae_codec", "ae-v2": "biocompress.codecs.lossy.ae_codec",
         "nl-v1": "biocompress.codecs.lossy.near_lossless",
         "grid-v1": "biocompress.codecs.lossy.grid", "dwt-v1": "biocompress.codecs.lossy.wavelet",
         "dwt-v2": "biocompress.codecs.lossy.wavelet", "sdwt-v1": "biocompress.codecs.lossy.spatial_wavelet",
         "sdwt-v2": "biocompress.codecs.lossy.spatial_wavelet", "sdwt-v3": "biocompress.codecs.lossy.spatial_wavelet",
         "sdwt-v4": "biocompress.codecs.lossy.spatial_wavelet", "dwt-v3": "biocompress.codecs.lossy.wavelet",
         "sdwt-v5": "biocompress.codecs.lossy.spatial_wavelet"}
# Every other codec registers when these load (on the first lookup: reading metadata never needs them)
_MODULES = ("biocompress.codecs.lossless", "biocompress.codecs.times")


# The ids biocompress ships, known without loading their modules (tests check it against the registry)
SHIPPED_IDS = frozenset({"ae-v1", "ae-v2", "dwt-v1", "dwt-v2", "float-lpc-v1", "float-xor-zlib-v1", "float-xor-zstd-v1", "grid-v1",
                         "lpc-s1", "lpc-v1", "lpc-v2", "lpc-v3", "lpc-v4", "lzma-v1", "nl-v1", "sdwt-v1",
                         "sdwt-v2", "sdwt-v3", "sdwt-v4", "dwt-v3", "sdwt-v5", "times-v1"})


def is_known(codec_id) -> bool:
    """Whether ``get_codec`` can build a codec of this id (without loading any codec module)."""
    return codec_id in SHIPPED_IDS or codec_id in _REGISTRY


def _load_codecs() -> None:
    import importlib

    for module in _MODULES:
        importlib.import_module(module)


def get_codec(config: dict) -> Codec:
    """Rebuild the codec described by a stored config dict."""
    codec_id = config.get("id")
    if codec_id not in _REGISTRY:
        _load_codecs()
    if codec_id in _LAZY and codec_id not in _REGISTRY:
        import importlib

        importlib.import_module(_LAZY[codec_id])
    if codec_id not in _REGISTRY:
        raise CorruptArchiveError(
            f"unknown codec {codec_id!r}; this biocompress knows {sorted(_REGISTRY)}"
        )
    return _REGISTRY[codec_id].from_config(config)


def registered_codecs() -> list[str]:
    _load_codecs()
    return sorted(set(_REGISTRY) | set(_LAZY))


MAX_DECODED_ELEMENTS = 1 << 25  # = the container's MAX_BLOCK_ELEMENTS: no block decodes to more


def check_declared_shape(codec_id: str, n_channels: int, n_samples: int) -> None:
    """Raise CorruptArchiveError before a decoder allocates for a shape no block can have."""
    if n_channels * n_samples > MAX_DECODED_ELEMENTS:
        raise CorruptArchiveError(f"{codec_id} payload declares {n_channels} × {n_samples} samples, "
                                  f"more than a block can hold")


def check_2d_int(codes) -> np.ndarray:
    """Validate codec input: a 2-D integer array, returned as C-contiguous int64."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_channels, n_samples), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"codes must be integers, got dtype {arr.dtype}; floats go through io.scaling")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("codes exceed the int64 range")
    return np.ascontiguousarray(arr, dtype=np.int64)
