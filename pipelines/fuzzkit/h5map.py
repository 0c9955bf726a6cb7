"""Which part of an HDF5 archive each byte belongs to.

Regions come from three sources: h5py's storage offsets of the datasets' raw data (and of
the payload blocks, through the archive's index); a small parser of version-2 object
headers ("OHDR" and their "OCHK" continuation chunks), which names every message and,
for attribute messages, the attribute; and the signatures of the other structures HDF5
writes (B-trees, heaps, fixed and extensible arrays, free-space managers). A byte that
none of them covers is "other".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import h5py
import numpy as np

SUPERBLOCK_BYTES = 48  # version 2/3 superblock (libver v110)
MESSAGE_NAMES = {
    0x00: "nil", 0x01: "dataspace", 0x02: "link-info", 0x03: "datatype", 0x05: "fill-value",
    0x06: "link", 0x08: "layout", 0x0A: "group-info", 0x0B: "filters", 0x0C: "attribute",
    0x10: "continuation", 0x12: "mtime", 0x15: "attribute-info", 0x16: "refcount",
}
OTHER_SIGNATURES = {
    b"BTHD": "v2 B-tree header", b"BTIN": "v2 B-tree node", b"BTLF": "v2 B-tree leaf",
    b"TREE": "v1 B-tree", b"HEAP": "local heap", b"GCOL": "global heap", b"FRHP": "fractal heap",
    b"FHDB": "fractal heap block", b"FHIB": "fractal heap block", b"FSHD": "free-space header",
    b"FSSE": "free-space sections", b"FAHD": "fixed array header", b"FADB": "fixed array block",
    b"EAHD": "extensible array", b"EAIB": "extensible array", b"EADB": "extensible array",
    b"EASB": "extensible array", b"SMTB": "shared messages",
}


@dataclass(frozen=True)
class Region:
    start: int
    stop: int
    name: str  # e.g. "/data@codecs", "/data/index", "/data.000000 block 3", "ohdr /channels (layout)"
    cls: str  # coarse class: superblock, ohdr, attribute, dataset, payload, hdf5-internal, other

    @property
    def size(self) -> int:
        return self.stop - self.start


class ArchiveMap:
    """The regions of one archive file, and lookups by offset."""

    def __init__(self, regions: list[Region], file_size: int):
        self.file_size = file_size
        # finest first: an attribute inside a header wins over the header
        self.regions = sorted(regions, key=lambda r: (r.start, r.size))

    def at(self, offset: int) -> Region:
        best = None
        for r in self.regions:
            if r.start > offset:
                break
            if offset < r.stop and (best is None or r.size < best.size):
                best = r
        if best is None:
            return Region(offset, offset + 1, "other", "other" if offset < self.file_size else "past-end")
        return best

    def metadata_regions(self) -> list[Region]:
        return [r for r in self.regions if r.cls != "payload" and r.size > 0]


def map_archive(path) -> ArchiveMap:
    data = open(path, "rb").read()
    regions = [Region(0, SUPERBLOCK_BYTES, "superblock", "superblock")]
    with h5py.File(path, "r") as f:
        objects = {"/": f}
        f.visititems(lambda name, obj: objects.__setitem__("/" + name, obj))
        for name, obj in objects.items():
            addr = h5py.h5o.get_info(obj.id).addr
            regions += _header_regions(data, addr, name)
            if isinstance(obj, h5py.Dataset):
                regions += _dataset_regions(obj, name)
        regions += _block_regions(f)
    covered = np.zeros(len(data), bool)
    for r in regions:
        covered[r.start : r.stop] = True
    regions += _signature_regions(data, covered)
    return ArchiveMap(regions, len(data))


def _dataset_regions(ds: h5py.Dataset, name: str) -> list[Region]:
    cls = "payload" if name.startswith(("/data/payload/", "/data.")) else "dataset"
    offset = ds.id.get_offset()
    if offset is not None:
        return [Region(offset, offset + ds.id.get_storage_size(), name, cls)]
    if ds.chunks is None:
        return []  # compact: its bytes are in the object header's layout message
    out = []
    for i in range(ds.id.get_num_chunks()):
        chunk = ds.id.get_chunk_info(i)
        if chunk.byte_offset is not None:
            out.append(Region(chunk.byte_offset, chunk.byte_offset + chunk.size, f"{name} chunk {i}", cls))
    return out


def _block_regions(f: h5py.File) -> list[Region]:
    """The payload blocks, named by their row in the index (when the index reads)."""
    from biocompress.container.layout import segment_path

    try:
        version = int(f.attrs["format_version"])
        if "meta" in f:  # formats 5-6: the index is in the packed metadata
            from biocompress.container.reader import Archive

            with Archive(f.filename) as arc:
                index = arc.h5["data/index"][()]
        else:
            index = f["data/index"][()]
    except Exception:  # noqa: BLE001 - a map of a damaged file does without blocks
        return []
    out = []
    for i, row in enumerate(index):
        seg = f.get(segment_path("data", int(row["segment"]), version))
        base = seg.id.get_offset() if seg is not None else None
        if base is not None:
            a = base + int(row["offset"])
            out.append(Region(a, a + int(row["length"]), f"{seg.name} block {i}", "payload"))
    return out


def _header_regions(data: bytes, addr: int, name: str) -> list[Region]:
    """Chunks and messages of a version-2 object header (OHDR at ``addr``, OCHK continuations)."""
    if data[addr : addr + 4] != b"OHDR":
        return [Region(addr, addr + 1, f"ohdr {name} (unparsed)", "ohdr")]
    flags = data[addr + 5]
    pos = addr + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    size_bytes = 1 << (flags & 3)
    chunk_size = int.from_bytes(data[pos : pos + size_bytes], "little")
    pos += size_bytes
    chunks = [(addr, pos, pos + chunk_size)]  # (chunk start, messages start, messages stop)
    regions = []
    seen = set()
    while chunks:
        start, mpos, mstop = chunks.pop()
        if start in seen or mstop > len(data):
            continue
        seen.add(start)
        regions.append(Region(start, mstop + 4, f"ohdr {name}", "ohdr"))  # + checksum
        while mpos + 4 <= mstop:
            mtype, msize = data[mpos], int.from_bytes(data[mpos + 1 : mpos + 3], "little")
            body = mpos + 4 + (2 if flags & 0x04 else 0)
            if body + msize > mstop:
                break
            kind = MESSAGE_NAMES.get(mtype, f"message 0x{mtype:02x}")
            if mtype == 0x0C:
                regions.append(Region(body, body + msize, f"{name}@{_attribute_name(data, body)}", "attribute"))
            elif mtype != 0x00:
                regions.append(Region(mpos, body + msize, f"ohdr {name} ({kind})", "ohdr"))
            if mtype == 0x10 and msize >= 16:
                c_addr, c_len = struct.unpack_from("<QQ", data, body)
                if data[c_addr : c_addr + 4] == b"OCHK":
                    chunks.append((c_addr, c_addr + 4, c_addr + c_len - 4))
            mpos = body + msize
    return regions


def _attribute_name(data: bytes, body: int) -> str:
    version = data[body]
    if version == 3:
        name_len = int.from_bytes(data[body + 2 : body + 4], "little")
        start = body + 9
    elif version in (1, 2):
        name_len = int.from_bytes(data[body + 2 : body + 4], "little")
        start = body + 8
    else:
        return "?"
    return data[start : start + name_len].rstrip(b"\0").decode("utf-8", "replace")


def _signature_regions(data: bytes, covered: np.ndarray) -> list[Region]:
    """Other HDF5 structures, from their signature to the next covered byte."""
    out = []
    for sig, what in OTHER_SIGNATURES.items():
        pos = data.find(sig)
        while pos >= 0:
            if not covered[pos]:
                stop = pos + 4
                while stop < len(data) and not covered[stop] and data[stop : stop + 4] not in OTHER_SIGNATURES:
                    stop += 1
                out.append(Region(pos, stop, what, "hdf5-internal"))
            pos = data.find(sig, pos + 4)
    return out
