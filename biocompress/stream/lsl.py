"""A live source on the Lab Streaming Layer (mne_lsl.lsl).

:class:`LSLSource` resolves a numeric stream by name (and optionally type and source_id),
describes it from its XML header (channel labels, types and units, rate, format), and
yields :class:`~.blocks.Chunk` s with every sample's LSL timestamp as the sender stamped it
and contiguous sample numbers. Marker streams (string or numeric, irregular or not) are
pulled alongside as :class:`~.blocks.Marker` s with their exact timestamps, and each
stream's clock offset is measured every few seconds.

No sample is lost or duplicated between the inlet and the chunks: the inlet buffers up
to ``buffer_s`` seconds while the caller is busy (liblsl drops the oldest samples beyond
that), samples are pulled until none is left, and nothing is pulled twice. A stream that
disappears is looked for again for ``reconnect_s`` seconds: the same stream restarted
(same channels, rate and format) continues the recording, one with another shape, or
none at all, raises :class:`~biocompress.errors.StreamError`. A stream silent for a second
whose outlet is no longer on the network counts as lost too (liblsl does not always
notice).
"""

from __future__ import annotations

import threading
import time
import warnings
from decimal import Decimal, InvalidOperation

import mne
import numpy as np
from mne_lsl.lsl import StreamInlet, local_clock, resolve_streams
from mne_lsl.lsl._utils import LostError

from ..errors import BadInputError, StreamError
from .blocks import Chunk, ClockOffset, Marker
from .description import VOLT_UNITS, StreamDescription, unit_scale

FORMAT_NAMES = {np.float32: "float32", np.float64: "double64", np.int8: "int8", np.int16: "int16",
                np.int32: "int32", np.int64: "int64"}
PULL_SAMPLES = 4096  # per pull; pulls repeat until the inlet is empty
READ_VALUES = 1 << 22  # values (samples × channels) one read takes at most; the rest waits in the inlet
CLOCK_EVERY_S = 5.0
OPEN_TIMEOUT_S = 10.0
RESOLVE_STEP_S = 0.5
SILENCE_S = 1.0  # a regular stream silent this long is looked for on the network
CHECK_EVERY_S = 1.0
MISSING_CHECKS = 2


