"""Names and types of the HDF5 archive layout (documented in docs/FORMAT.md)."""

from __future__ import annotations

import numpy as np

from ..codecs.base import MAX_DECODED_ELEMENTS as MAX_BLOCK_ELEMENTS

FORMAT_NAME = "biocompress"
FORMAT_VERSION = 6  # 2 added value kind int-native and /channels/stored_samples; 3 the integrity manifest;
#                     4 the stream's timestamps (/times) and marker timestamps (/annotations/timestamp);
#                     5 the metadata packed into /meta (container/packed.py); 6 /meta sealed in
#                     itself (LZMA2), payload segments at the file's root (segment_path)
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
PACKED_VERSION = 5  # from this version on, the metadata tree is packed
ROOT_SEGMENTS_VERSION = 6  # from this version on, payload segments sit at the file's root
DATA, TIMES = "data", "times"  # groups of coded blocks: the samples, and their timestamps (one channel)
SEGMENT_NAME = "{:06d}"  # before format 6: /data/payload/000000, 000001, ...
SEGMENT_BYTES = 8 << 20  # blocks are buffered and written as contiguous segments of ~8 MiB

def segment_path(section: str, i: int, version: int = FORMAT_VERSION) -> str:
    """Where payload segment ``i`` of ``section`` (``data``, ``times``, ``streams/3/data``…)
    lies in the file. Format 6: at the root, named ``data.000000``, ``streams.3.times.000002``
    (each group costs a file ~150 bytes); before: ``/data/payload/000000``."""
    if version >= ROOT_SEGMENTS_VERSION:
        return "/" + section.strip("/").replace("/", ".") + "." + SEGMENT_NAME.format(i)
    return f"/{section.strip('/')}/payload/" + SEGMENT_NAME.format(i)


INDEX_DTYPE = np.dtype(
    [
        ("t_start", "<i8"),  # first sample of the block (0-based, in the archive's time base)
        ("t_stop", "<i8"),  # one past the last sample
        ("ch_start", "<i4"),  # first channel of the block's channel group
        ("ch_stop", "<i4"),  # one past the last channel
        ("segment", "<u4"),  # which /data/payload/<segment> dataset holds the block
        ("offset", "<u8"),  # byte offset of the block in that dataset
        ("length", "<u8"),  # byte length of the block
        ("codec", "<i2"),  # index into the /data attribute "codecs" (JSON list)
        ("crc32", "<u4"),  # zlib.crc32 of the block's bytes
    ]
)


def put_text(attrs, key: str, text: str) -> None:
    """Store a string attribute as fixed-length UTF-8.

    h5py's default (variable-length) strings live in a global heap whose smallest
    collection is 4 KiB, a large share of a small archive.
    """
    attrs[key] = np.bytes_(text.encode("utf-8"))


def get_text(attrs, key: str, default=None):
    """Read a string attribute written either as fixed-length bytes or variable-length str."""
    value = attrs.get(key, default)
    return value.decode("utf-8") if isinstance(value, bytes) else value
