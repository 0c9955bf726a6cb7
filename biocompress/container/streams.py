"""The streams of an archive made from an XDF file (docs/FORMAT.md §5.6).

The root holds the main stream like any archive; every other stream of the file is a group
``/streams/<k>`` (``k``: the stream's position in the file), either a numeric stream with the
root's sub-layout (``data``, ``channels``, ``info``, ``annotations``, ``times``) or a marker
stream (``markers``: each marker's strings and exact timestamp). Every group carries the
stream's header attributes; the main stream's are the provenance's ``stream`` object.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

import numpy as np

from ..codecs.float_codes import codes_to_f32, codes_to_f64
from ..errors import BadInputError, CorruptArchiveError
from ..io import scaling
from ..io.xdf_chunks import CHANNEL_FORMATS, STRING, VALUE_DTYPES
from .integrity import damage_is_corruption

GROUP = "streams"
SIGNAL, MARKERS = "signal", "markers"
_NUMBER = re.compile(r"^(0|[1-9][0-9]{0,8})$")
HEADER_TEXT = ("name", "type", "source_id", "channel_format", "header_xml", "footer_xml")


@dataclass(frozen=True)
class StreamEntry:
    """One stream of an archive: ``index`` its position in the XDF file (None for an archive
    of another source), ``kind`` signal or markers, ``rate`` the nominal rate (0: irregular),
    ``sfreq`` the rate the archive's samples are given at (signals), ``group`` its HDF5 group
    ("" for the root)."""

    index: int | None
    name: str
    type: str
    kind: str
    channels: int
    rate: float
    sfreq: float | None
    samples: int
    main: bool
    group: str

    def as_dict(self) -> dict:
        return asdict(self)


def group_of(index: int) -> str:
    return f"{GROUP}/{index}/"


def entries(arc) -> list[StreamEntry]:
    """Every stream of the archive ``arc`` (an open Archive), the main one first."""
    where = str(arc.path)
    source = arc.source
    head = source.get("stream") if isinstance(source.get("stream"), dict) else {}
    data = arc.parts.attrs("/data")
    sfreq = float(data["sfreq"])
    found = [StreamEntry(_index(head.get("index"), where), str(head.get("name") or ""), str(head.get("type") or ""),
                         SIGNAL, int(data["n_channels"]), _rate(head.get("nominal_srate", sfreq), where), sfreq,
                         int(data["n_samples"]), True, "")]
    if GROUP not in arc.h5:
        return found
    for key in sorted(arc.h5[GROUP], key=lambda k: (len(k), k)):
        if not _NUMBER.match(key):
            raise CorruptArchiveError(f"{where}: /{GROUP}/{key} is not a stream number")
        found.append(_entry(arc, int(key), where))
    seen = [e.index for e in found if e.index is not None]
    if len(seen) != len(set(seen)) or (found[0].index is None and len(found) > 1):
        raise CorruptArchiveError(f"{where}: stream numbers repeat, or the main stream has none")
    return found


def _entry(arc, index: int, where: str) -> StreamEntry:
    group = group_of(index)
    with damage_is_corruption(where, f"/{group}"):
        attrs = arc.parts.attrs(group)
        kind = attrs["kind"]
        if kind == SIGNAL:
            data = arc.parts.attrs(group + "data")
            channels, samples, sfreq = int(data["n_channels"]), int(data["n_samples"]), float(data["sfreq"])
        elif kind == MARKERS:
            ds = arc.h5[group + "markers/timestamp"]
            channels, samples, sfreq = int(attrs["channel_count"]), int(ds.shape[0]), None
        else:
            raise CorruptArchiveError(f"{where}: /{group} is a stream of unknown kind {kind!r}")
        return StreamEntry(index, str(attrs["name"]), str(attrs["type"]), kind, channels,
                           _rate(attrs["nominal_srate"], where), sfreq, samples, False, group)


def _index(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
        raise CorruptArchiveError(f"{where}: the main stream's number {value!r} is impossible")
    return value


def _rate(value, where: str) -> float:
    rate = float(value)
    if not (np.isfinite(rate) and rate >= 0):
        raise CorruptArchiveError(f"{where}: a stream's nominal rate {value!r} is impossible")
    return rate


def header(arc) -> dict:
    """The stream header of the stream ``arc`` holds: index, stream_id, name, type, source_id,
    channel_format, nominal_srate, header_xml, footer_xml (those the archive has)."""
    if not arc.base:
        head = arc.source.get("stream")
        return dict(head) if isinstance(head, dict) else {}
    attrs = arc.parts.attrs(arc.base.rstrip("/"))
    head = {k: attrs[k] for k in (*HEADER_TEXT, "stream_id", "nominal_srate", "channel_count") if k in attrs}
    head["index"] = int(arc.base.split("/")[1])
    return head


def select(arc, wanted) -> StreamEntry:
    """The stream ``wanted`` names (its number, name or type): BadInputError when none or several."""
    from ..io.xdf import select_stream

    return select_stream(arc.path, entries(arc), wanted)


@dataclass
class MarkerStream:
    """A marker stream of an archive: ``timestamps`` (float64, exact) and ``strings`` (one list of
    ``channel_count`` strings per marker), with its ``header``."""

    entry: StreamEntry
    header: dict
    timestamps: np.ndarray
    strings: list[list[str]]
    clock_offsets: np.ndarray | None = None  # (time, offset) rows, as /times/clock_offsets


def markers(arc, entry: StreamEntry) -> MarkerStream:
    """Read and check a marker stream's group."""
    where = str(arc.path)
    group = entry.group
    with damage_is_corruption(where, f"/{group}markers"):
        stamps = arc.parts.dataset(group + "markers/timestamp")
        strings = json.loads(bytes(arc.parts.dataset(group + "markers/strings", 256 << 20)).decode("utf-8"))
        head = {k: v for k, v in arc.parts.attrs(group.rstrip("/")).items() if k != "kind"}
        clock = (arc.parts.dataset(group + "markers/clock_offsets") if "clock_offsets" in arc.h5[group + "markers"]
                 else None)
    if clock is not None and (clock.dtype != np.float64 or clock.ndim != 2 or clock.shape[1] != 2):
        raise CorruptArchiveError(f"{where}: /{group}markers/clock_offsets is {clock.dtype}{clock.shape}, "
                                  "not float64 (n, 2)")
    if stamps.dtype != np.float64 or stamps.ndim != 1:
        raise CorruptArchiveError(f"{where}: /{group}markers/timestamp is {stamps.dtype}{stamps.shape}")
    n_ch = entry.channels
    if (not isinstance(strings, list) or len(strings) != stamps.size
            or not all(isinstance(row, list) and len(row) == n_ch and all(isinstance(s, str) for s in row)
                       for row in strings)):
        raise CorruptArchiveError(f"{where}: /{group}markers/strings is not {stamps.size} lists of {n_ch} strings")
    head["index"] = entry.index
    return MarkerStream(entry, head, stamps, strings, clock)


