"""Never larger than lossless: a lossy channel group whose coding takes more bytes than the
lossless coding of the same channels is stored losslessly instead (flat, tiny or very quiet
signals, and settings finer than the samples' own resolution)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..container.packed import packed_cost
from ..io import scaling
from ..stream.encoder import StreamEncoder
from ..stream.lanes import Lane, StreamLane
from ..stream.plans import exact_lanes
from ..stream.sources import raw_chunks

@dataclass
class GroupSizes:
    """A lossy lane's channels ``[start, stop)`` and their coded bytes both ways."""

    start: int
    stop: int
    lossy_bytes: int
    lossless_bytes: int

    @property
    def exact_is_smaller(self) -> bool:
        return self.lossless_bytes <= self.lossy_bytes

    def as_dict(self) -> dict:
        return {"ch_start": self.start, "ch_stop": self.stop, "lossy_bytes": self.lossy_bytes,
                "lossless_bytes": self.lossless_bytes}


def lossy_groups(lanes: list[Lane]) -> list[tuple[int, int]]:
    """The channel ranges a lossy codec codes (trigger channels' lanes are lossless already)."""
    return [(lane.start, lane.stop) for lane in lanes if isinstance(lane, StreamLane)]


def block_cost(block) -> int:
    return len(block.payload)


def config_cost(lanes: list[Lane]) -> dict[int, int]:
    """Bytes of each lane's codec configuration (stored once per distinct configuration), as the
    archive's LZMA-packed metadata holds it."""
    return {lane.start: packed_cost(json.dumps(lane.config).encode()) for lane in lanes if hasattr(lane, "config")}


def lossless_sizes(raw, whole, groups, kinds: np.ndarray, recipe, block: int) -> tuple[dict, np.ndarray]:
    """Bytes of each group coded losslessly, and the value kinds that coding needs (a channel
    whose later samples break its kind is demoted, as compress does)."""
    kinds = np.array(kinds)
    while True:
        lanes = [lane for a, b in groups for lane in exact_lanes(kinds, recipe, block, a, b)]
        sizes = {g: 0 for g in groups}
        owner = {lane.start: next(g for g in groups if g[0] <= lane.start < g[1]) for lane in lanes}
        for start, cost in config_cost(lanes).items():
            sizes[owner[start]] += cost
        try:
            for coded in StreamEncoder(lanes).encode(raw_chunks(raw, block, whole)):
                sizes[owner[_lane_of(coded.ch_start, lanes)]] += block_cost(coded)
            return sizes, kinds
        except scaling.KindMismatch as exc:
            kinds[exc.channels] += 1


def _lane_of(ch: int, lanes: list[Lane]) -> int:
    return next(lane.start for lane in lanes if lane.start <= ch < lane.stop)


class SizeTally:
    """Bytes of each lossy group as its blocks go by."""

    def __init__(self, lanes: list[Lane]):
        self.groups = lossy_groups(lanes)
        self.bytes = {g: config_cost([lane])[lane.start] for lane in lanes if isinstance(lane, StreamLane)
                      for g in [(lane.start, lane.stop)]}

    def add(self, block) -> None:
        for g in self.groups:
            if g[0] <= block.ch_start < g[1]:
                self.bytes[g] += block_cost(block)
