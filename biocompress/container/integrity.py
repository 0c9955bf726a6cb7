"""Checksums over everything a decoder reads, and size checks before anything is read.

Block payloads carry their own CRC-32 (in the index). Everything else an archive
holds — every attribute, every dataset but the payload segments, and the shape of
those — is covered by a *manifest*: one SHA-256 per object, written by the writer
as the root attribute ``integrity`` (JSON), itself covered by the root attribute
``integrity_sha256``. Readers check an object's digest when they first read it, so
a damaged archive raises :class:`CorruptArchiveError` naming the damaged part
instead of returning wrong values.

Sizes come from an archive's HDF5 headers, which may be damaged or crafted: every
read is checked against the file's real size (and, for filtered datasets, the
largest expansion deflate allows) before memory is allocated for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from contextlib import contextmanager

import h5py
import numpy as np

from ..errors import BiocompressError, CorruptArchiveError

MANIFEST_ATTR = "integrity"
MANIFEST_DIGEST_ATTR = "integrity_sha256"
PAYLOADS = ("/data/payload", "/times/payload")  # segments of coded blocks: their bytes carry block CRCs
_STREAM_PAYLOAD = re.compile(r"^/streams/(0|[1-9][0-9]*)/(data|times)/payload$")  # an XDF file's other streams
MAX_ATTR_BYTES = 64 << 20
MAX_FILTERED_BYTES = 1 << 30
INFLATE_LIMIT = 1100  # deflate expands at most ~1032×
_CHUNK_BYTES = 16 << 20


# What damaged HDF5 structures or values make h5py, json and numpy raise while an archive is read.
DAMAGE = (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError,
          OverflowError, UnicodeDecodeError, struct.error, ZeroDivisionError)


@contextmanager
def damage_is_corruption(where: str, what: str):
    """Turn any error that reading damaged archive bytes can cause into CorruptArchiveError."""
    try:
        yield
    except BiocompressError:
        raise
    except DAMAGE as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problem = "has a missing part" if isinstance(exc, KeyError) else "is damaged"
        raise CorruptArchiveError(f"{where}: {what} {problem} ({detail})") from exc



def _fail(where: str, problem: str) -> CorruptArchiveError:
    return CorruptArchiveError(f"{where}: {problem}")


class Sizes:
    """Size checks against the archive file's real size."""

    def __init__(self, file_size: int, where: str):
        self.file_size = int(file_size)
        self.where = where

    def attr(self, obj, key: str):
        """The attribute's value, once its declared size is plausible."""
        aid = obj.attrs.get_id(key)
        nbytes = int(np.prod(aid.shape, dtype=np.float64)) * max(aid.dtype.itemsize, 1)
        if nbytes > min(self.file_size, MAX_ATTR_BYTES):
            raise _fail(self.where, f"attribute {key!r} of {obj.name} declares {nbytes} bytes, "
                        f"more than the file holds")
        return obj.attrs[key]

    def dataset(self, ds: h5py.Dataset, max_bytes: int | None = None) -> None:
        """Raise unless ``ds`` can really hold what its header declares."""
        nbytes = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize if ds.shape else ds.dtype.itemsize
        storage = int(ds.id.get_storage_size())
        filtered = ds.chunks is not None and bool(ds._filters)
        if filtered:
            fits = nbytes <= INFLATE_LIMIT * storage + 65536 and nbytes <= MAX_FILTERED_BYTES
        else:
            fits = nbytes <= storage <= self.file_size
        if not fits or (max_bytes is not None and nbytes > max_bytes):
            raise _fail(self.where, f"{ds.name} declares {nbytes} bytes in {storage} stored bytes")


def _attr_items(obj, sizes: Sizes, skip=()):
    for key in sorted(obj.attrs):
        if key not in skip:
            yield key, np.asarray(sizes.attr(obj, key))


def attrs_digest(obj, sizes: Sizes, skip=()) -> str:
    h = hashlib.sha256(b"attrs\n")
    for key, value in _attr_items(obj, sizes, skip):
        h.update(f"{key}\0{value.dtype.str}\0{value.shape}\n".encode("utf-8"))
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _dataset_head(ds: h5py.Dataset) -> bytes:
    dtype = ds.dtype.descr if ds.dtype.fields else ds.dtype.str
    return f"dataset\0{dtype}\0{ds.shape}\n".encode("utf-8")


def dataset_digest(ds: h5py.Dataset, sizes: Sizes, data: np.ndarray | None = None) -> str:
    """Digest of a dataset's type, shape and values (read in bounded chunks unless ``data``
    is given); payload segments are covered by block CRCs, so only their shape counts."""
    h = hashlib.sha256(_dataset_head(ds))
    if is_payload_group(ds.parent.name):
        return h.hexdigest()
    if data is not None:
        h.update(np.ascontiguousarray(data).tobytes())
        return h.hexdigest()
    sizes.dataset(ds)
    if not ds.shape:
        h.update(np.asarray(ds[()]).tobytes())
        return h.hexdigest()
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, _CHUNK_BYTES // row_bytes)
    for i in range(0, ds.shape[0], step):
        h.update(np.ascontiguousarray(ds[i : i + step]).tobytes())
    return h.hexdigest()


def is_payload_group(name: str) -> bool:
    """Whether ``name`` is a group of payload segments (/data/payload, /times/payload, and those of
    the streams of /streams/<k>)."""
    return name in PAYLOADS or _STREAM_PAYLOAD.match(name) is not None


