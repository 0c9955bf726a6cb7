"""Lanes: each owns a run of channels and turns their samples into blocks.

* :class:`CodesLane` — one value kind's integer codes through a lossless codec, in blocks
  of ``block`` samples (lossless archives; exact trigger channels in lossy ones);
* :class:`NativeLane` — EDF/BDF signals stored at their own rate, known whole up front;
* :class:`StreamLane` — a stateful stream encoder (autoencoder, near-lossless) that emits
  blocks as soon as they are complete;
* :class:`TimesLane` — the samples' timestamps (LSL, XDF), exactly, in their own blocks;
* :class:`ChainLane` — integer codes through a stateful lossless codec (lpc-s1): short blocks
  for live streams, each continuing the one before, a key block every few seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from ..codecs.float_codes import f64_to_codes
from ..codecs.lossless import FloatLPCCodec, FloatXorCodec, LPCV4Codec
from ..codecs.times import LINE, RATE, STEP, TimesCodec
from ..container.layout import TIMES
from ..io import scaling
from .blocks import Block, Chunk, EncodeJob


LEVELS = ("fast", "default", "max")  # encoder effort of the integer codec (docs/FORMAT.md §8.9)


def lossless_codec_for(kind: int, level: str = "default"):
    """The lossless codec of a value kind's codes (``level``: the integer codec's effort)."""
    if kind in (0, scaling.NATIVE):
        return LPCV4Codec(level=level)
    if kind == 1:
        return FloatLPCCodec()
    return FloatXorCodec(width=8)


class Lane(ABC):
    """Channels ``[start, stop)``: chunks in, blocks (or jobs to encode) out, in time order."""

    start: int
    stop: int

    @property
    def picks(self) -> np.ndarray:
        return np.arange(self.start, self.stop)

    @abstractmethod
    def push(self, chunk: Chunk) -> list[Block | EncodeJob]: ...

    def flush(self) -> list[Block | EncodeJob]:
        """Whatever samples are held, as blocks now (a live stream's latency bound)."""
        return []

    def finish(self) -> list[Block | EncodeJob]:
        return self.flush()


class CodesLane(Lane):
    """Channels of one value kind coded losslessly, ``block`` samples a block.

    ``observe(t0, t1, picks, codes)`` sees every chunk's integer codes (kind ``int`` only).
    """

    def __init__(self, start: int, stop: int, kind: int, recipe: scaling.Recipe, block: int,
                 observe: Callable | None = None, level: str = "default", codec=None):
        self.start, self.stop, self.kind, self.recipe, self.block = start, stop, kind, recipe, block
        self.config = (codec or lossless_codec_for(kind, level)).get_config()
        self.observe = observe
        self._held: list[np.ndarray] = []
        self._held_n = 0
        self._t0 = 0

    def codes_of(self, chunk: Chunk) -> np.ndarray:
        """The chunk's codes for this lane; raises scaling.KindMismatch where the kind breaks."""
        if chunk.stored is not None:
            codes = scaling.codes_of_stored(chunk.stored[self.start : self.stop], self.kind)
            if codes is not None:
                return codes
        return scaling.to_codes(self.recipe, chunk.values[self.start : self.stop], self.picks, self.kind)

    def push(self, chunk: Chunk) -> list[EncodeJob]:
        codes = self.codes_of(chunk)
        if self.observe is not None and self.kind == 0:
            self.observe(chunk.start, chunk.stop, self.picks, codes)
        if not self._held_n:
            self._t0 = chunk.start
        self._held.append(codes)
        self._held_n += codes.shape[1]
        out = []
        while self._held_n >= self.block:
            out.append(self._take(self.block))
        return out

    def flush(self) -> list[EncodeJob]:
        return [self._take(self._held_n)] if self._held_n else []

    def _take(self, n: int) -> EncodeJob:
        held = self._held[0] if len(self._held) == 1 else np.concatenate(self._held, axis=1)
        job = EncodeJob(self._t0, self._t0 + n, self.start, self.stop, self.config, held[:, :n])
        rest = held[:, n:]
        self._held, self._held_n, self._t0 = ([rest] if rest.shape[1] else []), rest.shape[1], self._t0 + n
        return job


class TimesLane(Lane):
    """The stream's per-sample timestamps (``chunk.timestamps``), coded exactly by ``times-v1``
    in blocks of ``block`` samples, cut where the sample lanes cut theirs (same block length,
    same flushes). ``sfreq``: the stream's nominal rate, a predictor worth trying; each block
    also tries the line its predecessor followed, moved on by its length."""

    start, stop = 0, 1  # the one "channel" of /times

    def __init__(self, block: int, sfreq: float | None = None):
        self.block, self.sfreq = block, sfreq
        self.codec = TimesCodec()
        self.config = self.codec.get_config()
        self._held: list[np.ndarray] = []
        self._held_n = 0
        self._t0 = 0
        self._last: tuple | None = None  # (predictor, samples) of the previous block

    def push(self, chunk: Chunk) -> list[Block]:
        stamps = chunk.timestamps
        n = chunk.values.shape[1]
        if stamps is None or np.shape(stamps) != (n,):
            raise ValueError(f"samples [{chunk.start}, {chunk.stop}) need one timestamp each "
                             f"(got {None if stamps is None else np.shape(stamps)})")
        if not self._held_n:
            self._t0 = chunk.start
        self._held.append(np.asarray(stamps, np.float64))
        self._held_n += n
        out = []
        while self._held_n >= self.block:
            out.append(self._take(self.block))
        return out

    def flush(self) -> list[Block]:
        return [self._take(self._held_n)] if self._held_n else []

    def _take(self, n: int) -> Block:
        held = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        stamps, rest = held[:n], held[n:]
        payload, chosen = self.codec.encode_with(f64_to_codes(stamps)[np.newaxis], self._hints(stamps))
        self._last = (chosen, n)
        block = Block(self._t0, self._t0 + n, 0, 1, self.config, payload, TIMES)
        self._held, self._held_n, self._t0 = ([rest] if rest.size else []), rest.size, self._t0 + n
        return block

    def _hints(self, stamps: np.ndarray) -> list[tuple]:
        hints = []
        if self._last is not None:
            (kind, a, d, k), n = self._last
            hints.append((kind, a, d, k + n) if kind in (LINE, RATE) else (kind, a, d, k))
        if self.sfreq and stamps.size and np.isfinite(stamps[0]):
            x0, rate = float(stamps[0]), float(self.sfreq)
            hints += [(STEP, x0, 1.0 / rate, 0), (LINE, x0, 1.0 / rate, 0), (RATE, x0, rate, 0)]
        return hints


class NativeLane(Lane):
    """EDF/BDF signals stored at their own rate (value kind int-native): their codes are
    read whole before encoding starts, and blocked in their own sample clock at the end."""

    def __init__(self, start: int, stop: int, codes: np.ndarray, block: int, level: str = "default"):
        self.start, self.stop, self.codes, self.block = start, stop, codes, block
        self.config = lossless_codec_for(scaling.NATIVE, level).get_config()

    def push(self, chunk: Chunk) -> list:
        return []

    def finish(self) -> list[EncodeJob]:
        n = self.codes.shape[1]
        return [EncodeJob(t0, min(n, t0 + self.block), self.start, self.stop, self.config,
                          self.codes[:, t0 : min(n, t0 + self.block)]) for t0 in range(0, n, self.block)]


class StreamLane(Lane):
    """A stateful stream encoder (``push(x)``/``finish()`` → ``[(t0, t1, payload)]``) over channels
    ``[start, stop)``; ``prepare`` turns a chunk's values into what the encoder takes."""

    def __init__(self, start: int, stop: int, config: dict, stream, prepare: Callable | None = None):
        self.start, self.stop, self.config, self.stream = start, stop, config, stream
        self.prepare = prepare or (lambda values: values)

    def push(self, chunk: Chunk) -> list[Block]:
        return self._blocks(self.stream.push(self.prepare(chunk.values[self.start : self.stop])))

    def finish(self) -> list[Block]:
        return self._blocks(self.stream.finish())

    def _blocks(self, coded) -> list[Block]:
        return [Block(t0, t1, self.start, self.stop, self.config, payload) for t0, t1, payload in coded]


class ChainLane(CodesLane):
    """Channels of one value kind coded by a stateful codec (``lpc-s1``): blocks of at most
    ``block`` samples, and whatever ``flush()`` finds held, each coded at once, in order,
    as the next block of the lane's chain (a key block when one is due). The blocks are
    ordinary :class:`Block` s: archives and network sinks carry them unchanged."""

    def __init__(self, start: int, stop: int, kind: int, recipe: scaling.Recipe, block: int, codec,
                 observe: Callable | None = None):
        super().__init__(start, stop, kind, recipe, block, observe)
        self.config = codec.get_config()
        self.stream = codec.encode_stream()

    def _take(self, n: int) -> Block:
        job = super()._take(n)
        return Block(job.t_start, job.t_stop, job.ch_start, job.ch_stop, job.config, self.stream.encode(job.codes))


def group_runs(keys, size: int) -> list[tuple[int, int]]:
    """Contiguous runs of equal keys, cut every ``size`` channels: (start, stop) each."""
    keys = list(keys)
    runs, start = [], 0
    for ch in range(1, len(keys) + 1):
        if ch == len(keys) or keys[ch] != keys[start] or ch - start == size:
            runs.append((start, ch))
            start = ch
    return runs

