"""An XDF stream as an archive stores it: exact integer codes, value kinds, the scaling recipe
to MNE's units, MNE ``Info`` and the markers as annotations on the stream's time axis.

Codes come straight from the file's values, so every bit pattern survives (NaN payloads
included): int8/16/32 samples are value kind ``int``, float32 ``f32``; int64 and double64
channels take the narrowest kind that holds every sample exactly (``int`` for integers in
int32 range, ``f32`` for float32 values held as doubles), else ``f64``. The recipe ``mul:e``
scales ``int`` and ``f32`` channels to MNE's unit (µV → V: 1e-6); ``f64`` has no recipe
(docs/FORMAT.md §7), so such a channel keeps the file's unit, and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mne
import numpy as np

from ..codecs.float_codes import codes_to_f32, codes_to_f64, f32_to_codes, f64_to_codes
from ..errors import BadInputError
from . import scaling
from .xdf import XdfRecording, XdfStream, channel_layout

EXACT_INT64 = 1 << 53  # integers a float64 holds exactly


@dataclass
class StreamPlan:
    """What the archive holds for one numeric stream."""

    stream: XdfStream
    info: mne.Info
    recipe: scaling.Recipe
    kinds: np.ndarray
    annotations: mne.Annotations
    marker_stamps: np.ndarray | None  # each annotation's marker timestamp, in annotation order
    warnings: list[str] = field(default_factory=list)

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])

    def codes(self, start: int, stop: int) -> np.ndarray:
        """Codes (channels, stop − start) of samples [start, stop), computed window by window so
        that a long recording is not held twice more."""
        x = np.asarray(self.stream.values)[start:stop]
        codes = np.empty((x.shape[1], x.shape[0]), np.int64)
        for c, kind in enumerate(self.kinds.tolist()):
            codes[c] = _codes(x[:, c], kind)
        return codes

    def values(self, codes: np.ndarray) -> np.ndarray:
        """MNE's float64 values of ``codes`` (all channels), as a reader rebuilds them."""
        values = np.empty(codes.shape, np.float64)
        for kind in np.unique(self.kinds):
            rows = np.flatnonzero(self.kinds == kind)
            values[rows] = scaling.from_codes(self.recipe, codes[rows], rows, int(kind))
        return values


def archive_rate(stream: XdfStream) -> float:
    """The rate an archive gives a stream's samples at: the nominal rate, or for an irregular
    stream (nominal_srate 0) its effective rate over its timestamps, or 1 Hz where there is
    none (fewer than two samples, or no time between the first and the last)."""
    if stream.nominal_srate > 0:
        return float(stream.nominal_srate)
    t = stream.timestamps
    if t.size >= 2 and np.isfinite(t[[0, -1]]).all() and t[-1] > t[0]:
        return float((t.size - 1) / (t[-1] - t[0]))
    return 1.0


def plan_stream(path, recording: XdfRecording, stream: XdfStream) -> StreamPlan:
    """The codes, recipe, info and annotations of a numeric stream."""
    names, types, scales, units = channel_layout(stream)
    kinds = exact_kinds(path, stream)
    unscaled = [names[c] for c in range(len(names)) if kinds[c] == 2 and scales[c] != 1.0]
    scales = np.where(kinds == 2, 1.0, scales)
    recipe = scaling.Recipe(("mul:e",), {"e": scales.astype(np.float64)})
    info = mne.create_info(names, archive_rate(stream), types, verbose="ERROR")
    with info._unlock():
        info["meas_date"] = recording.meas_date
        info["description"] = f"XDF stream {stream.index}: {stream.name} ({stream.type})"
    annotations, stamps = marker_annotations(recording, stream)
    warnings = []
    if unscaled:
        warnings.append(f"{stream.label()}: channels {', '.join(unscaled)} keep the file's unit "
                        f"({units[names.index(unscaled[0])]}): their float64 samples cannot be scaled to volts exactly")
    if stream.irregular:
        warnings.append(f"{stream.label()} has no nominal rate (irregular): its samples are given at their "
                        f"effective rate, {info['sfreq']:.6g} Hz; their exact times are its timestamps")
    return StreamPlan(stream, info, recipe, kinds, annotations, stamps, warnings)


def exact_kinds(path, stream: XdfStream) -> np.ndarray:
    """The value kind of each channel whose codes give back every value of the stream bit for bit."""
    x = np.asarray(stream.values)
    fmt = stream.channel_format
    kinds = np.empty(stream.channel_count, np.int8)
    for c in range(stream.channel_count):
        v = x[:, c]
        if fmt in ("int8", "int16", "int32") or (fmt == "int64" and _fits_int32(v)):
            kinds[c] = 0
        elif fmt == "float32":
            kinds[c] = 1
        elif fmt == "int64":
            if (np.abs(v) > EXACT_INT64).any():
                raise BadInputError(path, f"{stream.label()}: channel {c} holds int64 samples beyond ±2^53, "
                                    "which no value kind of the archive format holds exactly")
            kinds[c] = 2
        else:  # double64: the narrowest kind that holds every sample
            kinds[c] = next(k for k in (0, 1, 2) if k == 2 or _same(_values(_codes(v, k), k), v))
    return kinds


def _codes(v: np.ndarray, kind: int) -> np.ndarray:
    """Codes of one channel's values ``v`` (any XDF format) for value kind ``kind``."""
    if kind == 0:
        if v.dtype.kind == "f":  # double64 integers (checked to be exact where the kind was chosen)
            with np.errstate(invalid="ignore"):
                return np.where(np.isfinite(v) & (np.abs(v) <= scaling.INT32_LIMIT), v, 0).astype(np.int64)
        return v.astype(np.int64)
    if kind == 1:
        with np.errstate(over="ignore", invalid="ignore"):
            return f32_to_codes(v.astype(np.float32))
    return f64_to_codes(v.astype(np.float64))


def _values(codes: np.ndarray, kind: int) -> np.ndarray:
    """The float64 values ``codes`` of value kind ``kind`` stand for (before any recipe)."""
    if kind == 0:
        return codes.astype(np.float64)
    return (codes_to_f32(codes) if kind == 1 else codes_to_f64(codes)).astype(np.float64)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


def _fits_int32(v: np.ndarray) -> bool:
    return bool(v.size == 0 or (v.min() >= -scaling.INT32_LIMIT - 1 and v.max() <= scaling.INT32_LIMIT))


def marker_annotations(recording: XdfRecording, stream: XdfStream) -> tuple[mne.Annotations, np.ndarray | None]:
    """Every marker of the file as an annotation of ``stream``: onset = the marker's timestamp
    minus the stream's first timestamp (seconds on MNE's time axis of the stream), duration 0,
    description the marker's string (a multi-channel marker's strings joined by ", "); with
    each marker's own timestamp, in the annotations' (MNE's) order. None when the file has no
    marker or the stream no sample to count from."""
    orig_time = recording.meas_date
    onset, description, stamps = [], [], []
    if stream.n_samples and np.isfinite(stream.timestamps[0]):
        first = stream.timestamps[0]
        for markers in recording.markers:
            for t, row in zip(markers.timestamps, markers.values):
                if np.isfinite(t):
                    onset.append(t - first)
                    description.append(", ".join(row))
                    stamps.append(t)
    ann = mne.Annotations(onset, [0.0] * len(onset), description, orig_time=orig_time,
                          extras=[{"timestamp": t} for t in stamps])  # sorted along with the onsets
    if not onset:
        return mne.Annotations([], [], [], orig_time=orig_time), None
    return ann, np.array([e["timestamp"] for e in ann.extras], np.float64)