def source_values(arc, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples [start, stop) as the XDF file held them: (samples, channels) in the stream's
    channel_format (float32, int16, ...), bit for bit. Each block is decoded once."""
    fmt = arc.stream_header.get("channel_format")
    if fmt not in CHANNEL_FORMATS or fmt == STRING:
        raise BadInputError(arc.path, "this stream does not come from an XDF file's numeric stream")
    stop, start = arc.n_samples if stop is None else int(stop), int(start)
    if not 0 <= start <= stop <= arc.n_samples:
        raise ValueError(f"window [{start}, {stop}) outside 0..{arc.n_samples}")
    dtype = np.dtype(VALUE_DTYPES[fmt])
    out = np.empty((stop - start, arc.n_channels), dtype)
    filled = np.zeros(arc.n_channels, np.int64)
    idx = arc.index
    for i in np.flatnonzero((idx["t_start"] < stop) & (idx["t_stop"] > start)):
        row = idx[i]
        t0, c0, c1 = int(row["t_start"]), int(row["ch_start"]), int(row["ch_stop"])
        a, b = max(start, t0), min(stop, int(row["t_stop"]))
        codes = arc.decode_block(int(i))[:, a - t0 : b - t0]
        for ch in range(c0, c1):
            out[a - start : b - start, ch] = _file_values(arc, ch, codes[ch - c0], dtype, fmt)
        filled[c0:c1] += b - a
    if (filled != stop - start).any():
        raise CorruptArchiveError(f"{arc.path}: block index does not cover samples [{start}, {stop})")
    return out


def _file_values(arc, ch: int, codes: np.ndarray, dtype: np.dtype, fmt: str) -> np.ndarray:
    """One channel's codes as the file's values; CorruptArchiveError where the format cannot hold them."""
    kind = int(arc.value_kind[ch])
    if kind == 0:
        exact = codes
    elif kind == 1:
        exact = codes_to_f32(codes)
    elif kind == 2:
        exact = codes_to_f64(codes)
    else:
        raise CorruptArchiveError(f"{arc.path}: channel {ch} has value kind {scaling.VALUE_KINDS[kind]!r}, "
                                  "which an XDF stream's archive does not use")
    with np.errstate(over="ignore", invalid="ignore"):
        cast = exact.astype(dtype)
        if not _same(cast.astype(exact.dtype), exact):
            raise CorruptArchiveError(f"{arc.path}: channel {ch} holds values that are not {fmt}")
    return cast


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(f"<i{a.dtype.itemsize}"), b.view(f"<i{b.dtype.itemsize}")))
    return bool(np.array_equal(a, b))
