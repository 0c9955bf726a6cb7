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

from ..codecs.float_codes import f32_to_codes, f64_to_codes
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
    codes: np.ndarray  # (channels, samples) int64
    values: np.ndarray  # (channels, samples) MNE float64, rebuilt from the codes as a reader does
    annotations: mne.Annotations
    marker_stamps: np.ndarray | None  # each annotation's marker timestamp, in annotation order
    warnings: list[str] = field(default_factory=list)

    @property
    def sfreq(self) -> float:
        return float(self.info["sfreq"])


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
    kinds, codes = exact_codes(path, stream)
    unscaled = [names[c] for c in range(len(names)) if kinds[c] == 2 and scales[c] != 1.0]
    scales = np.where(kinds == 2, 1.0, scales)
    recipe = scaling.Recipe(("mul:e",), {"e": scales.astype(np.float64)})
    values = np.empty(codes.shape, np.float64)
    for kind in np.unique(kinds):
        rows = np.flatnonzero(kinds == kind)
        values[rows] = scaling.from_codes(recipe, codes[rows], rows, int(kind))
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
    return StreamPlan(stream, info, recipe, kinds, codes, values, annotations, stamps, warnings)


def exact_codes(path, stream: XdfStream) -> tuple[np.ndarray, np.ndarray]:
    """Value kind per channel and the (channels, samples) codes that give back every value
    of the stream bit for bit."""
    x = np.asarray(stream.values)
    fmt, n_ch = stream.channel_format, stream.channel_count
    kinds = np.empty(n_ch, np.int8)
    codes = np.empty((n_ch, x.shape[0]), np.int64)
    for c in range(n_ch):
        v = x[:, c]
        if fmt in ("int8", "int16", "int32") or (fmt == "int64" and _fits_int32(v)):
            kinds[c], codes[c] = 0, v.astype(np.int64)
        elif fmt == "float32":
            kinds[c], codes[c] = 1, f32_to_codes(v)
        elif fmt == "int64":
            if (np.abs(v) > EXACT_INT64).any():
                raise BadInputError(path, f"{stream.label()}: channel {c} holds int64 samples beyond ±2^53, "
                                    "which no value kind of the archive format holds exactly")
            kinds[c], codes[c] = 2, f64_to_codes(v.astype(np.float64))
        else:  # double64
            kinds[c], codes[c] = _double_codes(v)
    return kinds, codes


def _fits_int32(v: np.ndarray) -> bool:
    return bool(v.size == 0 or (v.min() >= -scaling.INT32_LIMIT - 1 and v.max() <= scaling.INT32_LIMIT))


def _double_codes(v: np.ndarray) -> tuple[int, np.ndarray]:
    bits = v.view(np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        whole = np.where(np.isfinite(v) & (np.abs(v) <= scaling.INT32_LIMIT), v, 0).astype(np.int64)
        if np.array_equal(whole.astype(np.float64).view(np.int64), bits):
            return 0, whole
        single = v.astype(np.float32)
    if np.array_equal(single.astype(np.float64).view(np.int64), bits):
        return 1, f32_to_codes(single)
    return 2, f64_to_codes(v)


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