def resolve(name: str, *, stype: str | None = None, source_id: str | None = None, timeout: float = 5.0):
    """The one stream named ``name`` (of type ``stype``, from ``source_id`` where given),
    waiting up to ``timeout`` seconds for it; BadInputError if none or several match."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        found = resolve_streams(timeout=max(0.05, min(RESOLVE_STEP_S, left)), name=name)
        match = {s.uid: s for s in found if (stype is None or s.stype == stype)
                 and (source_id is None or s.source_id == source_id)}
        if len(match) > 1:
            ids = ", ".join(sorted(repr(s.source_id) for s in match.values()))
            raise BadInputError(None, f"{len(match)} LSL streams are named {name!r} (source_id {ids}); "
                                "pick one with --source-id")
        if match:
            return next(iter(match.values()))
        if time.monotonic() >= deadline:
            what = " ".join(x for x in (f"of type {stype!r}" if stype else "",
                                        f"from source {source_id!r}" if source_id else "") if x)
            raise BadInputError(None, f"no LSL stream named {name!r}{' ' + what if what else ''} found "
                                f"within {timeout:g} s")
        time.sleep(0.05)


def _unit_scale(unit: str | None) -> float:
    """SI value of one unit named in an LSL description ("microvolts", "uV", or MNE's unit_mul
    as a number, e.g. "-6"); 1 for anything else (the values are kept as they are)."""
    text = (unit or "").strip().lower()
    if text in VOLT_UNITS:
        return float(VOLT_UNITS[text])
    try:
        mul = Decimal(text)
    except InvalidOperation:
        return 1.0
    return unit_scale(int(mul)) if mul == mul.to_integral_value() and -24 <= mul <= 24 else 1.0


def describe(sinfo) -> StreamDescription:
    """A numeric regular stream's description from its full StreamInfo (an inlet's)."""
    if sinfo.dtype == "string":
        raise BadInputError(None, f"LSL stream {sinfo.name!r} holds strings (markers), not samples; "
                            "record it alongside a data stream with --markers")
    if not sinfo.sfreq > 0:
        raise BadInputError(None, f"LSL stream {sinfo.name!r} has no regular rate (an event stream); "
                            "record it alongside a data stream with --markers")
    n = sinfo.n_channels
    notes = []
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            info = sinfo.get_channel_info()
        notes += [str(w.message) for w in said]  # e.g. no channel description: channels numbered
    except Exception as exc:  # noqa: BLE001 - a description MNE-LSL cannot parse: keep the XML, number the channels
        notes.append(f"channel description not understood ({type(exc).__name__}); channels numbered")
        info = mne.create_info([f"ch{k + 1}" for k in range(n)], sinfo.sfreq, "misc", verbose="ERROR")
    units = sinfo.get_channel_units() or [None] * n
    units = (list(units) + [None] * n)[:n]
    with info._unlock():
        for ch in info["chs"]:
            ch["unit_mul"] = 0  # samples are stored in SI units; the scale below gets them there
    source = {"kind": "lsl", "name": sinfo.name, "type": sinfo.stype, "source_id": sinfo.source_id,
              "hostname": sinfo.hostname, "uid": sinfo.uid, "session_id": sinfo.session_id,
              "created_at": sinfo.created_at, "channel_format": FORMAT_NAMES[sinfo.dtype],
              "nominal_srate": sinfo.sfreq, "units": units, "notes": notes, "xml": sinfo.as_xml}
    return StreamDescription(info, FORMAT_NAMES[sinfo.dtype], np.array([_unit_scale(u) for u in units]), source)


def _open_stream(inlet: StreamInlet, timeout: float) -> None:
    """``inlet.open_stream(timeout)`` without the half second mne-lsl sleeps after it.

    mne-lsl waits because liblsl could return before the outlet had registered the new consumer,
    so that a sample pushed at once was missed (liblsl issue 176). A recorder takes the stream
    from whichever sample comes first: the wait only held back the first half second of
    samples (measured: the first sample reached the recorder 0.5 s after the outlet had
    registered the inlet). Falls back to mne-lsl's own call where its internals differ."""
    try:
        from ctypes import byref, c_double, c_int

        from mne_lsl.lsl._utils import check_timeout, handle_error
        from mne_lsl.lsl.load_liblsl import lib

        lock, handle = inlet._lock, inlet._obj
        inlet._stream_is_open  # noqa: B018 - the flag this sets must exist
    except (ImportError, AttributeError):
        inlet.open_stream(timeout=timeout)
        return
    errcode = c_int()
    with lock:
        lib.lsl_open_stream(handle, c_double(check_timeout(timeout)), byref(errcode))
    handle_error(errcode)
    inlet._stream_is_open = True


