"""The packed metadata of formats 5 and 6: every group, dataset and attribute of an archive
but its payload segments, serialized into one compressed byte string (``/meta``).

An HDF5 object costs a few hundred bytes of headers; an archive's metadata is a few dozen
small objects (channel names, scaling recipes, the EDF header, annotations, the block
index…), so a short recording's archive spent more on them than on its samples. Packed, the
tree costs about what its contents compress to. Readers rebuild it as an in-memory HDF5
file and read it exactly as an unpacked archive (docs/FORMAT.md §2.1).

Tree, before compression: a magic, a u32 header length, an ASCII JSON header, then the values
back to back (C-order bytes). ``dtype`` is numpy's ``dtype.str`` (``"<f8"``, ``"|S12"``…) or,
for compound types, the ``dtype.descr`` list.

* ``BCMETA02`` (format 6): the header lists, in path order, every object as ``[path, attrs]``
  (a group) or ``[path, attrs, [dtype, shape]]`` (a dataset), ``attrs`` a list of
  ``[name, dtype, shape]``. The values follow in the header's order, each object's attributes
  before its value: their offsets and sizes follow from the types and shapes.
* ``BCMETA01`` (format 5): objects ``[path, kind, attrs, value]``, every value described as
  ``[dtype, shape, offset, nbytes]``.

Format 6 seals the tree as ``/meta`` = SHA-256 of the rest (32 bytes), the tree's size (u32
LE), and the tree as a raw LZMA2 stream (:func:`seal`). Format 5 kept the zlib-compressed tree
in ``/meta`` and its size and SHA-256 in root attributes.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import struct
import zlib
from contextlib import contextmanager

import h5py
import numpy as np

from ..errors import CorruptArchiveError

MAGIC_V5, MAGIC = b"BCMETA01", b"BCMETA02"
SEALED_VERSION = 6  # the format version from which /meta is sealed (:func:`seal`)
MAX_META_BYTES = 1 << 30  # a packed tree inflates to no more than this
# ... nor to more than this plus META_EXPANSION times the archive's size on disk: real metadata
# (a long recording's index, thousands of annotations) stays far below, a zlib bomb is refused
# before it is inflated
META_BASE_BYTES = 16 << 20
META_EXPANSION = 64


def meta_bound(file_size: int) -> int:
    """The most bytes an archive of ``file_size`` bytes may declare for its packed metadata."""
    return min(MAX_META_BYTES, META_BASE_BYTES + META_EXPANSION * max(int(file_size), 0))
_PAYLOAD = "payload"


def is_payload(path: str) -> bool:
    """Payload segments (``.../payload/NNNNNN``) are not metadata: they stay in the file."""
    parts = path.strip("/").split("/")
    return len(parts) >= 2 and parts[-2] == _PAYLOAD


def _dtype_json(dtype: np.dtype):
    return [list(f) for f in dtype.descr] if dtype.fields else dtype.str


def _dtype_of(spec) -> np.dtype:
    if isinstance(spec, str):
        return np.dtype(spec)
    return np.dtype([tuple(f) for f in spec])


def serialize(h5: h5py.File) -> bytes:
    """The metadata tree of an archive file (every object but payload segments), before
    compression: ``BCMETA02``, header, values."""
    entries, chunks = [], []

    def put(value: np.ndarray) -> list:
        if value.dtype.kind == "U":  # a variable-length string as h5py reads it: stored as UTF-8 bytes
            value = np.char.encode(value, "utf-8")
        if value.dtype.kind == "O":
            raise TypeError("packed metadata holds no Python objects")
        chunks.append(np.ascontiguousarray(value).tobytes())
        return [_dtype_json(value.dtype), list(value.shape)]

    found = [("/", h5)]
    h5.visititems(lambda name, obj: found.append(("/" + name, obj)))
    for path, obj in sorted(found, key=lambda item: item[0]):
        if is_payload(path) and isinstance(obj, h5py.Dataset):
            continue
        attrs = [[key, *put(np.asarray(obj.attrs[key]))] for key in sorted(obj.attrs)]
        if isinstance(obj, h5py.Dataset):
            entries.append([path, attrs, put(np.asarray(obj[()]))])
        else:
            entries.append([path, attrs])
    header = json.dumps(entries, separators=(",", ":")).encode("ascii")
    return MAGIC + struct.pack("<I", len(header)) + header + b"".join(chunks)


# The tree's LZMA2 stream: lc/lp/pb suit text and little-endian numbers more than the defaults
# (about 2 % smaller on archive metadata); a decoder needs only the dictionary size.
_LZMA_DICT = 1 << 22
_SEAL = struct.Struct("<32sI")


def _lzma_filters(preset: int = 6) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": _LZMA_DICT, "lc": 1, "lp": 0, "pb": 0}]


def packed_cost(data: bytes) -> int:
    """About the bytes ``data`` adds to a sealed ``/meta`` (its LZMA2 stream alone, preset 6)."""
    return len(lzma.compress(data, format=lzma.FORMAT_RAW, filters=_lzma_filters()))


def seal(raw: bytes) -> bytes:
    """Format 6's ``/meta``: SHA-256 of what follows, the tree's size, its LZMA2 stream."""
    preset = 9 | lzma.PRESET_EXTREME if len(raw) <= 1 << 20 else 6  # the extreme search only where it is quick
    stream = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_lzma_filters(preset))
    body = struct.pack("<I", len(raw)) + stream
    return hashlib.sha256(body).digest() + body


def open_sealed(blob: bytes, where: str, bound: int = MAX_META_BYTES) -> bytes:
    """The tree sealed in format 6's ``/meta``, checked (SHA-256, then a declared size no more
    than ``bound`` and never inflated past it)."""
    if len(blob) < _SEAL.size:
        raise CorruptArchiveError(f"{where}: packed metadata is cut")
    digest, expected = _SEAL.unpack_from(blob)
    if hashlib.sha256(memoryview(blob)[32:]).digest() != digest:
        raise CorruptArchiveError(f"{where}: packed metadata is damaged (checksum mismatch)")
    lzma2 = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": _LZMA_DICT}])
    return _inflate_exactly(lzma2, lzma.LZMAError, memoryview(blob)[_SEAL.size :], expected, where, bound)


def inflate(blob: bytes, expected: int, where: str, bound: int = MAX_META_BYTES) -> bytes:
    """Format 5: the packed tree's bytes, never inflated past ``expected`` (the size the file declares),
    itself no more than ``bound`` (:func:`meta_bound` of the file's size)."""
    return _inflate_exactly(zlib.decompressobj(), zlib.error, blob, expected, where, bound)


def _inflate_exactly(decompressor, error: type[Exception], data, expected: int, where: str, bound: int) -> bytes:
    """``data`` through ``decompressor`` (zlib or LZMA), once ``expected`` is within ``bound``:
    exactly ``expected`` bytes and the stream's end, never inflating past them."""
    if not 0 < expected <= min(bound, MAX_META_BYTES):
        raise CorruptArchiveError(f"{where}: packed metadata declares {expected} bytes")
    try:
        raw = decompressor.decompress(data, expected + 1)
    except error as exc:
        raise CorruptArchiveError(f"{where}: packed metadata cannot be inflated ({exc})") from None
    if len(raw) != expected or not decompressor.eof or decompressor.unused_data:
        raise CorruptArchiveError(f"{where}: packed metadata is not the {expected} bytes it declares")
    return raw


def unpack(raw: bytes, where: str) -> io.BytesIO:
    """An in-memory HDF5 file holding the packed tree (every check before anything is built)."""
    def bad(problem: str) -> CorruptArchiveError:
        return CorruptArchiveError(f"{where}: packed metadata {problem}")

    if len(raw) < 12 or raw[:8] not in (MAGIC, MAGIC_V5):
        raise bad("does not start with its magic")
    (n_head,) = struct.unpack_from("<I", raw, 8)
    body = 12 + n_head
    if body > len(raw):
        raise bad("header is cut")
    try:
        header = json.loads(raw[12:body].decode("ascii"))
        objects = _objects_v5(header) if raw[:8] == MAGIC_V5 else _objects(header)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise bad(f"header is unreadable ({exc})") from None
    data = memoryview(raw)[body:]

    def value(spec) -> np.ndarray:
        try:
            dtype, shape = _dtype_of(spec[0]), tuple(int(s) for s in spec[1])
            offset, nbytes = int(spec[2]), int(spec[3])
        except (TypeError, ValueError, IndexError) as exc:
            raise bad(f"describes a value it cannot hold ({exc})") from None
        if any(s < 0 for s in shape) or nbytes != _count(shape) * dtype.itemsize \
                or not 0 <= offset <= offset + nbytes <= len(data):
            raise bad("describes a value outside its bytes")
        return np.frombuffer(data[offset : offset + nbytes], dtype).reshape(shape)

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=("v110", "latest")) as h5:
        for path, attrs, val in objects:
            obj = h5.create_dataset(path, data=value(val)) if val is not None \
                else (h5.require_group(path) if path != "/" else h5)
            for attr in attrs:
                arr = value(attr[1:])
                obj.attrs[str(attr[0])] = arr[()] if arr.shape == () else arr
    return buffer


