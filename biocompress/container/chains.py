"""Reading blocks of stateful codecs (lpc-s1): a continuation block decodes only after the
blocks before it in its chain, back to the chain's key block.

A *chain* is a channel group's blocks in time order (index rows with the same channel
range and codec), cut at key blocks. To decode block i, :class:`ChainReader` walks back to
the nearest block whose state it remembers, or to the key block, then decodes forward,
keeping the codes of every block it decodes (the archive's block cache) and the state after
it (its own cache), so that reading an archive front to back decodes each block once. A
block that fails its CRC, or decodes to the wrong shape, makes every later block of its
chain unreadable (CorruptArchiveError), never wrong values; other chains are unaffected.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict

import numpy as np

from ..errors import CorruptArchiveError
from .integrity import damage_is_corruption

STATE_CACHE = 64  # states kept (a few KiB per channel group each)


def predecessors(index: np.ndarray) -> np.ndarray:
    """For each index row, the row of the previous block of its channel group (same
    channel range, next lower t_start), or −1."""
    prev = np.full(index.size, -1, np.int64)
    if index.size < 2:
        return prev
    order = np.lexsort((index["t_start"], index["ch_stop"], index["ch_start"]))
    same = (index["ch_start"][order[1:]] == index["ch_start"][order[:-1]]) & \
        (index["ch_stop"][order[1:]] == index["ch_stop"][order[:-1]])
    prev[order[1:][same]] = order[:-1][same]
    return prev


class ChainReader:
    """Decodes the blocks of an :class:`~biocompress.container.reader.Archive` whose codec is
    stateful. ``archive`` provides ``index``, ``block_bytes(i)``, ``_codecs``, ``_check_shape``,
    ``_remember`` and ``path``."""

    def __init__(self, archive):
        self.archive = archive
        self.prev = predecessors(archive.index)
        self.states: OrderedDict[int, object] = OrderedDict()

    def decode(self, i: int) -> np.ndarray:
        """Codes of block ``i`` (the whole block), decoding its chain as far back as needed."""
        arc = self.archive
        where = str(arc.path)
        slot = int(arc.index[i]["codec"])
        codec = arc._codecs[slot]
        todo: list[tuple[int, bytes]] = []
        state, j = None, i
        while True:
            payload = arc.block_bytes(j)
            with damage_is_corruption(where, f"block {j}"):
                key = codec.is_key(payload)
            todo.append((j, payload))
            if key:
                break
            p = int(self.prev[j])
            if p < 0:
                raise CorruptArchiveError(f"{where}: block {j} continues a chain whose key block is missing")
            if int(arc.index[p]["codec"]) != slot:
                raise CorruptArchiveError(f"{where}: block {j} continues a block of another codec")
            if p in self.states:
                state = self.states[p]
                self.states.move_to_end(p)
                break
            j = p
        codes = None
        for j, payload in reversed(todo):
            with damage_is_corruption(where, f"block {j}"):
                codes, state = codec.decode_with(payload, state)
            arc._check_shape(j, codes, None)
            arc._remember(j, codes)
            self._keep(j, state)
        return codes

    def _keep(self, j: int, state) -> None:
        self.states[j] = state
        self.states.move_to_end(j)
        if len(self.states) > STATE_CACHE:
            self.states.popitem(last=False)


def merge_chains(blocks) -> list:
    """Blocks (``stream.blocks.Block``, in the order a stream wrote them) with every chain of a
    stateful codec joined into one self-contained block (``merge_chain``): what a finished
    archive should hold, one index row per chain instead of one per flush. Blocks of other
    codecs pass through; a chain's block keeps the place of its key block."""
    blocks = list(blocks)
    place = {(getattr(b, "section", None), b.ch_start, b.t_start): i for i, b in enumerate(blocks)}
    return sorted(iter_merged_chains(blocks),
                  key=lambda b: place[(getattr(b, "section", None), b.ch_start, b.t_start)])


def iter_merged_chains(blocks):
    """:func:`merge_chains` as a stream, holding one chain per lane at a time: blocks of
    other codecs pass at once, a chain when the next key block of its lane arrives (or at the
    end). The order differs from the stream's; the index does not depend on it."""
    from ..codecs import get_codec
    from ..codecs.lossless.stream_codec import merge_chain

    open_chains: dict[tuple, tuple] = {}  # lane → (first block, payloads, t_stop)

    def closed(lane):
        first, payloads, t_stop = open_chains.pop(lane)
        payload = payloads[0] if len(payloads) == 1 else merge_chain(payloads)
        return dataclasses.replace(first, t_stop=t_stop, payload=payload)

    for block in blocks:
        codec = get_codec(block.config)
        if not codec.stateful:
            yield block
            continue
        lane = (getattr(block, "section", None), block.ch_start, block.ch_stop, json.dumps(block.config, sort_keys=True))
        if codec.is_key(block.payload) or lane not in open_chains:
            if lane in open_chains:
                yield closed(lane)
            open_chains[lane] = (block, [block.payload], block.t_stop)
        else:
            first, payloads, t_stop = open_chains[lane]
            if t_stop != block.t_start:
                raise ValueError(f"block at {block.t_start} does not follow its chain's last block ({t_stop})")
            payloads.append(block.payload)
            open_chains[lane] = (first, payloads, block.t_stop)
    for lane in list(open_chains):
        yield closed(lane)
