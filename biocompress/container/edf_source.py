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
from .integrity import damage_is_corruption
from .layout import put_text

GROUP = "edf"
BYTES = -1  # channel_of_signal value: the signal's bytes are stored in the group
MAX_SIGNALS = 100_000


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


# Field widths of an EDF signal header, in order: label, transducer, physical dimension,
# physical min/max, digital min/max, prefiltering, samples per record, reserved.
_FIELDS = (16, 80, 8, 8, 8, 8, 8, 80, 8, 32)
_PHYS_MIN = 3  # index of the physical minimum in _FIELDS (then physical max, digital min, digital max)
DERIVED = "edf"  # /channels "recipe_derived": recipe_a and recipe_b follow from /edf/header


def _numbers(header: bytes, n_signals: int, field: int) -> np.ndarray:
    start = 256 + n_signals * sum(_FIELDS[:field])
    width = _FIELDS[field]
    return np.array([float(header[start + i * width : start + (i + 1) * width].decode("latin-1")
                           .split("\x00")[0].replace(",", "."))
                     for i in range(n_signals)], np.float64)


def gains(header: bytes, channel_of_signal: np.ndarray, n_channels: int) -> dict[str, np.ndarray] | None:
    """Each channel's gain ``a = (pmax - pmin) / (dmax - dmin)`` and offset ``b = pmin - dmin·a``
    from the header's fields of the signal it holds, in float64 (docs/FORMAT.md §6); None where a
    channel holds no signal or a field is not a number."""
    cos = np.asarray(channel_of_signal, np.int64)
    n_signals = cos.size
    signal = np.full(n_channels, -1, np.int64)
    held = cos >= 0
    if len(header) != 256 * (n_signals + 1) or (cos >= n_channels).any():
        return None
    signal[cos[held]] = np.flatnonzero(held)
    if (signal < 0).any():
        return None
    try:
        pmin, pmax, dmin, dmax = (_numbers(header, n_signals, _PHYS_MIN + k)[signal] for k in range(4))
    except (ValueError, UnicodeDecodeError):
        return None
    with np.errstate(all="ignore"):
        a = (pmax - pmin) / (dmax - dmin)
        return {"a": a, "b": pmin - dmin * a}


def derive_recipe(h5: h5py.File) -> bool:
    """Drop ``/channels/recipe_a`` and ``recipe_b`` where the header's fields give them back bit
    for bit (the EDF reader's gains: 16 bytes a channel that no compressor finds again)."""
    ch, edf = h5["channels"], h5[GROUP]
    if not {"recipe_a", "recipe_b"} <= set(ch):
        return False
    derived = gains(edf["header"][()].tobytes(), edf["channel_of_signal"][()], ch["names"].shape[0])
    if derived is None or not all(np.array_equal(ch[f"recipe_{n}"][()].view(np.int64), v.view(np.int64))
                                  for n, v in derived.items()):
        return False
    del ch["recipe_a"], ch["recipe_b"]
    put_text(ch.attrs, "recipe_derived", DERIVED)
    return True