def _count(shape) -> int:
    """Elements in ``shape`` (Python integers: a forged shape cannot overflow)."""
    n = 1
    for s in shape:
        n *= s
    return n


def _objects(header) -> list:
    """``BCMETA02``: ``(path, attrs, value)`` with each value's ``[dtype, shape, offset, nbytes]``
    (its place follows from the order and sizes of those before it)."""
    offset, out = 0, []

    def place(spec) -> list:
        nonlocal offset
        dtype, shape = spec[0], [int(s) for s in spec[1]]
        if any(s < 0 for s in shape):
            raise ValueError("a negative dimension")
        nbytes = _count(shape) * _dtype_of(dtype).itemsize
        placed = [dtype, shape, offset, nbytes]
        offset += nbytes
        return placed

    if not isinstance(header, list):
        raise TypeError("the header is not a list")
    for entry in header:
        if not (isinstance(entry, list) and len(entry) in (2, 3) and isinstance(entry[0], str)
                and isinstance(entry[1], list)):
            raise ValueError("a malformed object")
        attrs = [[str(a[0]), *place(a[1:3])] for a in entry[1]]
        out.append((entry[0], attrs, place(entry[2]) if len(entry) == 3 else None))
    return out


def _objects_v5(header) -> list:
    """``BCMETA01``: the same, each value's place written out."""
    out = []
    for entry in header["objects"]:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)):
            raise ValueError("a malformed object")
        path, kind, attrs, val = entry
        if kind not in ("dataset", "group"):
            raise ValueError(f"an object of unknown kind {kind!r}")
        out.append((path, attrs, val if kind == "dataset" else None))
    return out


