"""Whole-recording integer codes, for benchmarks that feed other codecs the same samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scaling
from .source import open_raw

_FORMAT_BITS = {"short": 16, "int": 32, "single": 32, "double": 64}


@dataclass
class SourceCodes:
    codes: np.ndarray | None  # int64 (n_channels, n_samples), None when not integer
    bits: int  # native sample width: 16, 24 or 32
    sfreq: float
    integer: bool
    n_channels: int
    n_samples: int
    reason: str = ""


def native_bits(raw, codes: np.ndarray | None) -> int:
    name = type(raw).__name__
    if name == "RawEDF":
        return 16
    if name == "RawBDF":
        return 24
    bits = _FORMAT_BITS.get(getattr(raw, "orig_format", ""), 32)
    if codes is not None and codes.size:  # readers that report 'double' for int16 files
        lo, hi = int(codes.min()), int(codes.max())
        for b in (16, 24, 32):
            if -(2 ** (b - 1)) <= lo and hi < 2 ** (b - 1):
                return min(b, bits) if bits >= 16 else b
    return min(bits, 32)


def read_codes(path) -> SourceCodes:
    """The stored integer sample codes of a recording, exactly as MNE scales them."""
    raw = open_raw(path)
    x = raw.get_data()
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, x)
    n_ch, n = x.shape
    if (kinds != 0).any():
        bad = [raw.ch_names[i] for i in np.flatnonzero(kinds != 0)[:3]]
        return SourceCodes(None, native_bits(raw, None), raw.info["sfreq"], False, n_ch, n,
                           f"{int((kinds != 0).sum())} channel(s) not integer-coded (e.g. {bad})")
    codes = scaling.to_codes(recipe, x, np.arange(n_ch), 0)
    return SourceCodes(codes, native_bits(raw, codes), raw.info["sfreq"], True, n_ch, n)
