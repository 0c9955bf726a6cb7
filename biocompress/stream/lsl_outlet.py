"""A received stream published again as an LSL outlet (``biocompress receive --lsl-out NAME``).

A stream that came from LSL goes out as it came in: its own channel format and values
(the unit scale undone, exactly for integer and float32 streams), its channel labels,
units and type, and every sample's original timestamp (the source's LSL clock). Other
streams (files) go out as float32, voltages in microvolts, as ``biocompress replay`` does.
"""

from __future__ import annotations

import time

import numpy as np
from mne.io.constants import FIFF

from ..container.description import StreamDescription
from .blocks import Chunk

LSL_FORMATS = {"float32": np.float32, "double64": np.float64, "int8": np.int8, "int16": np.int16,
               "int32": np.int32, "int64": np.int64}
LINGER_S = 1.0  # how long an outlet with consumers stays after the last sample
UNIT_NAMES = {FIFF.FIFF_UNIT_V: "volts", FIFF.FIFF_UNIT_T: "tesla", FIFF.FIFF_UNIT_T_M: "tesla/m",
              FIFF.FIFF_UNIT_CEL: "celsius"}


def _origin(description: StreamDescription) -> dict:
    """The source stream's header, where the stream came from LSL (else empty)."""
    for d in (description.stream, description.source):
        if isinstance(d, dict) and d.get("channel_format") in LSL_FORMATS:
            return d
    return {}


class OutletFormat:
    """How the stream's MNE values become the outlet's samples."""

    def __init__(self, description: StreamDescription):
        self.description = description
        origin = _origin(description)
        chs = description.info["chs"]
        self.picks = np.arange(description.n_channels)
        if origin:
            self.channel_format = origin["channel_format"]
            units = origin.get("units")
            self.units = [str(u) if u else "none" for u in units] if isinstance(units, list) \
                and len(units) == len(chs) else None
            self.gain = None
        else:
            self.channel_format = "float32"
            volts = np.array([ch["unit"] == FIFF.FIFF_UNIT_V for ch in chs])
            self.gain = np.where(volts, 1e6, 1.0)[:, np.newaxis]
            self.units = ["microvolts" if v else UNIT_NAMES.get(int(ch["unit"]), "none") for v, ch in zip(volts, chs, strict=True)]
        self.dtype = np.dtype(LSL_FORMATS[self.channel_format])
        self.name = str(origin.get("name") or "")
        self.type = str(origin.get("type") or ("EEG" if "eeg" in description.ch_types else "misc"))
        self.source_id = str(origin.get("source_id") or "")

    def samples(self, values: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) in the outlet's format."""
        if self.gain is not None:
            x = values * self.gain
        else:
            x = self.description.recipe.inverse(values, self.picks)
            if self.dtype.kind == "i":
                info = np.iinfo(self.dtype)
                x = np.clip(np.rint(np.nan_to_num(x)), info.min, info.max)
        return np.ascontiguousarray(x.T.astype(self.dtype))


class LslOutlet:
    """An LSL outlet named ``name`` publishing a received stream's chunks."""

    def __init__(self, name: str, description: StreamDescription):
        from mne_lsl.lsl import StreamInfo, StreamOutlet  # liblsl: only where a stream is published

        self.format = OutletFormat(description)
        fmt = self.format
        source_id = f"biocompress-relay-{fmt.source_id or fmt.name or name}"
        info = StreamInfo(name, fmt.type, description.n_channels, description.sfreq,
                          fmt.dtype.name if fmt.channel_format != "double64" else "float64", source_id)
        info.set_channel_names(list(description.info["ch_names"]))
        info.set_channel_types(description.ch_types)
        if fmt.units is not None:
            info.set_channel_units(fmt.units)
        self.outlet = StreamOutlet(info)
        self.has_timestamps = description.has_timestamps
        self.pushed = 0

    def push(self, chunk: Chunk) -> None:
        x = self.format.samples(chunk.values)
        if self.has_timestamps and chunk.timestamps is not None:
            self.outlet.push_chunk(x, timestamp=np.ascontiguousarray(chunk.timestamps, np.float64))
        else:
            self.outlet.push_chunk(x)
        self.pushed += x.shape[0]

    def close(self) -> None:
        """Remove the outlet, after giving connected inlets time to take the last samples (an
        outlet that goes takes what they have not received with it)."""
        outlet, self.outlet = self.outlet, None
        if outlet is not None and outlet.has_consumers:
            time.sleep(LINGER_S)
        del outlet
