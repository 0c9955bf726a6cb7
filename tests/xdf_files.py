"""Small XDF files made up for tests (written with biocompress.io.xdf_write, read back by pyxdf).

``synthetic_xdf`` writes, in this order:

0. ``Amp`` EEG float32, 6 channels @ 250 Hz in microvolts (a NaN with a payload, ±inf, −0.0);
1. ``Aux`` int16, 4 misc channels @ 100 Hz (int16 extremes);
2. ``Dbl`` double64, 3 channels @ 50 Hz: true doubles (an EEG channel in µV), integers, float32 values;
3. ``Events`` string markers, irregular (one before the EEG starts, one non-ASCII, one with two
   channels' worth of text in one string);
4. ``Irr`` float32, 2 channels, irregular (nominal_srate 0);
5. ``Empty`` float32, 3 channels @ 64 Hz, no sample (a footer all the same);
6. ``Count`` int64, 2 channels @ 250 Hz: a counter, and values beyond int32.

Timestamps are stamped as LSL does (each pushed chunk's first sample from the clock, the others
the previous plus 1 / rate), so the writer leaves most of them out of the file, as recorders do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biocompress.io.xdf_write import (
    StreamToWrite,
    file_header_xml,
    stream_footer_xml,
    stream_header_xml,
    write_xdf,
)

DATETIME = "2024-03-05T10:20:30+0100"


def lsl_stamps(n: int, rate: float, chunk: int, t0: float, rng) -> np.ndarray:
    out = np.empty(n)
    for s in range(0, n, chunk):
        out[s] = t0 + s / rate + rng.normal(0, 3e-4)
        for i in range(s + 1, min(n, s + chunk)):
            out[i] = out[i - 1] + 1.0 / rate
    return out


@dataclass
class Made:
    """A stream as written: what reading it back must give."""

    index: int
    name: str
    type: str
    channel_format: str
    values: object
    timestamps: np.ndarray
    clock: np.ndarray
    header_xml: bytes
    footer_xml: bytes | None


def _stream(index, name, kind, fmt, rate, values, stamps, channels=None, clock=None, footer=True, stream_id=None):
    n_ch = len(values[0]) if fmt == "string" and values else (np.asarray(values).shape[1] if fmt != "string" else 1)
    header = stream_header_xml(name, kind, n_ch, rate, fmt, source_id=f"src-{name}", channels=channels)
    clock = np.zeros((0, 2)) if clock is None else np.asarray(clock, np.float64)
    foot = stream_footer_xml(stamps, clock[:, 0], clock[:, 1]) if footer else None
    write = StreamToWrite(stream_id if stream_id is not None else index + 11, header, fmt, rate, n_ch, values,
                          np.asarray(stamps, np.float64), clock[:, 0], clock[:, 1], foot)
    return write, Made(index, name, kind, fmt, values, np.asarray(stamps, np.float64), clock, header, foot)


def synthetic_streams(seed: int = 0, eeg_samples: int = 1300):
    rng = np.random.default_rng(seed)
    t0 = 5000.25
    out = []
    eeg = (np.cumsum(rng.normal(0, 3, (eeg_samples, 6)), axis=0) * 0.48828125).astype(np.float32)
    eeg[10, 5] = np.array([0x7FC00123], np.uint32).view(np.float32)[0]
    eeg[11, 5], eeg[12, 5], eeg[13, 5] = np.inf, -np.inf, -0.0
    labels = [{"label": n, "type": "EEG", "unit": "microvolts"} for n in ("Fz", "Cz", "Pz", "Oz", "C3", "C4")]
    out.append(_stream(0, "Amp", "EEG", "float32", 250.0, eeg, lsl_stamps(eeg_samples, 250.0, 32, t0, rng), labels,
                       clock=[[t0 + 1, -1.5e-4], [t0 + 3.5, -1.25e-4], [t0 + 5.5, 2.0e-5]]))
    aux = rng.integers(-300, 300, (520, 4)).cumsum(axis=0).astype(np.int16)
    aux[0] = [-32768, 32767, 0, -1]
    out.append(_stream(1, "Aux", "AUX", "int16", 100.0, aux, lsl_stamps(520, 100.0, 10, t0 + 0.1, rng),
                       [{"label": f"A{i}", "type": "misc"} for i in range(4)]))
    dbl = np.column_stack([rng.normal(0, 20, 260), rng.integers(-1000, 1000, 260).astype(np.float64),
                           rng.normal(0, 1, 260).astype(np.float32).astype(np.float64)])
    dbl[5, 0] = np.array([0x7FF8000000000ABC], np.uint64).view(np.float64)[0]
    dbl[6, 0] = -0.0
    out.append(_stream(2, "Dbl", "Mixed", "double64", 50.0, dbl, lsl_stamps(260, 50.0, 13, t0 + 0.05, rng),
                       [{"label": "E1", "type": "EEG", "unit": "microvolts"}, {"label": "N", "type": "misc"},
                        {"label": "S", "type": "misc"}], clock=[[t0 + 2, 1e-3]]))
    marks = [["start"], ["stimulus/left"], ["Größe ÷ 2"], ["a, b"], ["end"]]
    mark_t = np.array([t0 - 0.5, t0 + 1.25, t0 + 2.5, t0 + 3.0, t0 + 5.0])
    out.append(_stream(3, "Events", "Markers", "string", 0.0, marks, mark_t, clock=[[t0 + 2.5, -2e-4]]))
    irr = rng.normal(0, 1, (40, 2)).astype(np.float32)
    out.append(_stream(4, "Irr", "Gaze", "float32", 0.0, irr, t0 + np.sort(rng.uniform(0, 5, 40))))
    out.append(_stream(5, "Empty", "PPG", "float32", 64.0, np.zeros((0, 3), np.float32), np.zeros(0)))
    count = np.column_stack([np.arange(1300), (1 << 40) + rng.integers(0, 1 << 20, 1300)]).astype(np.int64)
    out.append(_stream(6, "Count", "Counter", "int64", 250.0, count, lsl_stamps(1300, 250.0, 32, t0, rng)))
    return out


def synthetic_xdf(path, streams=None, *, datetime_text: str | None = DATETIME, **write_options) -> list[Made]:
    """Write an XDF file at ``path``; return the streams as written."""
    streams = streams if streams is not None else synthetic_streams()
    with open(path, "wb") as f:
        write_xdf(f, file_header_xml(datetime_text), [w for w, _ in streams], **write_options)
    return [m for _, m in streams]


def eeg_only(path, n_channels: int = 4, n: int = 600, rate: float = 200.0, seed: int = 1, name: str = "EEG1",
             kind: str = "EEG") -> list[Made]:
    """One float32 stream."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, (n, n_channels)).astype(np.float32)
    return synthetic_xdf(path, [_stream(0, name, kind, "float32", rate, x, lsl_stamps(n, rate, 20, 100.0, rng))])


def stream(index, name, kind, fmt, rate, values, stamps, **kwargs):
    """One stream to pass to :func:`synthetic_xdf` (see ``_stream``)."""
    return _stream(index, name, kind, fmt, rate, values, stamps, **kwargs)