def objects(h5: h5py.File) -> list[tuple[str, object]]:
    """Every group and dataset of the file, by path, in a fixed order."""
    found = [("/", h5)]
    h5.visititems(lambda name, obj: found.append(("/" + name, obj)))
    return sorted(found, key=lambda item: item[0])


def build(h5: h5py.File, file_size: int) -> dict[str, str]:
    """The manifest of a finished archive (writer side)."""
    sizes = Sizes(file_size, h5.filename)
    parts = {}
    for path, obj in objects(h5):
        if len(obj.attrs):
            parts["@" + path] = attrs_digest(obj, sizes, _skip(path))
        if isinstance(obj, h5py.Dataset):
            parts[path] = dataset_digest(obj, sizes)
    return parts


def seal(h5: h5py.File, file_size: int) -> None:
    """Write the manifest into an archive opened for writing."""
    text = json.dumps({"algorithm": "sha256", "parts": build(h5, file_size)}, sort_keys=True)
    h5.attrs[MANIFEST_ATTR] = np.bytes_(text.encode("ascii"))
    h5.attrs[MANIFEST_DIGEST_ATTR] = np.bytes_(hashlib.sha256(text.encode("ascii")).hexdigest().encode("ascii"))


def _skip(path: str):
    return (MANIFEST_ATTR, MANIFEST_DIGEST_ATTR) if path == "/" else ()


class Manifest:
    """Checks objects of an open archive against its manifest.

    Archives written before format version 3 have none: ``Manifest(h5, sizes, None)``
    then only checks sizes.
    """

    def __init__(self, h5: h5py.File, sizes: Sizes, parts: dict[str, str] | None):
        self.h5, self.sizes, self.parts = h5, sizes, parts
        self._checked: set[str] = set()

    @classmethod
    def load(cls, h5: h5py.File, sizes: Sizes, required: bool) -> "Manifest":
        if MANIFEST_ATTR not in h5.attrs:
            if required:
                raise _fail(sizes.where, "integrity manifest missing")
            return cls(h5, sizes, None)
        raw = sizes.attr(h5, MANIFEST_ATTR)
        text = raw if isinstance(raw, bytes) else bytes(raw)
        stated = sizes.attr(h5, MANIFEST_DIGEST_ATTR) if MANIFEST_DIGEST_ATTR in h5.attrs else b""
        if hashlib.sha256(text).hexdigest().encode("ascii") != bytes(stated):
            raise _fail(sizes.where, "integrity manifest fails its checksum")
        try:
            parts = json.loads(text.decode("ascii"))["parts"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise _fail(sizes.where, f"integrity manifest unreadable ({exc})") from None
        if not isinstance(parts, dict):
            raise _fail(sizes.where, "integrity manifest unreadable")
        return cls(h5, sizes, parts)

    @property
    def enabled(self) -> bool:
        return self.parts is not None

    def _compare(self, key: str, digest: str, what: str) -> None:
        if self.parts is None:
            return
        expected = self.parts.get(key)
        if expected is None:
            raise _fail(self.sizes.where, f"{what} is not in the integrity manifest")
        if expected != digest:
            raise _fail(self.sizes.where, f"{what} is damaged (checksum mismatch)")
        self._checked.add(key)

    def attrs(self, path: str) -> dict:
        """Checked attributes of the group or dataset at ``path``, strings decoded."""
        obj = self.h5[path]
        values = dict(_attr_items(obj, self.sizes, _skip(obj.name)))
        if self.parts is not None and ("@" + obj.name) not in self._checked:
            if values or ("@" + obj.name) in self.parts:
                self._compare("@" + obj.name, attrs_digest(obj, self.sizes, _skip(obj.name)),
                              f"attributes of {obj.name}")
        return {k: _plain(v) for k, v in values.items()}

    def dataset(self, path: str, max_bytes: int | None = None) -> np.ndarray:
        """A checked dataset's whole value, read once its declared size is plausible."""
        ds = self.h5[path]
        if not isinstance(ds, h5py.Dataset):
            raise _fail(self.sizes.where, f"{path} is not a dataset")
        self.sizes.dataset(ds, max_bytes)
        data = ds[()]
        self._compare(ds.name, dataset_digest(ds, self.sizes, data), ds.name)
        return data

    def check(self, path: str) -> None:
        """Check one dataset without keeping its values (read in bounded chunks)."""
        ds = self.h5[path]
        if ds.name not in self._checked:
            self._compare(ds.name, dataset_digest(ds, self.sizes), ds.name)

    def check_all(self) -> int:
        """Check every object of the file against the manifest; return how many parts."""
        if self.parts is None:
            return 0
        seen = set()
        for path, obj in objects(self.h5):
            if len(obj.attrs) or ("@" + path) in self.parts:
                self._compare("@" + path, attrs_digest(obj, self.sizes, _skip(path)), f"attributes of {path}")
                seen.add("@" + path)
            if isinstance(obj, h5py.Dataset):
                self._compare(path, dataset_digest(obj, self.sizes), path)
                seen.add(path)
        missing = sorted(set(self.parts) - seen)
        if missing:
            raise _fail(self.sizes.where, f"{missing[0].lstrip('@')} is missing from the archive")
        return len(seen)


def _plain(value):
    """Attribute values as Python scalars and str (fixed-length UTF-8 bytes decoded)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
