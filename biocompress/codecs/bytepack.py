"""A minimal self-delimiting layout for a few numpy arrays inside one payload."""

from __future__ import annotations

import struct

import numpy as np

from ..errors import CorruptArchiveError

_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float64]
_CODE = {np.dtype(t): i for i, t in enumerate(_DTYPES)}
_HEAD = struct.Struct("<BI")


def pack_arrays(*arrays: np.ndarray) -> bytes:
    """Concatenate 1-D arrays, each preceded by (dtype code, length)."""
    parts = []
    for a in arrays:
        a = np.ascontiguousarray(a).ravel()
        parts.append(_HEAD.pack(_CODE[a.dtype], a.size))
        parts.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return b"".join(parts)


def unpack_arrays(payload: bytes, count: int) -> list[np.ndarray]:
    out, pos = [], 0
    mv = memoryview(payload)
    for _ in range(count):
        if pos + _HEAD.size > len(mv):
            raise CorruptArchiveError("payload truncated (array header)")
        code, n = _HEAD.unpack_from(mv, pos)
        pos += _HEAD.size
        if code >= len(_DTYPES):
            raise CorruptArchiveError(f"payload has unknown dtype code {code}")
        dt = np.dtype(_DTYPES[code]).newbyteorder("<")
        end = pos + n * dt.itemsize
        if end > len(mv):
            raise CorruptArchiveError("payload truncated (array body)")
        out.append(np.frombuffer(mv[pos:end], dtype=dt).astype(dt.newbyteorder("="), copy=True))
        pos = end
    if pos != len(mv):
        raise CorruptArchiveError(f"payload has {len(mv) - pos} unexpected trailing bytes")
    return out
