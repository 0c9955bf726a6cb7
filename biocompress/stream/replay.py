"""Replay: a recording published as a live LSL stream, in real time (tests, demos).

Samples are pushed ``chunk_size`` at a time when the wall clock reaches them, each with
its own timestamp ``t0 + n / sfreq`` (``n`` counts samples from the start, across
loops), so a recorder receives a regular stream whose every timestamp is known. Voltage
channels go out in microvolts as float32 (what amplifiers send) or in volts as double64
(MNE's values, bit for bit). With ``counter``, a last channel ``counter`` (type stim, so
lossy modes keep it exact) holds ``n`` modulo 2^24: a recorder proves with it that no
sample was lost or duplicated. Annotations go out on a string marker stream
``<name>-markers``, each stamped exactly as the sample at its onset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mne.io.constants import FIFF
from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

from ..errors import BadInputError
from .live import COUNTER_MODULUS, COUNTER_NAME
from .sources import raw_chunks

FORMATS = ("float32", "double64")
READ_SECONDS = 1.0  # the recording is read this much at a time
SLEEP_STEP_S = 0.05  # waits are cut into steps this long, to see a stop request
LINGER_S = 0.5  # after the last sample, the outlets stay this long so that consumers get it
UNIT_NAMES = {FIFF.FIFF_UNIT_T: "tesla", FIFF.FIFF_UNIT_T_M: "tesla/m", FIFF.FIFF_UNIT_CEL: "celsius"}


def open_recording(path):
    """A recording MNE reads, or a biocompress archive (through read_raw)."""
    from ..files.read import read_raw
    from ..io.source import open_raw
    from ..system.outputs import is_archive

    path = Path(path)
    return read_raw(path) if path.is_file() and is_archive(path) else open_raw(path)


class Replay:
    """Publish ``raw`` as the LSL stream ``name`` (``run`` blocks until the end or ``stop``)."""

    def __init__(self, raw, name: str, *, chunk_size: int = 32, loop: bool = False, counter: bool = False,
                 value_format: str = "float32", source_id: str | None = None, stype: str | None = None,
                 markers: bool = True, speed: float = 1.0):
        if value_format not in FORMATS:
            raise BadInputError(None, f"replay formats are {', '.join(FORMATS)}; got {value_format!r}")
        if chunk_size < 1:
            raise BadInputError(None, f"the chunk size must be a positive number of samples, got {chunk_size}")
        if not (np.isfinite(speed) and speed > 0):
            raise BadInputError(None, f"the speed must be positive, got {speed!r}")
        if raw.n_times == 0:
            raise BadInputError(None, "the recording holds no samples")
        if counter and COUNTER_NAME in [c.lower() for c in raw.ch_names]:
            raise BadInputError(None, f"the recording has a channel named {COUNTER_NAME!r} already")
        self.raw, self.name, self.chunk_size, self.loop = raw, name, int(chunk_size), loop
        self.counter, self.value_format, self.speed = counter, value_format, float(speed)
        self.sfreq = float(raw.info["sfreq"])
        self.source_id = source_id or f"biocompress-replay-{name}"
        types = raw.get_channel_types()
        volts = np.array([ch["unit"] == FIFF.FIFF_UNIT_V for ch in raw.info["chs"]])
        micro = value_format == "float32"
        self.gain = np.where(volts & micro, 1e6, 1.0)
        units = ["microvolts" if v and micro else "volts" if v else UNIT_NAMES.get(int(ch["unit"]), "none")
                 for v, ch in zip(volts, raw.info["chs"])]
        names = list(raw.ch_names)
        if counter:
            names, types, units = names + [COUNTER_NAME], types + ["stim"], units + ["none"]
        main_type = stype or ("EEG" if "eeg" in types else types[0].upper())
        self.info = StreamInfo(name, main_type, len(names), self.sfreq, value_format.replace("double", "float"),
                               self.source_id)
        self.info.set_channel_names(names)
        self.info.set_channel_types(types)
        self.info.set_channel_units(units)
        self.onsets = self._marker_onsets() if markers else np.zeros(0, np.int64)
        self.marker_info = None
        if self.onsets.size:
            self.marker_info = StreamInfo(f"{name}-markers", "Markers", 1, 0.0, "string", f"{self.source_id}-markers")
            self.marker_info.set_channel_names(["marker"])
        self.t0: float | None = None  # timestamp of sample 0, once running
        self.pushed = 0

    def _marker_onsets(self) -> np.ndarray:
        ann = self.raw.annotations
        if not len(ann):
            return np.zeros(0, np.int64)
        idx = self.raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
        keep = (idx >= 0) & (idx < self.raw.n_times)
        self.descriptions = [str(d) for d, k in zip(ann.description, keep) if k]
        return np.asarray(idx[keep], np.int64)

    def stamp(self, n) -> np.ndarray:
        """Timestamps of samples ``n`` (counted from the start, across loops)."""
        return self.t0 + np.asarray(n, np.float64) / (self.sfreq * self.speed)

    def run(self, stop: threading.Event | None = None, *, wait_for_consumer: float | None = None,
            max_samples: int | None = None, on_chunk: Callable[[int], None] | None = None) -> int:
        """Publish until the end of the recording (every loop of it with ``loop``), ``stop``,
        or ``max_samples``; return how many samples were pushed. ``wait_for_consumer``:
        seconds to wait for a first inlet before the first sample (BadInputError if none)."""
        stop = stop or threading.Event()
        outlet = StreamOutlet(self.info, self.chunk_size)
        marker_outlet = StreamOutlet(self.marker_info, 1) if self.marker_info is not None else None
        try:
            if wait_for_consumer is not None:
                self._wait_for_consumer(outlet, wait_for_consumer, stop)
            self.t0 = local_clock()
            while not stop.is_set():
                for window in raw_chunks(self.raw, max(self.chunk_size, int(READ_SECONDS * self.sfreq))):
                    if not self._push_window(outlet, marker_outlet, window, stop, max_samples, on_chunk):
                        return self.pushed
                if not self.loop:
                    break
            return self.pushed
        finally:
            if self.pushed and not stop.is_set():
                stop.wait(LINGER_S)
            outlet._del()
            if marker_outlet is not None:
                marker_outlet._del()

    def _wait_for_consumer(self, outlet, timeout: float, stop: threading.Event) -> None:
        """Until an inlet opens the data stream (a recorder opens the marker streams it wants
        before the data stream: it misses no marker)."""
        deadline = time.monotonic() + timeout
        while not outlet.wait_for_consumers(min(SLEEP_STEP_S, max(0.0, deadline - time.monotonic()))):
            if stop.is_set():
                return
            if time.monotonic() >= deadline:
                raise BadInputError(None, f"no consumer connected to LSL stream {self.name!r} within {timeout:g} s")

    def _push_window(self, outlet, marker_outlet, window, stop, max_samples, on_chunk) -> bool:
        """Push one window of the recording, chunk by chunk in real time; False to stop."""
        values = (window.values * self.gain[:, None]).T
        for a in range(0, values.shape[0], self.chunk_size):
            if max_samples is not None and self.pushed >= max_samples:
                return False
            part = values[a : a + self.chunk_size]
            if max_samples is not None:
                part = part[: max_samples - self.pushed]
            n = self.pushed + np.arange(part.shape[0])
            stamps = self.stamp(n)
            if not self._wait_until(stamps[-1], stop):
                return False
            if self.counter:
                part = np.column_stack([part, n % COUNTER_MODULUS])
            outlet.push_chunk(np.ascontiguousarray(part, np.float32 if self.value_format == "float32" else np.float64),
                              timestamp=stamps)
            if marker_outlet is not None:
                self._push_markers(marker_outlet, window.start + a, part.shape[0])
            self.pushed += part.shape[0]
            if on_chunk is not None:
                on_chunk(self.pushed)
        return True

    def _push_markers(self, marker_outlet, at: int, n: int) -> None:
        """Markers whose onset sample is in ``[at, at + n)`` of the recording's current pass."""
        for k in np.flatnonzero((self.onsets >= at) & (self.onsets < at + n)):
            sample = self.pushed + int(self.onsets[k]) - at
            marker_outlet.push_sample([self.descriptions[k]], timestamp=float(self.stamp(sample)))

    def _wait_until(self, timestamp: float, stop: threading.Event) -> bool:
        while True:
            left = timestamp - local_clock()
            if left <= 0:
                return True
            if stop.wait(min(left, SLEEP_STEP_S)):
                return False
