"""The ``/edf`` group: what an archive keeps to give back its EDF/BDF source byte for byte.

Signals whose digital values are an archive channel's stored codes point to that
channel; the others (annotation signals, and any signal MNE changes on reading)
are kept as their raw record bytes, gzip-filtered. With the header bytes and
the bytes after the last complete record, that is the whole file.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import CorruptArchiveError
from ..io.edf_file import EdfLayout, signal_bytes
from .layout import get_text, put_text

GROUP = "edf"
BYTES = -1  # channel_of_signal value: the signal's bytes are stored in the group


def _bytes_dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    big = data.size > 512
    group.create_dataset(name, data=data, compression="gzip" if big else None, shuffle=big and data.ndim == 2)


def write(h5: h5py.File, path, layout: EdfLayout, channel_of_signal: np.ndarray, sha256: str,
          onsets: np.ndarray | None) -> None:
    g = h5.create_group(GROUP)
    put_text(g.attrs, "kind", layout.kind)
    g.attrs["width"] = layout.width
    g.attrs["n_records"] = layout.n_records
    g.attrs["file_size"] = layout.file_size
    put_text(g.attrs, "sha256", sha256)
    _bytes_dataset(g, "header", np.frombuffer(layout.header, np.uint8))
    g.create_dataset("samples_per_record", data=layout.samples_per_record.astype(np.int64))
    g.create_dataset("channel_of_signal", data=np.asarray(channel_of_signal, np.int64))
    for s in np.flatnonzero(np.asarray(channel_of_signal) == BYTES):
        _bytes_dataset(g, f"signal_{s}", signal_bytes(path, layout, int(s)))
    with open(path, "rb") as f:
        f.seek(layout.tail_offset)
        _bytes_dataset(g, "tail", np.frombuffer(f.read(), np.uint8))
    if onsets is not None:
        g.create_dataset("record_onsets", data=onsets.astype(np.float64))


class StoredEdf:
    """The ``/edf`` group of an open archive."""

    def __init__(self, h5: h5py.File, where: str = ""):
        try:
            g = h5[GROUP]
            self.group = g
            self.kind = get_text(g.attrs, "kind")
            self.sha256 = get_text(g.attrs, "sha256")
            self.file_size = int(g.attrs["file_size"])
            self.channel_of_signal = g["channel_of_signal"][()]
            header = g["header"][()].tobytes()
            spr = g["samples_per_record"][()]
            self.layout = EdfLayout(header, int(g.attrs["width"]), spr, [""] * spr.size,
                                    int(g.attrs["n_records"]), self.file_size)
        except KeyError as exc:
            raise CorruptArchiveError(f"{where}: incomplete /edf group ({exc})") from exc
        if self.channel_of_signal.size != spr.size or len(header) != 256 * (spr.size + 1):
            raise CorruptArchiveError(f"{where}: /edf group is inconsistent with its header")

    def signal_bytes(self, s: int, r0: int, r1: int) -> np.ndarray:
        return self.group[f"signal_{s}"][r0:r1]

    def tail(self) -> bytes:
        return self.group["tail"][()].tobytes()

    def record_onsets(self) -> np.ndarray | None:
        return self.group["record_onsets"][()] if "record_onsets" in self.group else None

    def gaps(self) -> list[tuple[float, float]]:
        """(time, length) in seconds of every jump between consecutive record onsets."""
        onsets = self.record_onsets()
        duration = float(self.layout.header[244:252].decode("ascii", "replace").strip() or 0)
        if onsets is None or onsets.size < 2 or not np.isfinite(onsets).all():
            return []
        jumps = np.diff(onsets) - duration
        where = np.flatnonzero(np.abs(jumps) > 1e-6)
        return [(float(onsets[i] + duration), float(jumps[i])) for i in where]
