"""A live lossless stream's short blocks, coded again as ``compress`` codes a file.

A live stream is flushed every few tens of milliseconds, so its journal (and the network)
carries short blocks: ``lpc-s1`` chains that carry their predictors from block to block,
float blocks of a flush each. A finished archive has no latency to keep: finalizing joins
each lane's consecutive blocks into blocks of ``block_samples`` and codes them with the
codec ``compress`` uses (``lpc-v4`` for integer codes, the same float codec for floats), so
that an archive recorded live is as small as one compressed from a file. Every block is
decoded exactly as the journal holds it before it is coded again, and the archive written
is checked against the journal's digests before it replaces it (journal_finalize).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from ..codecs import get_codec
from ..codecs.fallback import smaller_of
from .chains import iter_merged_chains
from .layout import DATA

ARCHIVE_BLOCK_SAMPLES = 16384  # as compress cuts a file (files.compress.BLOCK_SAMPLES)


def archive_blocks(blocks: Iterable, block_samples: int = ARCHIVE_BLOCK_SAMPLES, level: str = "default") -> Iterator:
    """``blocks`` (in the order a stream wrote them; objects with t_start, t_stop, ch_start,
    ch_stop, config, payload and optionally section) as archive blocks of ``block_samples``
    samples per lane (the last of each lane shorter). Timestamp blocks pass unchanged."""
    pending: dict[tuple[int, int], _Pending] = {}
    for block in iter_merged_chains(blocks):
        if getattr(block, "section", DATA) != DATA:
            yield block
            continue
        codec = get_codec(block.config)
        target = _archive_codec(codec, level)
        lane = (block.ch_start, block.ch_stop)
        held = pending.get(lane)
        if held is not None and (held.t_stop != block.t_start or held.config != target.get_config()):
            yield from held.flush(all_of_it=True)
            held = None
        if held is None:
            held = pending[lane] = _Pending(block, target, block_samples)
        held.add(codec.decode(block.payload), block.t_stop)
        yield from held.flush()
    for held in pending.values():
        yield from held.flush(all_of_it=True)


def _archive_codec(codec, level: str):
    """The codec ``compress`` uses for what ``codec`` codes live: lpc-v4 for lpc-s1's integer
    codes, float-lpc-v1 for float32 and float-xor-zlib-v1 at level 9 for float64 samples
    (live streams code floats with float-xor-zstd-v1, or float-xor-zlib-v1 at level 1 before
    it); any other codec itself."""
    from ..codecs.lossless import FloatLPCCodec, FloatXorCodec, LPCV4Codec

    config = codec.get_config()
    if codec.stateful:
        return LPCV4Codec(level=level)
    if config["id"] in ("float-xor-zlib-v1", "float-xor-zstd-v1"):
        return FloatLPCCodec() if config["width"] == 4 else FloatXorCodec(8)
    return codec


class _Pending:
    """One lane's decoded samples not yet coded again."""

    def __init__(self, first, codec, block_samples: int):
        self.first, self.codec, self.block_samples = first, codec, int(block_samples)
        self.config = codec.get_config()
        self.parts: list[np.ndarray] = []
        self.t_start = self.t_stop = first.t_start
        self.held = 0

    def add(self, values: np.ndarray, t_stop: int) -> None:
        self.parts.append(values)
        self.held += values.shape[1]
        self.t_stop = t_stop

    def flush(self, all_of_it: bool = False) -> Iterator:
        while self.held >= self.block_samples or (all_of_it and self.held):
            x = np.concatenate(self.parts, axis=1) if len(self.parts) > 1 else self.parts[0]
            n = min(self.block_samples, self.held)
            rest = x[:, n:]
            self.parts, self.held = ([rest] if rest.shape[1] else []), self.held - n
            t0 = self.t_start
            self.t_start += n
            codes = np.ascontiguousarray(x[:, :n])
            config, payload = smaller_of(self.config, codes, self.codec.encode(codes))
            yield dataclasses.replace(self.first, t_start=t0, t_stop=t0 + n, config=config, payload=payload)
