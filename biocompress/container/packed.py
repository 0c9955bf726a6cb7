"""The packed metadata of format 5: every group, dataset and attribute of an archive but its
payload segments, serialized into one zlib-compressed byte string (``/meta``).

An HDF5 object costs a few hundred bytes of headers; an archive's metadata is a few dozen
small objects (channel names, scaling recipes, the EDF header, annotations, the block
index…), so a short recording's archive spent more on them than on its samples. Packed, the
tree costs about what its contents compress to. Readers rebuild it as an in-memory HDF5
file and read it exactly as an unpacked archive (docs/FORMAT.md §2.1).

Layout (before compression): ``BCMETA01``, a u32 header length, an ASCII JSON header, then
the values back to back. The header lists, in path order, every object as
``[path, kind, attrs, value]``: ``kind`` "group" or "dataset"; ``attrs`` a list of
``[name, dtype, shape, offset, nbytes]``; ``value`` (datasets) ``[dtype, shape, offset, nbytes]``.
``dtype`` is numpy's ``dtype.str`` (``"<f8"``, ``"|S12"``…) or, for compound types, the
``dtype.descr`` list. Values are C-order bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from contextlib import contextmanager

import h5py
import numpy as np

from ..errors import CorruptArchiveError

MAGIC = b"BCMETA01"
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
    compression: ``BCMETA01``, header, values."""
    entries, chunks, offset = [], [], 0

    def put(value: np.ndarray) -> list:
        nonlocal offset
        if value.dtype.kind == "U":  # a variable-length string as h5py reads it: stored as UTF-8 bytes
            value = np.char.encode(value, "utf-8")
        if value.dtype.kind == "O":
            raise TypeError("packed metadata holds no Python objects")
        raw = np.ascontiguousarray(value).tobytes()
        spec = [_dtype_json(value.dtype), list(value.shape), offset, len(raw)]
        chunks.append(raw)
        offset += len(raw)
        return spec

    found = [("/", h5)]
    h5.visititems(lambda name, obj: found.append(("/" + name, obj)))
    for path, obj in sorted(found, key=lambda item: item[0]):
        if is_payload(path) and isinstance(obj, h5py.Dataset):
            continue
        attrs = [[key, *put(np.asarray(obj.attrs[key]))] for key in sorted(obj.attrs)]
        if isinstance(obj, h5py.Dataset):
            entries.append([path, "dataset", attrs, put(np.asarray(obj[()]))])
        else:
            entries.append([path, "group", attrs, None])
    header = json.dumps({"objects": entries}, separators=(",", ":")).encode("ascii")
    return MAGIC + struct.pack("<I", len(header)) + header + b"".join(chunks)


def inflate(blob: bytes, expected: int, where: str, bound: int = MAX_META_BYTES) -> bytes:
    """The packed tree's bytes, never inflated past ``expected`` (the size the file declares),
    itself no more than ``bound`` (:func:`meta_bound` of the file's size)."""
    if not 0 < expected <= min(bound, MAX_META_BYTES):
        raise CorruptArchiveError(f"{where}: packed metadata declares {expected} bytes")
    z = zlib.decompressobj()
    try:
        raw = z.decompress(blob, expected + 1)
    except zlib.error as exc:
        raise CorruptArchiveError(f"{where}: packed metadata cannot be inflated ({exc})") from None
    if len(raw) != expected or not z.eof or z.unused_data:
        raise CorruptArchiveError(f"{where}: packed metadata is not the {expected} bytes it declares")
    return raw


def unpack(raw: bytes, where: str) -> io.BytesIO:
    """An in-memory HDF5 file holding the packed tree (every check before anything is built)."""
    def bad(problem: str) -> CorruptArchiveError:
        return CorruptArchiveError(f"{where}: packed metadata {problem}")

    if len(raw) < 12 or raw[:8] != MAGIC:
        raise bad("does not start with its magic")
    (n_head,) = struct.unpack_from("<I", raw, 8)
    body = 12 + n_head
    if body > len(raw):
        raise bad("header is cut")
    try:
        objects = json.loads(raw[12:body].decode("ascii"))["objects"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise bad(f"header is unreadable ({exc})") from None
    data = memoryview(raw)[body:]

    def value(spec) -> np.ndarray:
        try:
            dtype, shape, offset, nbytes = _dtype_of(spec[0]), tuple(int(s) for s in spec[1]), int(spec[2]), int(spec[3])
        except (TypeError, ValueError, IndexError) as exc:
            raise bad(f"describes a value it cannot hold ({exc})") from None
        if any(s < 0 for s in shape) or nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize \
                or not 0 <= offset <= offset + nbytes <= len(data):
            raise bad("describes a value outside its bytes")
        return np.frombuffer(data[offset : offset + nbytes], dtype).reshape(shape)

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=("v110", "latest")) as h5:
        for entry in objects:
            if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)):
                raise bad("lists a malformed object")
            path, kind, attrs, val = entry
            if kind == "dataset":
                obj = h5.create_dataset(path, data=value(val))
            elif kind == "group":
                obj = h5.require_group(path) if path != "/" else h5
            else:
                raise bad(f"lists an object of unknown kind {kind!r}")
            for attr in attrs:
                arr = value(attr[1:])
                obj.attrs[str(attr[0])] = arr[()] if arr.shape == () else arr
    return buffer


@contextmanager
def editing(path):
    """An archive's packed metadata opened for changes (an in-memory HDF5 file), packed and
    written back with its SHA-256 afterwards — for tools that repair archives, and for tests
    that forge them. (The space of the old ``/meta`` is not reclaimed.)"""
    with h5py.File(path, "r+") as outer:
        blob = outer["meta"][()].tobytes()
        image = h5py.File(unpack(inflate(blob, int(outer.attrs["meta_bytes"]), str(path)), str(path)), "r+")
        try:
            yield image
            image.flush()
            raw = serialize(image)
        finally:
            image.close()
        replace_blob(outer, zlib.compress(raw, 9), len(raw))


def replace_blob(outer: h5py.File, blob: bytes, meta_bytes: int) -> None:
    """Put ``blob`` in place of the file's ``/meta``, declaring ``meta_bytes`` inflated bytes,
    and seal it with its SHA-256."""
    del outer["meta"]
    outer.create_dataset("meta", data=np.frombuffer(blob, np.uint8))
    outer.attrs["meta_bytes"] = np.int64(meta_bytes)
    outer.attrs["meta_sha256"] = np.bytes_(hashlib.sha256(blob).hexdigest().encode("ascii"))
