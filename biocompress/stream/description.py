"""What a live stream is, besides its samples: channels, rate, value kinds and provenance.

A live stream delivers samples in the format it declares (LSL: float32, double64, int8,
int16, int32, int64) and in the unit its description names (EEG amplifiers: microvolts).
The archive holds MNE's view: SI float64 values, rebuilt exactly from integer codes
(:mod:`biocompress.io.scaling`) through the recipe ``mul:e`` with ``e`` the unit scale:

* float32 samples → value kind ``f32``: the float32 sample itself comes back exactly;
* int8/int16/int32 samples → value kind ``int``: the integer comes back exactly;
* double64 and int64 samples → value kind ``f64``: the float64 value (sample × scale)
  is kept bit for bit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import mne
import numpy as np

from ..errors import BadInputError
from ..io import metadata, scaling

KIND_OF_FORMAT = {"float32": 1, "double64": 2, "int8": 0, "int16": 0, "int32": 0, "int64": 2}
NUMPY_FORMAT = {"float32": np.float32, "double64": np.float64, "int8": np.int8, "int16": np.int16,
                "int32": np.int32, "int64": np.int64}
# Unit names of voltage channels (lower case) → scale to volts; MNE keeps samples in SI units.
VOLT_UNITS = {"v": "1", "volt": "1", "volts": "1", "mv": "1e-3", "millivolt": "1e-3", "millivolts": "1e-3",
              "uv": "1e-6", "µv": "1e-6", "μv": "1e-6", "microvolt": "1e-6", "microvolts": "1e-6",
              "nv": "1e-9", "nanovolt": "1e-9", "nanovolts": "1e-9"}


def unit_scale(unit_mul: int) -> float:
    """SI value of one unit ``10**unit_mul`` (MNE's ``unit_mul``), as the decimal literal parses
    (so that 1e-6 is the float64 nearest one micro-unit, whatever pow() rounds to)."""
    return 1.0 if int(unit_mul) == 0 else float(f"1e{int(unit_mul)}")


@dataclass
class StreamDescription:
    """A numeric stream's description: an MNE ``Info`` (SI units, ``unit_mul`` 0), the
    value format it arrives in, each channel's unit scale and value kind, and ``source``,
    the provenance stored in the archive (name, type, source_id, host, the stream's XML…)."""

    info: mne.Info
    value_format: str
    scale: np.ndarray
    source: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.value_format not in KIND_OF_FORMAT:
            raise BadInputError(None, f"streams of {self.value_format!r} values cannot be compressed; "
                                f"numeric formats: {', '.join(KIND_OF_FORMAT)}")
        self.scale = np.asarray(self.scale, np.float64)
        if self.scale.shape != (self.n_channels,) or not (np.isfinite(self.scale) & (self.scale > 0)).all():
            raise BadInputError(None, "every channel needs a positive, finite unit scale")

    @property
    def n_channels(self) -> int:
        return int(self.info["nchan"])

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    @property
    def ch_names(self) -> list[str]:
        return list(self.info["ch_names"])

    @property
    def ch_types(self) -> list[str]:
        return self.info.get_channel_types()

    @property
    def recipe(self) -> scaling.Recipe:
        return scaling.Recipe(("mul:e",), {"e": self.scale.copy()})

    @property
    def kinds(self) -> np.ndarray:
        return np.full(self.n_channels, KIND_OF_FORMAT[self.value_format], np.int8)

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample of one channel as the stream delivers it."""
        return np.dtype(NUMPY_FORMAT[self.value_format]).itemsize

    def values(self, samples: np.ndarray) -> np.ndarray:
        """Samples as delivered (n_samples, n_channels) → MNE float64 values (n_channels, n_samples)."""
        return self.recipe.forward(self.stored(samples), np.arange(self.n_channels))

    def stored(self, samples: np.ndarray) -> np.ndarray:
        """Samples as delivered (n_samples, n_channels) → the same values (n_channels, n_samples)
        in the stream's own format."""
        x = np.asarray(samples, NUMPY_FORMAT[self.value_format])
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise BadInputError(None, f"expected samples of {self.n_channels} channels, got shape {x.shape}")
        return x.T

    def with_start(self, wall_time: dt.datetime) -> "StreamDescription":
        """This description with the measurement date (wall clock of the first sample)."""
        info = self.info.copy()
        with info._unlock():
            info["meas_date"] = wall_time.astimezone(dt.timezone.utc)
        return StreamDescription(info, self.value_format, self.scale, dict(self.source))

    def same_shape(self, other: "StreamDescription") -> str | None:
        """What differs between two descriptions of one stream (restarted), or None."""
        for what, a, b in (("channels", self.n_channels, other.n_channels), ("Hz", self.sfreq, other.sfreq),
                           ("format", self.value_format, other.value_format)):
            if a != b:
                return f"{b} {what} where it had {a}" if what != "format" else f"{b} values where it had {a}"
        return None

    def header(self) -> dict:
        """JSON-able: everything an archive writer needs besides the blocks."""
        return {"info": metadata.info_to_dict(self.info, self.ch_types), "ch_types": self.ch_types,
                "value_format": self.value_format, "kinds": self.kinds.tolist(),
                "recipe": {"steps": ["mul:e"], "params": {"e": self.scale.tolist()}},
                "source": self.source}


def describe_arrays(ch_names, sfreq: float, *, ch_types="eeg", units="microvolts", value_format="float32",
                    source: dict | None = None) -> StreamDescription:
    """A description for samples from a program's own acquisition loop.

    ``units``: one name for every channel or one per channel (``"microvolts"``, ``"volts"``,
    ``"mV"``…; any other name keeps the values as they are); ``value_format``: how the
    samples are represented (``float32``, ``double64``, ``int16``, ``int32``…).
    """
    ch_names = [str(c) for c in ch_names]
    if not ch_names:
        raise BadInputError(None, "a stream needs at least one channel")
    if not (np.isfinite(sfreq) and sfreq > 0):
        raise BadInputError(None, f"the sampling rate must be positive, got {sfreq!r}")
    units = [units] * len(ch_names) if isinstance(units, str) else list(units)
    if len(units) != len(ch_names):
        raise BadInputError(None, f"{len(units)} units for {len(ch_names)} channels")
    try:
        info = mne.create_info(ch_names, float(sfreq), ch_types, verbose="ERROR")
    except (ValueError, TypeError, KeyError) as exc:
        raise BadInputError(None, f"channels cannot be described: {exc}") from None
    scale = [float(VOLT_UNITS.get(str(u).strip().lower(), "1")) for u in units]
    return StreamDescription(info, value_format, np.array(scale),
                             {"kind": "arrays", "units": [str(u) for u in units], **(source or {})})


@dataclass
class StreamHeader:
    """What a sink learns before the first block: the stream's description (its measurement
    date the wall clock of the first sample), the archive's mode, the value kind of each
    channel as stored (``lossy`` where the autoencoder codes it), the largest block, and the
    attributes of ``/lossy`` (lossy modes: mode, model_id, step, quality or max_error_uv;
    ``model``: a custom model's file bytes, stored with the archive)."""

    description: StreamDescription
    mode: str
    kinds: np.ndarray
    block_samples: int
    lossy: dict = field(default_factory=dict)
    model: bytes | None = None
    clock: str | None = None  # the clock every sample's timestamp is on (e.g. "lsl"), when they have one

    def to_json(self) -> dict:
        """JSON-able, for sinks that write it as a frame (journal, network)."""
        return {**self.description.header(), "kinds": np.asarray(self.kinds).tolist(), "mode": self.mode,
                "block_samples": int(self.block_samples), "lossy": self.lossy, "custom_model": self.model is not None}