class _Inlet:
    """One opened LSL inlet (no silent recovery: a lost stream raises LostError)."""

    def __init__(self, sinfo, buffer_s: float):
        self.inlet = StreamInlet(sinfo, max_buffered=max(1, int(np.ceil(buffer_s))), recover=False)
        self.name = sinfo.name
        self.offset: float | None = None
        self._measured: ClockOffset | None = None
        # mne-lsl runs time_correction and pull_chunk under one lock: liblsl's first clock
        # offset (~0.6 s of exchanges) is measured before the data stream opens, or the first
        # samples would wait for it
        self._measure()
        try:
            _open_stream(self.inlet, OPEN_TIMEOUT_S)
            self.sinfo = self.inlet.get_sinfo(timeout=OPEN_TIMEOUT_S)
        except (TimeoutError, LostError):
            self.close()
            raise BadInputError(None, f"LSL stream {sinfo.name!r} found but could not be opened within "
                                f"{OPEN_TIMEOUT_S:g} s") from None
        self.name = self.sinfo.name
        self.labels = self.sinfo.get_channel_names() or [str(k) for k in range(self.sinfo.n_channels)]
        self._next_clock = 0.0 if self.offset is None else time.monotonic() + CLOCK_EVERY_S
        self._measuring: threading.Thread | None = None

    def pull(self, timeout: float):
        """(samples (n, n_channels) or lists of strings, timestamps): everything waiting, up to
        READ_VALUES values, waiting up to ``timeout`` for the first ones."""
        parts, stamps, taken = [], [], 0
        limit = max(PULL_SAMPLES, READ_VALUES // self.sinfo.n_channels)
        # liblsl waits out a pull's whole timeout to fill max_samples: the wait is for one sample
        # only, then everything already there is taken at once (else every read lasts `timeout`)
        while taken < limit:
            first = not taken
            data, ts = self.inlet.pull_chunk(timeout=timeout if first else 0.0,
                                             max_samples=1 if first else min(PULL_SAMPLES, limit - taken))
            if len(ts):
                parts.append(np.array(data) if isinstance(data, np.ndarray) else data)  # the inlet reuses its buffer
                stamps.append(np.array(ts, np.float64))
                taken += len(ts)
            if not len(ts) or (not first and len(ts) < PULL_SAMPLES):
                break
        return parts, stamps

    def clock(self, now: float) -> ClockOffset | None:
        """The last clock offset measured, once; a new measurement is started when due (every
        CLOCK_EVERY_S). liblsl's first one takes up to a second of exchanges with the outlet:
        it runs on a thread of its own (as LabRecorder's do), so the samples never wait for it."""
        done, self._measured = self._measured, None
        if now >= self._next_clock and (self._measuring is None or not self._measuring.is_alive()):
            self._next_clock = now + CLOCK_EVERY_S
            self._measuring = threading.Thread(target=self._measure, name="lsl-clock", daemon=True)
            self._measuring.start()
        return done

    def _measure(self) -> None:
        try:
            offset = float(self.inlet.time_correction(timeout=1.0 if self.offset is None else 0.1))
        except (TimeoutError, LostError, RuntimeError):
            return
        self.offset = offset
        self._measured = ClockOffset(self.name, local_clock(), offset)

    @property
    def waiting(self) -> int:
        try:
            return int(self.inlet.samples_available)
        except Exception:  # noqa: BLE001 - a figure for the status line only
            return 0

    def close(self) -> None:
        if self._measuring is not None:
            self._measuring.join(1.5)  # time_correction gives up after 1 s
        try:
            self.inlet.close_stream()
        except Exception:  # noqa: BLE001 - closing a lost stream
            pass
        self.inlet._del()


def marker_text(values, labels: list[str]) -> str:
    """One marker sample as text: the string(s) of a string stream; a numeric stream's value,
    or ``label=value`` of each nonzero channel of a multi-channel one."""
    if isinstance(values, (list, tuple)):
        return values[0] if len(values) == 1 else "/".join(values)
    values = np.asarray(values)

    def number(v):
        return str(int(v)) if float(v).is_integer() else f"{float(v):.17g}"

    if values.size == 1:
        return number(values[0])
    nonzero = [f"{labels[k]}={number(values[k])}" for k in np.flatnonzero(values)]
    return ", ".join(nonzero) if nonzero else "0"


class LSLSource:
    """A live LSL stream as chunks with timestamps, plus marker streams and clock offsets.

    ``open()`` resolves and opens every stream (BadInputError naming the one missing);
    ``read(timeout)`` returns the next chunk (None if nothing came within ``timeout``),
    ``markers()`` the markers pulled since the last call, ``clock_offsets()`` the offsets
    measured since the last call. Use as a context manager.
    """

    def __init__(self, name: str, *, stype: str | None = None, source_id: str | None = None,
                 markers: tuple[str, ...] | list[str] = (), timeout: float = 5.0, buffer_s: float = 360.0,
                 reconnect_s: float = 5.0):
        self.name, self.stype, self.source_id = name, stype, source_id
        self.marker_names = list(markers)
        self.timeout, self.buffer_s, self.reconnect_s = timeout, buffer_s, reconnect_s
        self.description: StreamDescription | None = None
        self.n_samples = 0
        self.notes: list[str] = []
        self._data: _Inlet | None = None
        self._markers: list[_Inlet] = []
        self._lost_at: float | None = None
        self._clocks: list[ClockOffset] = []  # measured, not yet handed over
        self._last_data = self._next_check = time.monotonic()
        self._missing = 0  # resolves in a row that did not find the silent stream

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False

    def open(self) -> "LSLSource":
        try:
            data = resolve(self.name, stype=self.stype, source_id=self.source_id, timeout=self.timeout)
            for marker_name in self.marker_names:
                self._markers.append(_Inlet(resolve(marker_name, timeout=self.timeout), self.buffer_s))
            self._data = _Inlet(data, self.buffer_s)  # last: its samples queue from here on
            self.description = describe(self._data.sinfo)
            now = time.monotonic()
            self._clocks = [c for inlet in [*self._markers, self._data] for c in [inlet.clock(now)] if c]
            self._last_data = self._next_check = time.monotonic()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for inlet in [self._data, *self._markers]:
            if inlet is not None:
                inlet.close()
        self._data, self._markers = None, []

    @property
    def waiting(self) -> int:
        """Samples that arrived and wait in the inlet's buffer."""
        return self._data.waiting if self._data is not None else 0

    def read(self, timeout: float) -> Chunk | None:
        if self._lost_at is not None:
            self._look_again()
            return None
        try:
            parts, stamps = self._data.pull(timeout)
        except RuntimeError:  # LostError, or liblsl failing otherwise: the stream is gone for this inlet
            self._lose()
            return None
        now = time.monotonic()
        if not parts:
            if now - self._last_data >= SILENCE_S and now >= self._next_check:
                self._check_alive(now)
            return None
        self._last_data, self._missing = now, 0
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        stored = self.description.stored(samples)
        chunk = Chunk(self.n_samples, self.description.recipe.forward(stored, np.arange(stored.shape[0])),
                      stamps[0] if len(stamps) == 1 else np.concatenate(stamps), stored)
        self.n_samples = chunk.stop
        return chunk

    def _lose(self) -> None:
        self._lost_at = time.monotonic()
        self._data.close()

    def _check_alive(self, now: float) -> None:
        """A silent stream: is its outlet still on the network? (liblsl does not always
        notice an outlet that is gone.) Lost after MISSING_CHECKS resolves without it."""
        self._next_check = now + CHECK_EVERY_S
        uid = self._data.sinfo.uid
        found = resolve_streams(timeout=RESOLVE_STEP_S, name=self.name)
        self._missing = 0 if any(s.uid == uid for s in found) else self._missing + 1
        if self._missing >= MISSING_CHECKS:
            self.notes.append(f"stream silent for {now - self._last_data:.1f} s and gone from the network")
            self._lose()

    def _look_again(self) -> None:
        """The data stream was lost: look for it (restarted) until ``reconnect_s`` has passed."""
        left = self._lost_at + self.reconnect_s - time.monotonic()
        try:
            sinfo = resolve(self.name, stype=self.stype, source_id=self.source_id,
                            timeout=max(0.05, min(RESOLVE_STEP_S, left)))
        except BadInputError:
            if left <= 0:
                raise StreamError(f"LSL stream {self.name!r} was lost after {self.n_samples} samples and did "
                                  f"not come back within {self.reconnect_s:g} s", self.n_samples) from None
            return
        inlet = _Inlet(sinfo, self.buffer_s)
        changed = self.description.same_shape(describe(inlet.sinfo))
        if changed is not None:
            inlet.close()
            raise StreamError(f"LSL stream {self.name!r} restarted with {changed}; recording stopped after "
                              f"{self.n_samples} samples", self.n_samples)
        self._data, self._lost_at = inlet, None
        self._last_data, self._missing = time.monotonic(), 0
        self.notes.append(f"stream restarted (new uid {inlet.sinfo.uid}) at sample {self.n_samples}")

    def markers(self) -> list[Marker]:
        out = []
        for inlet in list(self._markers):
            try:
                parts, stamps = inlet.pull(0.0)
            except LostError:  # a marker stream that went away: the data stream goes on
                self.notes.append(f"marker stream {inlet.name!r} lost")
                self._markers.remove(inlet)
                inlet.close()
                continue
            for samples, ts in zip(parts, stamps):
                out += [Marker(inlet.name, float(t), marker_text(s, inlet.labels)) for s, t in zip(samples, ts)]
        return out

    def clock_offsets(self) -> list[ClockOffset]:
        """The offsets of the streams' clocks measured since the last call (each every few seconds)."""
        now = time.monotonic()
        inlets = [*self._markers] + ([self._data] if self._lost_at is None else [])
        found, self._clocks = self._clocks + [c for inlet in inlets for c in [inlet.clock(now)] if c], []
        return found

    def relative_offset(self, stream: str) -> float:
        """What to add to a marker stream's timestamps to bring them onto the data stream's
        clock: 0 for streams of the data stream's host (one clock: measured offsets would
        only add their noise), else the difference of the measured offsets."""
        inlet = next((i for i in self._markers if i.name == stream), None)
        data = self.description.source.get("hostname") if self.description is not None else None
        if inlet is None or inlet.sinfo.hostname == data:
            return 0.0
        return self.offset(stream) - self.offset(self.name)

    def offset(self, stream: str) -> float:
        """The latest clock offset of a stream (0 before any was measured)."""
        for inlet in [self._data, *self._markers]:
            if inlet is not None and inlet.name == stream and inlet.offset is not None:
                return inlet.offset
        return 0.0
