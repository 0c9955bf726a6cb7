"""Record live streams into archives: an LSL stream (:func:`record`), or the chunks of a
program's own acquisition loop (:func:`compress_chunks`)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..system.signals import stop_on_signals
from .description import NUMPY_FORMAT, describe_arrays
from .live import LiveStatus, Recorder, check_mode
from .sinks import ArchiveSink, Sink
from .sources import ArraySource

FORMAT_OF_DTYPE = {np.dtype(t): name for name, t in NUMPY_FORMAT.items()}
ARRAY_BLOCK_MS = 1000.0  # a program's own chunks: blocks of up to a second of samples


def _sink_for(dst, sink: Sink | None, overwrite: bool) -> Sink:
    if (dst is None) == (sink is None):
        raise BadInputError(None, "give either an output path or a sink")
    return sink if sink is not None else ArchiveSink(dst, overwrite=overwrite)


def record(name: str, dst=None, *, sink: Sink | None = None, markers: Iterable[str] = (), stype: str | None = None,
           source_id: str | None = None, mode: str = "lossless", quality: int | None = None,
           max_error_uv: float | None = None, model=None, block_ms: float | None = None,
           duration: float | None = None, overwrite: bool = False, timeout: float = 5.0,
           reconnect_s: float = 5.0, buffer_s: float = 360.0, stop: threading.Event | None = None,
           on_status: Callable[[LiveStatus], None] | None = None) -> dict:
    """Record the LSL stream ``name`` (of type ``stype``, from ``source_id``) into an archive at
    ``dst`` (or hand its blocks to ``sink``), with the marker streams ``markers`` as annotations.

    Runs until ``duration`` seconds of samples are recorded, ``stop`` is set, Ctrl-C, or the
    stream is lost (not back within ``reconnect_s``); then finalizes what was recorded.
    Samples wait at most ``block_ms`` for their block (default 50 ms lossless, 200 ms lossy);
    the inlet buffers up to ``buffer_s`` seconds while the recorder is busy. ``on_status``
    is called a few times a second with a :class:`~.live.LiveStatus`.

    Returns the recording's summary: ``path``, ``n_samples``, ``stop`` (why it ended),
    ``lost`` and ``duplicated`` (from a channel named ``counter``, else None), ``markers``,
    ``latency_max_s``, ``samples_sha256``…

    Raises
    ------
    BadInputError
        No such stream (within ``timeout``), several, a stream that is not numeric and
        regular, a bad mode or setting, or an output refused before anything is recorded.
    StreamError
        The stream was lost, or restarted with other channels, rate or format; raised once
        what was recorded before is finalized (``.samples`` says how many).
    """
    check_mode(mode, quality, max_error_uv)
    sink = _sink_for(dst, sink, overwrite)
    from mne_lsl.lsl import local_clock

    from .lsl import LSLSource
    from .warm import warm_up_live_codecs

    warm_up_live_codecs(mode != "lossless", model)  # before the inlet opens: no stall on the first chunk
    stop = stop or threading.Event()
    with stop_on_signals(stop), LSLSource(name, stype=stype, source_id=source_id, markers=tuple(markers),
                                          timeout=timeout, buffer_s=buffer_s, reconnect_s=reconnect_s) as source:
        recorder = Recorder(source, sink, mode=mode, quality=quality, max_error_uv=max_error_uv, model=model,
                            block_ms=block_ms, duration=duration, stop=stop, on_status=on_status, clock=local_clock)
        return recorder.run()


def compress_chunks(chunks: Iterable, dst=None, *, sfreq: float, ch_names, ch_types="eeg", units="microvolts",
                    value_format: str | None = None, timestamps: Iterable | None = None, sink: Sink | None = None,
                    mode: str = "lossless", quality: int | None = None, max_error_uv: float | None = None,
                    model=None, block_ms: float = ARRAY_BLOCK_MS, overwrite: bool = False,
                    stop: threading.Event | None = None) -> Path | None:
    """Compress the chunks of an acquisition loop into an archive at ``dst`` (or ``sink``) as
    they come: each chunk an array (n_channels, n_samples) of any length, in ``units``
    (one name, or one per channel: "microvolts", "volts", …; other names keep the values
    as they are). ``value_format`` (float32, double64, int16, int32…; default: the first
    chunk's dtype) is what the archive keeps exactly: chunks are never rounded to it.
    ``timestamps``: optionally one array of per-sample times per chunk.

    Blocks are coded as the chunks arrive (a generator that waits for its hardware is
    fine), ``block_ms`` of samples at most (default 1 s; shorter blocks bound the latency of
    a sink that sends them on, and compress less); the archive is finalized when ``chunks``
    ends, ``stop`` is set, or on Ctrl-C. Returns the archive's path (None when no sample came).

    Raises BadInputError for a chunk of the wrong shape or with values ``value_format``
    cannot hold (what came before it is finalized first).
    """
    check_mode(mode, quality, max_error_uv)
    chunks = iter(chunks)
    if value_format is None:
        try:
            first = np.asarray(next(chunks))
        except StopIteration:
            return None
        value_format = FORMAT_OF_DTYPE.get(first.dtype, "double64")
        chunks = itertools.chain([first], chunks)
    description = describe_arrays(ch_names, sfreq, ch_types=ch_types, units=units, value_format=value_format)
    sink = _sink_for(dst, sink, overwrite)
    recorder = Recorder(ArraySource(description, chunks, timestamps), sink, mode=mode, quality=quality,
                        max_error_uv=max_error_uv, model=model, block_ms=block_ms, stop=stop)
    return recorder.run()["path"]
