"""Whole-recording integer codes, for benchmarks that feed other codecs the same samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import edf_native, scaling
from .source import open_raw

_FORMAT_BITS = {"short": 16, "int": 32, "single": 32, "double": 64}


@dataclass
class SourceCodes:
    codes: np.ndarray | None  # int64 (n_channels, n_samples); None when not integer or mixed-rate
    bits: int  # native sample width: 16, 24 or 32
    sfreq: float
    integer: bool
    n_channels: int
    n_samples: int  # samples per channel at the fastest rate
    reason: str = ""
    rate_groups: list[np.ndarray] | None = None  # mixed-rate EDF/BDF: one array per native rate

    @property
    def parts(self) -> list[np.ndarray]:
        """Uniform-rate arrays that together hold every stored sample."""
        return self.rate_groups if self.rate_groups is not None else [self.codes]

    @property
    def n_stored(self) -> int:
        return sum(p.size for p in self.parts)


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
    """The stored integer sample codes of a recording, exactly as MNE scales them.

    Mixed-rate EDF/BDF signals are returned at their own rates, grouped by rate.
    """
    raw = open_raw(path)
    per_record = edf_native.samples_per_record(raw)
    if per_record is not None and np.unique(per_record).size > 1:
        return _mixed_rate_codes(raw, per_record)
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


def _mixed_rate_codes(raw, per_record: np.ndarray) -> SourceCodes:
    n_ch = raw.info["nchan"]
    slow = set(edf_native.native_channels(raw).tolist())
    if len(slow) != int((per_record != per_record.max()).sum()):
        return SourceCodes(None, native_bits(raw, None), raw.info["sfreq"], False, n_ch, raw.n_times,
                           "a slower-rate channel is a stim channel (MNE interpolates it)")
    recipe = scaling.recipe_for(raw)
    fast = np.flatnonzero(per_record == per_record.max())
    x = raw.get_data(picks=fast)
    if (scaling.detect_kinds(recipe, x, fast) != 0).any():
        return SourceCodes(None, native_bits(raw, None), raw.info["sfreq"], False, n_ch, raw.n_times,
                           "some channels are not integer-coded")
    per_channel = {int(c): v for c, v in zip(fast, scaling.to_codes(recipe, x, fast, 0))}
    per_channel.update({c: edf_native.read_native_codes(raw, c) for c in slow})
    groups = [np.stack([per_channel[c] for c in np.flatnonzero(per_record == r)]) for r in np.unique(per_record)]
    return SourceCodes(None, native_bits(raw, None), raw.info["sfreq"], True, n_ch, raw.n_times,
                       rate_groups=groups)