@contextmanager
def editing(path):
    """An archive's packed metadata opened for changes (an in-memory HDF5 file), packed and
    sealed again afterwards — for tools that repair archives, and for tests that forge them.
    (The space of the old ``/meta`` is not reclaimed.)"""
    with h5py.File(path, "r+") as outer:
        blob = outer["meta"][()].tobytes()
        sealed = int(outer.attrs["format_version"]) >= SEALED_VERSION
        raw = open_sealed(blob, str(path)) if sealed else inflate(blob, int(outer.attrs["meta_bytes"]), str(path))
        image = h5py.File(unpack(raw, str(path)), "r+")
        try:
            yield image
            image.flush()
            raw = serialize(image)
        finally:
            image.close()
        if sealed:
            replace_blob(outer, seal(raw))
        else:
            replace_blob(outer, zlib.compress(raw, 9), len(raw))


def replace_blob(outer: h5py.File, blob: bytes, meta_bytes: int | None = None) -> None:
    """Put ``blob`` in place of the file's ``/meta``: format 6, a sealed tree (:func:`seal`);
    format 5, a zlib stream of ``meta_bytes`` bytes, sealed by a root attribute."""
    del outer["meta"]
    outer.create_dataset("meta", data=np.frombuffer(blob, np.uint8))
    if meta_bytes is not None:
        outer.attrs["meta_bytes"] = np.int64(meta_bytes)
        outer.attrs["meta_sha256"] = np.bytes_(hashlib.sha256(blob).hexdigest().encode("ascii"))
