"""Recording a live stream: source → stream encoder → sink, with bounded latency.

:class:`Recorder` runs the loop: it pulls chunks from a live source (an LSL stream, or
arrays a program hands over), pushes them through the :class:`~.encoder.StreamEncoder`,
hands every block to the sink as soon as it exists, and flushes the encoder at least
every ``block_ms`` so that no sample waits longer than that for its block. It stops on
``duration``, on ``stop`` (a threading.Event; Ctrl-C, SIGTERM and SIGHUP set it when the
recorder runs on the main thread, a second one aborts), at the end of the source's data,
or when the source is lost; in every case what was recorded is finalized.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..codecs import get_codec
from ..container.reader import sample_bytes
from ..errors import BadInputError, StreamError
from ..files.fidelity import FidelityMeter
from ..io import scaling
from ..system.signals import stop_on_signals
from .blocks import Block, Chunk
from .description import StreamDescription, StreamHeader
from .encoder import StreamEncoder
from .plans import live_lossless_lanes, lossy_plan
from .sinks import Sink

BLOCK_MS = 50.0  # lossless: samples wait at most this long for their block (well under 100 ms end to end)
LOSSY_BLOCK_MS = 200.0  # lossy: the autoencoder's blocks (its look-ahead adds to the latency)
GROUP_CHANNELS = 32  # as compress(): the cross-channel stage finds references within a lane
FIT_SECONDS = 2.0  # lossy modes: the codecs are fitted to the stream's first seconds
POLL_S = 0.005  # a pull waits at most this long for samples
DRAIN_READS = 64  # on a stop request, reads of what already arrived (each up to 4 M values)
COUNTER_NAME = "counter"  # a channel of this name is checked for lost and duplicated samples
COUNTER_MODULUS = 1 << 24  # counters wrap here (float32 holds every integer below it)
MODES = ("lossless", "lossy", "near-lossless")
LATENCIES_KEPT = 100_000  # the end summary's latency percentiles are over the last this many blocks


@dataclass
class LiveStatus:
    """What the status line shows."""

    samples: int = 0
    seconds: float = 0.0  # of samples recorded
    rate: float = 0.0  # samples/s received, over the last second or so
    raw_bytes: int = 0  # the samples as the stream delivered them
    coded_bytes: int = 0
    latency_s: float | None = None  # age of the newest sample in a block, when it reached the sink
    latency_max_s: float = 0.0
    waiting: int = 0  # samples arrived but not yet pulled
    held: int = 0  # samples pulled but not yet in a block
    lost: int | None = None  # from a counter channel; None without one
    duplicated: int | None = None
    markers: int = 0
    blocks: int = 0

    @property
    def ratio(self) -> float | None:
        return self.raw_bytes / self.coded_bytes if self.coded_bytes else None

    def line(self) -> str:
        ratio = f"{self.ratio:.2f}" if self.ratio else "–"
        latency = f"{1000 * self.latency_s:.0f} ms" if self.latency_s is not None else "–"
        counted = f"lost {self.lost} dup {self.duplicated}" if self.lost is not None else "lost/dup ? (no counter)"
        return (f"{self.seconds:7.1f} s {self.rate:6.0f}/s ratio {ratio} latency {latency} "
                f"buffer {self.waiting + self.held} {counted} markers {self.markers}")


class CounterCheck:
    """Lost and duplicated samples, from a counter channel (+1 a sample, modulo 2^24)."""

    def __init__(self, channel: int):
        self.channel = channel
        self.last: int | None = None
        self.lost = self.duplicated = 0

    def update(self, chunk: Chunk, scale: float) -> None:
        x = chunk.values[self.channel] / scale
        if not np.isfinite(x).all():
            return
        counts = np.rint(x).astype(np.int64) % COUNTER_MODULUS
        if self.last is not None:
            counts = np.concatenate([[self.last], counts])
        steps = np.diff(counts) % COUNTER_MODULUS
        forward = steps < COUNTER_MODULUS // 2
        self.lost += int((steps[forward & (steps > 1)] - 1).sum())
        self.duplicated += int((steps == 0).sum() + (COUNTER_MODULUS - steps[~forward] + 1).sum())
        self.last = int(counts[-1])

    def restart(self) -> None:
        self.last = None


class _Spool:
    """Columns of arrays in time order: append, take the first n."""

    def __init__(self):
        self.parts: deque[np.ndarray] = deque()
        self.size = 0

    def append(self, x: np.ndarray) -> None:
        if x.shape[1]:
            self.parts.append(x)
            self.size += x.shape[1]

    def take(self, n: int) -> np.ndarray:
        out, need = [], n
        while need:
            part = self.parts[0]
            if part.shape[1] <= need:
                out.append(self.parts.popleft())
                need -= part.shape[1]
            else:
                out.append(part[:, :need])
                self.parts[0] = part[:, need:]
                need = 0
        self.size -= n
        return out[0] if len(out) == 1 else np.concatenate(out, axis=1)


class LiveFidelity:
    """Fidelity of a lossy stream measured as it is coded: each block is decoded when it
    reaches the sink and compared with the samples it came from, in windows of every channel.

    The decoding and the measures run on a thread of their own, in order: on the recorder's
    thread they held every block back by as long (decoding a 256-channel stream costs about
    an eighth of a core, a spectrum of every channel 0.1 s each window)."""

    def __init__(self, header: StreamHeader, lanes):
        d = header.description
        self.recipe, self.kinds = d.recipe, np.asarray(header.kinds)
        self.meter = FidelityMeter(d.n_channels, d.sfreq, d.ch_names, d.ch_types, [ch["unit"] for ch in d.info["chs"]])
        self.window = max(2048, int(math.ceil(4 * d.sfreq)))  # ≥ 2 s: every window gives one spectrum grid
        self.source = _Spool()
        self.decoded = {lane.start: _Spool() for lane in lanes}
        self._codecs: dict[str, object] = {}
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lossy-fidelity", daemon=True)
        self._thread.start()

    def add_source(self, values: np.ndarray) -> None:
        self._work.put((self.source.append, values))

    def add_block(self, block: Block) -> None:
        self._work.put((self._add_block, block))

    def result(self, ch_names: list[str]) -> dict:
        self._work.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._measure(final=True)
        out = self.meter.result()
        out["ch_names"] = list(ch_names)
        return out

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            if self._error is None:
                try:
                    item[0](item[1])
                except BaseException as exc:  # noqa: BLE001 - raised by result(), on the recorder's thread
                    self._error = exc

    def _add_block(self, block: Block) -> None:
        key = repr(sorted(block.config.items()))
        codec = self._codecs.get(key) or self._codecs.setdefault(key, get_codec(block.config))
        codes = codec.decode(block.payload)[:, : block.t_stop - block.t_start]
        picks = np.arange(block.ch_start, block.ch_stop)
        self.decoded[block.ch_start].append(scaling.from_codes(self.recipe, codes, picks,
                                                               int(self.kinds[block.ch_start])))
        self._measure(final=False)

    def _measure(self, final: bool) -> None:
        while True:
            ready = min(s.size for s in self.decoded.values())
            n = min(ready, self.window) if final else (self.window if ready >= self.window else 0)
            if n == 0:
                return
            x = self.source.take(n)
            y = np.concatenate([self.decoded[k].take(n) for k in sorted(self.decoded)], axis=0)
            self.meter.update(x, y)


def _lossy_attrs(mode: str, plan, quality, model_id: str) -> dict:
    attrs = {"mode": mode, "model_id": model_id, "step": float(plan.step)}
    if quality is not None:
        attrs["quality"] = int(quality)
    if plan.max_error_uv is not None:
        attrs["max_error_uv"] = float(plan.max_error_uv)
    return attrs


def plan_lanes(description: StreamDescription, mode: str, first: np.ndarray, *, block: int,
               quality: int | None = None, max_error_uv: float | None = None, model=None):
    """(lanes, header) of a stream in ``mode``; ``first``: its first samples (lossy modes fit
    their codecs to them)."""
    d = description
    if mode == "lossless":
        lanes = live_lossless_lanes(d.kinds, d.recipe, d.sfreq, block, GROUP_CHANNELS)
        return lanes, StreamHeader(d, mode, d.kinds, block)
    from ..codecs.lossy import model_file

    model_path = model or model_file.DEFAULT_MODEL
    net, _, meta = model_file.load(model_path)
    stride = int(net.stride)
    block = max(stride, -(-block // stride) * stride)  # the autoencoder codes whole strides
    picks = np.arange(d.n_channels)
    stim = np.array([t == "stim" for t in d.ch_types])
    units = [int(ch["unit"]) for ch in d.info["chs"]]
    plan = lossy_plan(mode, first, d.kinds.copy(), d.recipe, stim, units, d.ch_names, quality=quality,
                      max_error_uv=max_error_uv, model_path=model_path, model_id=meta["model_id"], block=block,
                      to_codes=lambda x: scaling.to_codes(d.recipe, x, picks, 0), when_due=True)
    custom = model is not None and meta["model_id"] != model_file.load()[2]["model_id"]
    header = StreamHeader(d, mode, plan.kinds, block, _lossy_attrs(mode, plan, quality, meta["model_id"]),
                          model_file.to_bytes(*model_file.load(model_path)) if custom else None)
    return plan.lanes, header


def check_mode(mode: str, quality: int | None, max_error_uv: float | None) -> None:
    """BadInputError unless the mode's settings are complete and valid."""
    from ..codecs.lossy.qualities import QUALITY_STEPS

    if mode not in MODES:
        raise BadInputError(None, f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "lossy" and quality not in QUALITY_STEPS:
        raise BadInputError(None, f"lossy mode needs a quality in {sorted(QUALITY_STEPS)}, got {quality!r}")
    if mode == "near-lossless" and not (max_error_uv is not None and max_error_uv > 0):
        raise BadInputError(None, f"near-lossless mode needs a positive --max-error in µV, got {max_error_uv!r}")
    if mode == "lossless" and (quality is not None or max_error_uv is not None):
        raise BadInputError(None, "quality and max_error_uv apply to the lossy and near-lossless modes")


@dataclass
class _Pending:
    """Chunks received before the lanes exist (lossy modes wait for FIT_SECONDS of samples)."""

    chunks: list[Chunk] = field(default_factory=list)

    @property
    def n(self) -> int:
        return sum(c.values.shape[1] for c in self.chunks)

    def first(self) -> np.ndarray:
        return np.concatenate([c.values for c in self.chunks], axis=1)


class Recorder:
    """One recording: a live source through the stream encoder into a sink.

    ``source``: an object with ``description`` (:class:`StreamDescription`),
    ``read(timeout) → Chunk | None`` (raising :class:`~biocompress.errors.StreamError` when
    the stream cannot go on), ``markers()``, ``clock_offsets()``, ``offset(stream)`` (its
    clock's offset to this machine's), ``relative_offset(stream)`` (a marker stream's clock
    to the data stream's), ``waiting``, ``notes`` and ``exhausted`` (no more data will come).
    """

    def __init__(self, source, sink: Sink, *, mode: str = "lossless", quality: int | None = None,
                 max_error_uv: float | None = None, model=None, block_ms: float | None = None,
                 duration: float | None = None, stop: threading.Event | None = None,
                 on_status: Callable[[LiveStatus], None] | None = None, status_every: float = 0.25,
                 clock: Callable[[], float] | None = None):
        check_mode(mode, quality, max_error_uv)
        if block_ms is not None and not block_ms > 0:
            raise BadInputError(None, f"the block period must be positive, got {block_ms!r} ms")
        if duration is not None and not duration > 0:
            raise BadInputError(None, f"the duration must be positive, got {duration!r} s")
        self.source, self.sink = source, sink
        self.mode, self.quality, self.max_error_uv, self.model = mode, quality, max_error_uv, model
        self.block_s = (block_ms or (BLOCK_MS if mode == "lossless" else LOSSY_BLOCK_MS)) / 1000
        d = source.description
        self.limit = int(round(duration * d.sfreq)) if duration is not None else None
        self.stop = stop or threading.Event()
        self.on_status, self.status_every = on_status, status_every
        self.clock = clock  # the clock of timestamps + offsets (LSL: local_clock); None: arrival times
        self.status = LiveStatus()
        self.n_fed = 0  # samples through the encoder
        self.sha = hashlib.sha256()
        self.encoder: StreamEncoder | None = None
        self.header: StreamHeader | None = None
        self.fidelity: LiveFidelity | None = None
        counter = [k for k, name in enumerate(d.ch_names) if name.lower() == COUNTER_NAME]
        self.counter = CounterCheck(counter[0]) if counter else None
        self._pending = _Pending()
        self._markers: list = []
        self._t_first: float | None = None
        self._start_time: dt.datetime | None = None
        self._name = d.source.get("name")  # the data stream's name (its clock offset)
        self._done: dict[int, int] = {}
        self._ages: deque = deque()  # (start, stop, timestamps or None, arrival) of chunks not yet all in blocks
        self._arrivals: deque = deque()  # (monotonic time, samples) over the last second
        self._notes_sent = 0
        self._latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)

    # --- the loop ---------------------------------------------------------------------
    def run(self) -> dict:
        """Record until a stop condition; finalize; return the end summary (raises the
        StreamError that ended it, once what was recorded is finalized)."""
        error = None
        try:
            with stop_on_signals(self.stop):
                reason = self._loop()
        except StreamError as exc:
            reason, error = "stream lost", exc
        except BadInputError as exc:  # e.g. a non-finite sample in a lossy mode
            reason, error = "bad samples", exc
        except BaseException:
            self._abandon()
            raise
        try:
            end = self._finish(reason, error)
        except BaseException:
            self._abandon()
            raise
        if error is not None:
            error.end = end  # what was recorded, finalized
            raise error
        return end

    def _loop(self) -> str:
        next_sync = next_status = time.monotonic()
        while True:
            if self.stop.is_set():
                self._drain()
                return "stopped"
            if self.limit is not None and self.status.samples >= self.limit:
                return "duration"
            if getattr(self.source, "exhausted", False):
                return "end of data"
            chunk = self.source.read(POLL_S)
            if chunk is not None:
                self._take(chunk)
            self._side_channels()
            now = time.monotonic()
            if self.mode == "lossless" and self._ages and now - self._ages[0][3] >= self.block_s:
                self._emit(self.encoder.flush())  # the oldest sample held has waited a block period
            if self.encoder is not None and now >= next_sync:
                self.sink.flush()
                next_sync = now + self.block_s
            if now >= next_status:
                self._report(now)
                next_status = now + self.status_every

    def _drain(self) -> None:
        """Samples that arrived before a stop request are recorded too."""
        for _ in range(DRAIN_READS):
            if self.source.waiting <= 0 or self.limit is not None and self.status.samples >= self.limit:
                return
            chunk = self.source.read(0.0)
            if chunk is None:
                return
            self._take(chunk)

    def _take(self, chunk: Chunk) -> None:
        if self.limit is not None and chunk.stop > self.limit:
            n = self.limit - chunk.start
            chunk = chunk.head(n)
        if chunk.values.shape[1] == 0:
            return
        self._arrivals.append((time.monotonic(), chunk.values.shape[1]))
        self.status.samples, self.status.seconds = chunk.stop, chunk.stop / self.source.description.sfreq
        if self._t_first is None:
            self._t_first = float(chunk.timestamps[0]) if chunk.timestamps is not None else None
            self._start_time = self._wall_time(chunk)
        if self.encoder is None:
            self._pending.chunks.append(chunk)
            if self.mode == "lossless" or self._pending.n >= FIT_SECONDS * self.source.description.sfreq:
                self._start()
        else:
            self._feed(chunk)

    def _wall_time(self, chunk: Chunk) -> dt.datetime:
        """Wall-clock time of a chunk's first sample."""
        now = time.time()
        if chunk.timestamps is None or self.clock is None:
            return dt.datetime.fromtimestamp(now, dt.timezone.utc)
        age = self.clock() - (float(chunk.timestamps[0]) + self.source.offset(self._name))
        return dt.datetime.fromtimestamp(now - max(0.0, age), dt.timezone.utc)

    def _start(self) -> None:
        d = self.source.description.with_start(self._start_time)
        first = self._pending.first()
        block = max(1, int(math.ceil(self.block_s * d.sfreq)))
        lanes, self.header = plan_lanes(d, self.mode, first, block=block, quality=self.quality,
                                        max_error_uv=self.max_error_uv, model=self.model)
        if self._pending.chunks[0].timestamps is not None:
            self.header.clock = str(d.source.get("kind") or "stream")
        self.encoder = StreamEncoder(lanes)
        self._done = {lane.start: 0 for lane in lanes}
        if self.mode != "lossless":
            self.fidelity = LiveFidelity(self.header, lanes)
        self.sink.start(self.header)
        pending, self._pending = self._pending.chunks, _Pending()
        for chunk in pending:
            self._feed(chunk)

    def _feed(self, chunk: Chunk) -> None:
        d = self.source.description
        if self.mode != "lossless":
            _require_finite(chunk, d.ch_names)
            self.fidelity.add_source(chunk.values)
        self.sha.update(sample_bytes(chunk.values))
        if self.counter is not None:
            self.counter.update(chunk, float(d.scale[self.counter.channel]))
        if chunk.timestamps is not None:
            self.sink.add_times(chunk.start, chunk.timestamps)
        s = self.status
        s.raw_bytes = chunk.stop * d.n_channels * d.sample_bytes
        self._ages.append((chunk.start, chunk.stop, chunk.timestamps, time.monotonic()))
        self._emit(self.encoder.push(chunk))
        self.n_fed = chunk.stop

    def _emit(self, blocks: list[Block]) -> None:
        for block in blocks:
            self.sink.add(block)
            if self.fidelity is not None:
                self.fidelity.add_block(block)
            self._done[block.ch_start] = block.t_stop
            self.status.coded_bytes += len(block.payload)
            self.status.blocks += 1
        if blocks:
            self._measure_latency()

    def _measure_latency(self) -> None:
        """The age of the newest sample every lane has handed to the sink (from its timestamp
        where the source has a clock, else from its arrival); chunks all in blocks are dropped."""
        done = min(self._done.values())
        while self._ages and self._ages[0][1] < done:
            self._ages.popleft()
        if not self._ages or done == 0 or self._ages[0][0] >= done:
            return
        start, stop, stamps, arrival = self._ages[0]
        if stamps is not None and self.clock is not None:
            latency = self.clock() - (float(stamps[done - 1 - start]) + self.source.offset(self._name))
        else:
            latency = time.monotonic() - arrival
        if stop == done:
            self._ages.popleft()
        self.status.latency_s = latency
        self.status.latency_max_s = max(self.status.latency_max_s, latency)
        self._latencies.append(latency)

    def _side_channels(self) -> None:
        markers = self.source.markers()
        if markers:
            self._markers += markers
        if self.encoder is not None:
            if self._markers:
                self._send_markers()
            for clock in self.source.clock_offsets():
                self.sink.add_clock(clock)
            notes = self.source.notes
            for text in notes[self._notes_sent:]:
                self.sink.note(text)
                if self.counter is not None and "restarted" in text:
                    self.counter.restart()
            self._notes_sent = len(notes)

    def _send_markers(self) -> None:
        """Markers with onsets in seconds after the first sample (each stream's clock offset applied)."""
        markers, self._markers = self._markers, []
        first = self._t_first if self._t_first is not None else 0.0
        onsets = np.array([m.timestamp + self.source.relative_offset(m.stream) - first for m in markers])
        self.sink.add_markers(markers, onsets)
        self.status.markers += len(markers)

    def _report(self, now: float) -> None:
        s = self.status
        while self._arrivals and self._arrivals[0][0] < now - 1.0:
            self._arrivals.popleft()
        span = now - self._arrivals[0][0] if len(self._arrivals) > 1 else 0.0
        s.rate = sum(n for _, n in list(self._arrivals)[1:]) / span if span > 0 else 0.0
        s.waiting = self.source.waiting
        s.held = s.samples - (min(self._done.values()) if self._done else 0)
        if self.counter is not None:
            s.lost, s.duplicated = self.counter.lost, self.counter.duplicated
        if self.on_status is not None:
            self.on_status(s)

    # --- the end ----------------------------------------------------------------------
    def _finish(self, reason: str, error: Exception | None) -> dict:
        if self.encoder is None and self._pending.chunks and not isinstance(error, BadInputError):
            self._start()  # fewer samples than the lossy modes fit to: fit to what came
        if self.encoder is None:
            self.sink.discard()
            return {"n_samples": 0, "stop": reason, "path": None, "error": str(error) if error else None}
        self._emit(self.encoder.finish())
        self._side_channels()
        if self._markers:
            self._send_markers()
        if error is not None:
            self.sink.note(f"recording stopped: {error}")
        self._report(time.monotonic())
        s = self.status
        end = {"n_samples": self.n_fed, "stop": reason, "error": str(error) if error else None,
               "samples_sha256": self.sha.hexdigest(), "markers": s.markers, "blocks": s.blocks,
               "raw_bytes": s.raw_bytes, "coded_bytes": s.coded_bytes,
               "latency_max_s": s.latency_max_s, **self._latency_percentiles(),
               "lost": s.lost, "duplicated": s.duplicated,
               "first_timestamp": self._t_first}
        if self.fidelity is not None:
            end["fidelity"] = self.fidelity.result(self.header.description.ch_names)
        end["path"] = self.sink.close(end)
        return end

    def _latency_percentiles(self) -> dict:
        if not self._latencies:
            return {"latency_p50_s": None, "latency_p99_s": None}
        p50, p99 = np.percentile(np.fromiter(self._latencies, np.float64), [50, 99])
        return {"latency_p50_s": float(p50), "latency_p99_s": float(p99)}

    def _abandon(self) -> None:
        """An error the recording cannot finish from (a sink that cannot write, a second
        Ctrl-C): the sink is given up (a journal keeps what it made durable)."""
        try:
            self.sink.discard()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass


def _require_finite(chunk: Chunk, ch_names: list[str]) -> None:
    bad = ~np.isfinite(chunk.values)
    if bad.any():
        ch, t = (int(i) for i in np.argwhere(bad)[0])
        raise BadInputError(None, f"lossy modes need finite samples; channel {ch_names[ch]} holds "
                            f"{chunk.values[ch, t]} at sample {chunk.start + t}; record with --mode lossless "
                            "(it keeps NaN and inf exactly)")