class StoredEdf:
    """The ``/edf`` group of an open archive (an :class:`~.reader.Archive`), checked.

    Its small parts are read and checked against the archive's manifest here; the
    stored signal bytes when they are first read. Sizes are checked against each
    other (the rebuilt file must add up to ``file_size``) before anything is rebuilt.
    """

    def __init__(self, arc):
        self.parts, self.where = arc.parts, str(arc.path)
        attrs = self.parts.attrs(GROUP)
        self.kind = attrs["kind"]
        self.sha256 = attrs["sha256"]
        self.file_size = int(attrs["file_size"])
        width, n_records = int(attrs["width"]), int(attrs["n_records"])
        spr = self.parts.dataset(f"{GROUP}/samples_per_record", 8 * MAX_SIGNALS)
        self.channel_of_signal = self.parts.dataset(f"{GROUP}/channel_of_signal", 8 * MAX_SIGNALS)
        header = self.parts.dataset(f"{GROUP}/header", 256 * (MAX_SIGNALS + 1)).tobytes()
        self.layout = EdfLayout(header, width, spr.astype(np.int64), [""] * spr.size, n_records, self.file_size)
        self._check_layout(arc)
        self._checked: set[str] = set()

    def _bad(self, problem: str) -> CorruptArchiveError:
        return CorruptArchiveError(f"{self.where}: /edf group {problem}")

    def _check_layout(self, arc) -> None:
        layout, spr, cos = self.layout, self.layout.samples_per_record, self.channel_of_signal
        if spr.ndim != 1 or cos.shape != spr.shape or len(layout.header) != 256 * (spr.size + 1):
            raise self._bad("is inconsistent with its header")
        if layout.width not in (2, 3) or layout.n_records < 0 or (spr < 1).any():
            raise self._bad("declares an impossible record layout")
        if ((cos < BYTES) | (cos >= arc.n_channels)).any():
            raise self._bad("points to channels the archive does not hold")
        tail = self._dataset(f"{GROUP}/tail")
        total = len(layout.header) + float(layout.n_records) * layout.record_bytes + tail.shape[0]
        if total != self.file_size:
            raise self._bad(f"adds up to {total:.0f} bytes, not the {self.file_size} of the file it describes")
        for s in np.flatnonzero(cos == BYTES):
            ds = self._dataset(f"{GROUP}/signal_{s}")
            if ds.shape != (layout.n_records, int(spr[s]) * layout.width):
                raise self._bad(f"holds signal {s} in the wrong shape {ds.shape}")
        for s in np.flatnonzero(cos >= 0):
            if int(arc.stored_samples[cos[s]]) != layout.n_records * int(spr[s]):
                raise self._bad(f"signal {s} does not match the length of channel {cos[s]}")

    def _dataset(self, name: str) -> h5py.Dataset:
        ds = self.parts.h5[name]
        if not isinstance(ds, h5py.Dataset) or ds.dtype != np.uint8:
            raise self._bad(f"part {name} is malformed")
        self.parts.sizes.dataset(ds)
        return ds

    def _checked_dataset(self, name: str) -> h5py.Dataset:
        ds = self._dataset(name)
        if name not in self._checked:
            self.parts.check(name)  # whole dataset, in bounded chunks
            self._checked.add(name)
        return ds

    def check(self, arc) -> None:
        """Check every stored part (``verify``)."""
        for s in np.flatnonzero(self.channel_of_signal == BYTES):
            with damage_is_corruption(self.where, f"/edf/signal_{s}"):
                self._checked_dataset(f"{GROUP}/signal_{s}")
        self.tail()
        self.record_onsets()

    def signal_bytes(self, s: int, r0: int, r1: int) -> np.ndarray:
        with damage_is_corruption(self.where, f"/edf/signal_{s}"):
            return self._checked_dataset(f"{GROUP}/signal_{s}")[r0:r1]

    def tail(self) -> bytes:
        with damage_is_corruption(self.where, "/edf/tail"):
            return self.parts.dataset(f"{GROUP}/tail", self.file_size).tobytes()

    def record_onsets(self) -> np.ndarray | None:
        name = f"{GROUP}/record_onsets"
        with damage_is_corruption(self.where, "/edf/record_onsets"):
            if name not in self.parts.h5:
                return None
            onsets = self.parts.dataset(name, 8 * self.layout.n_records + 8)
        if onsets.shape != (self.layout.n_records,):
            raise self._bad("record onsets do not match the record count")
        return onsets.astype(np.float64)

    def gaps(self) -> list[tuple[float, float]]:
        """(time, length) in seconds of every jump between consecutive record onsets."""
        onsets = self.record_onsets()
        try:
            duration = float(self.layout.header[244:252].decode("ascii", "replace").strip() or 0)
        except ValueError:
            return []
        if onsets is None or onsets.size < 2 or not np.isfinite(onsets).all():
            return []
        jumps = np.diff(onsets) - duration
        where = np.flatnonzero(np.abs(jumps) > 1e-6)
        return [(float(onsets[i] + duration), float(jumps[i])) for i in where]
