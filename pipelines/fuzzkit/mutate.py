"""Damaged copies of an archive: bit flips, overwrites, truncations, zeroed pages, moved ranges.

Where a mutation lands is drawn so that a good share hits the small metadata regions
(attributes, object headers, the index, JSON, /channels, /edf, HDF5's own structures)
and not only the payload, which is most of the file but is covered by block CRCs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .h5map import ArchiveMap, Region

PAGE = 4096
UNIFORM_SHARE = 0.35  # the rest of the offsets are drawn region by region (metadata)
CLASS_WEIGHTS = {"attribute": 0.30, "dataset": 0.30, "ohdr": 0.22, "hdf5-internal": 0.10, "superblock": 0.08}
MUTATIONS = {  # name: weight
    "bitflip": 0.22, "bitflips": 0.10, "bytes-random": 0.12, "bytes-00": 0.08, "bytes-ff": 0.08,
    "truncate": 0.08, "zero-page": 0.07, "duplicate-range": 0.06, "copy-range": 0.06, "delete-range": 0.05,
    "zero-value": 0.08,
}


@dataclass
class Mutant:
    mutation: str
    offset: int
    length: int  # bytes touched (flips: the span of the flipped bits)
    region: Region  # where ``offset`` lies in the clean file
    data: bytes

    def describe(self) -> str:
        return f"{self.mutation}@{self.offset}+{self.length} in {self.region.name}"


def pick_offset(rng: np.random.Generator, amap: ArchiveMap) -> int:
    if rng.random() < UNIFORM_SHARE:
        return int(rng.integers(0, amap.file_size))
    regions = amap.metadata_regions()
    by_class: dict[str, list[Region]] = {}
    for r in regions:
        by_class.setdefault(r.cls, []).append(r)
    classes = [c for c in CLASS_WEIGHTS if c in by_class]
    weights = np.array([CLASS_WEIGHTS[c] for c in classes])
    chosen = by_class[classes[int(rng.choice(len(classes), p=weights / weights.sum()))]]
    r = chosen[int(rng.integers(0, len(chosen)))]
    return int(rng.integers(r.start, min(r.stop, amap.file_size)))


def mutate(clean: bytes, amap: ArchiveMap, rng: np.random.Generator, mutation: str | None = None) -> Mutant:
    """One random mutant of ``clean`` (the bytes of the archive mapped by ``amap``)."""
    names = list(MUTATIONS)
    weights = np.array([MUTATIONS[n] for n in names])
    mutation = mutation or names[int(rng.choice(len(names), p=weights / weights.sum()))]
    offset = pick_offset(rng, amap)
    buf = bytearray(clean)
    n = len(buf)
    length = int(rng.integers(1, 17))
    if mutation == "bitflip":
        buf[offset] ^= 1 << int(rng.integers(0, 8))
        length = 1
    elif mutation == "bitflips":
        k = int(rng.integers(2, 17))
        spots = np.clip(offset + rng.integers(0, 64, k), 0, n - 1)
        for s in spots:
            buf[int(s)] ^= 1 << int(rng.integers(0, 8))
        length = int(spots.max() - offset + 1)
    elif mutation.startswith("bytes-"):
        stop = min(n, offset + length)
        fill = {"bytes-00": b"\0", "bytes-ff": b"\xff"}.get(mutation)
        buf[offset:stop] = fill * (stop - offset) if fill else rng.bytes(stop - offset)
        length = stop - offset
    elif mutation == "zero-value":  # a whole aligned 8-byte word set to 0: a number or an address
        offset -= offset % 8
        buf[offset : offset + 8] = bytes(min(8, n - offset))
        length = 8
    elif mutation == "truncate":
        offset = max(1, offset)
        del buf[offset:]
        length = n - offset
    elif mutation == "zero-page":
        offset -= offset % PAGE
        stop = min(n, offset + PAGE)
        buf[offset:stop] = bytes(stop - offset)
        length = stop - offset
    elif mutation == "duplicate-range":  # insert a copy: everything after it moves
        length = int(rng.integers(1, 257))
        piece = clean[offset : offset + length]
        buf[offset + len(piece) : offset + len(piece)] = piece
        length = len(piece)
    elif mutation == "copy-range":  # overwrite a nearby range with a copy of this one
        length = int(rng.integers(1, 257))
        shift = int(rng.integers(-512, 513)) or 1
        dst = min(max(0, offset + shift), n - 1)
        piece = clean[offset : offset + length][: n - dst]
        buf[dst : dst + len(piece)] = piece
        length = len(piece)
    elif mutation == "delete-range":
        length = int(rng.integers(1, 257))
        del buf[offset : offset + length]
    else:
        raise ValueError(f"unknown mutation {mutation!r}")
    return Mutant(mutation, offset, length, amap.at(offset), bytes(buf))
