"""Decoding a live stream's blocks back into samples, as soon as every channel has them.

Lanes cut their blocks independently (a lossy lane may lag a lossless one), so a window of
samples is complete only when every channel range, and the timestamps where the stream
has them, reach its end. :class:`SampleAssembler` decodes each block as it comes and
hands out the complete windows in order, as MNE float64 values.
"""

from __future__ import annotations

import numpy as np

from ..codecs import get_codec
from ..codecs.float_codes import codes_to_f64
from ..container.description import StreamDescription
from ..container.integrity import damage_is_corruption
from ..container.layout import TIMES
from ..errors import CorruptArchiveError
from ..io import scaling
from .blocks import Block, Chunk


class SampleAssembler:
    """Blocks in (any lane order, each lane in time order), complete chunks out."""

    def __init__(self, description: StreamDescription):
        self.description = description
        self.kinds = np.asarray(description.kinds)
        self._codecs: dict[str, object] = {}
        self._pieces: dict[tuple, list[tuple[int, np.ndarray]]] = {}  # range → [(t_start, values)]
        self._ends: dict[tuple, int] = {}
        self.done = 0  # samples handed out

    def _codec(self, config: dict):
        key = repr(sorted(config.items()))
        if key not in self._codecs:
            self._codecs[key] = get_codec(config)
        return self._codecs[key]

    def add(self, block: Block) -> list[Chunk]:
        """Decode ``block``; return the chunks it completes (possibly none)."""
        times = block.section == TIMES
        key = (TIMES,) if times else (block.ch_start, block.ch_stop)
        if self._ends.get(key, 0) != block.t_start:
            raise CorruptArchiveError(f"block [{block.t_start}, {block.t_stop}) of {key} is out of order")
        shape = (1 if times else block.ch_stop - block.ch_start, block.t_stop - block.t_start)
        with damage_is_corruption("stream", f"block [{block.t_start}, {block.t_stop}) of {key}"):
            codes = self._codec(block.config).decode(block.payload)
        if codes.shape != shape:
            raise CorruptArchiveError(f"stream block [{block.t_start}, {block.t_stop}) of {key} decodes to "
                                      f"{codes.shape}, not {shape}")
        if times:
            values = codes_to_f64(codes[0])
        else:
            chans = np.arange(block.ch_start, block.ch_stop)
            values = scaling.from_codes(self.description.recipe, codes, chans, int(self.kinds[block.ch_start]))
        self._pieces.setdefault(key, []).append((block.t_start, values))
        self._ends[key] = block.t_stop
        return self._complete()

    def _ready(self) -> int:
        """Samples every channel (and the timestamps) hold."""
        ranges = sorted(k for k in self._ends if k != (TIMES,))
        covered = 0
        for a, b in ranges:
            if a != covered:
                return self.done
            covered = b
        if covered != self.description.n_channels:
            return self.done
        if self.description.has_timestamps and (TIMES,) not in self._ends:
            return self.done
        return min(self._ends.values())

    def _complete(self) -> list[Chunk]:
        stop = self._ready()
        if stop <= self.done:
            return []
        n_ch = self.description.n_channels
        values = np.empty((n_ch, stop - self.done), np.float64)
        stamps = np.empty(stop - self.done, np.float64) if self.description.has_timestamps else None
        for key in list(self._pieces):
            out = stamps if key == (TIMES,) else values[key[0] : key[1]]
            self._pieces[key] = _take(self._pieces[key], self.done, stop, out)
        chunk = Chunk(self.done, values, stamps)
        self.done = stop
        return [chunk]


def _take(pieces: list[tuple[int, np.ndarray]], start: int, stop: int, out: np.ndarray) -> list:
    """Copy samples [start, stop) of ``pieces`` (consecutive, starting at ``start``) into ``out``;
    return the pieces left (the part past ``stop``)."""
    left = []
    for t0, x in pieces:
        n = x.shape[-1]
        a, b = max(start, t0), min(stop, t0 + n)
        if b > a:
            out[..., a - start : b - start] = x[..., a - t0 : b - t0]
        if t0 + n > stop:
            left.append((max(t0, stop), x[..., max(0, stop - t0):]))
    return left
