"""XDF recordings (Lab Streaming Layer, LabRecorder) as streams.

Samples and timestamps come from pyxdf exactly as recorded (no clock synchronization, no
dejittering: the raw LSL timestamps and the clock offsets as measured); the file header and
every stream's header and footer XML come verbatim from :mod:`.xdf_chunks`, whose strict
scan also tells a damaged file from one a recorder left cut short. Each stream's channels
get MNE names, types and the scale from their unit to MNE's (µV → V).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from defusedxml import ElementTree

from ..errors import BadInputError
from .xdf_chunks import CHANNEL_FORMATS, STRING, VALUE_DTYPES, XdfLayout, scan

# MNE channel types an XDF channel's (or stream's) type may name; others become misc
MNE_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio", "misc", "stim", "resp", "gsr",
             "temperature"}
TYPE_ALIASES = {"trigger": "stim", "triggers": "stim"}
VOLT_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio"}  # MNE holds them in volts
UNIT_SCALES = {  # an XDF unit → volts
    "microvolts": 1e-6, "microvolt": 1e-6, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6,
    "millivolts": 1e-3, "millivolt": 1e-3, "mv": 1e-3,
    "nanovolts": 1e-9, "nanovolt": 1e-9, "nv": 1e-9,
    "volts": 1.0, "volt": 1.0, "v": 1.0,
}


@dataclass
class XdfStream:
    """One stream of an XDF file. ``values``: (n, channel_count) in the stream's format, or for
    a string (marker) stream a list of n lists of ``channel_count`` strings."""

    index: int  # position of its header among the file's streams
    stream_id: int
    header_xml: bytes
    footer_xml: bytes | None
    name: str
    type: str
    source_id: str
    channel_format: str
    channel_count: int
    nominal_srate: float
    channels: list[dict]  # label, type, unit of each channel (as the header describes them; may be empty)
    values: object
    timestamps: np.ndarray
    clock_times: np.ndarray
    clock_values: np.ndarray

    @property
    def is_markers(self) -> bool:
        return self.channel_format == STRING

    @property
    def n_samples(self) -> int:
        return int(self.timestamps.size)

    @property
    def irregular(self) -> bool:
        return self.nominal_srate == 0

    def label(self) -> str:
        return f"stream {self.index} ({self.name or '?'}, {self.type or '?'})"

    def header(self) -> dict:
        """The stream's header as an archive keeps it (docs/FORMAT.md §5.6)."""
        return {"index": self.index, "stream_id": self.stream_id, "name": self.name, "type": self.type,
                "source_id": self.source_id, "channel_format": self.channel_format,
                "channel_count": self.channel_count, "nominal_srate": self.nominal_srate, "header_xml": self.header_xml.decode("utf-8"),
                "footer_xml": None if self.footer_xml is None else self.footer_xml.decode("utf-8")}


@dataclass
class XdfRecording:
    path: Path
    file_header_xml: bytes
    streams: list[XdfStream]
    meas_date: dt.datetime | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def markers(self) -> list[XdfStream]:
        return [s for s in self.streams if s.is_markers]


def read_xdf(path) -> XdfRecording:
    """Every stream of the XDF file at ``path``, exactly as recorded.

    Raises
    ------
    BadInputError
        Naming the file and the problem: not XDF, damaged, a stream that cannot be stored.
    """
    path = Path(path)
    layout = scan(path)
    warnings = []
    if layout.cut_bytes:
        warnings.append(f"the file ends inside its last chunk ({layout.cut_bytes} bytes of it present): a recording "
                        "cut short; what that chunk held is not read")
    loaded, said = _load(path, layout)
    streams = [_stream(path, layout, s) for s in loaded]
    streams.sort(key=lambda s: s.index)
    meas_date, note = _meas_date(layout.file_header_xml)
    warnings += [note] if note else []
    warnings += said
    return XdfRecording(path, layout.file_header_xml, streams, meas_date, warnings)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _load(path: Path, layout: XdfLayout) -> tuple[list[dict], list[str]]:
    """pyxdf's streams; what pyxdf logged while reading (errors are damage unless the file
    was cut short, which the scan knows) becomes a BadInputError or the warnings returned."""
    import pyxdf

    log = logging.getLogger("pyxdf.pyxdf")
    handler, level, propagate = _Collect(), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False  # said through the warnings returned, not printed
    try:
        streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    except Exception as exc:  # noqa: BLE001 - pyxdf raises many types on files it cannot read
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BadInputError(path, f"pyxdf cannot read this XDF file ({type(exc).__name__}"
                            f"{': ' + detail if detail else ''})") from None
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate
    errors = [r.getMessage() for r in handler.records if r.levelno >= logging.ERROR]
    if errors and not layout.cut_bytes:
        raise BadInputError(path, f"damaged XDF file (pyxdf: {errors[0]})")
    said = [r.getMessage() for r in handler.records if r.levelno < logging.ERROR]
    return streams, list(dict.fromkeys(said))


def _stream(path: Path, layout: XdfLayout, loaded: dict) -> XdfStream:
    stream_id = int(loaded["info"]["stream_id"])
    scanned = layout.streams.get(stream_id)
    if scanned is None:
        raise BadInputError(path, f"damaged XDF file: pyxdf found stream id {stream_id}, the chunks hold no "
                            "header for it")
    head = _fields(path, scanned.header_xml, stream_id)
    where = f"stream {scanned.order} ({head['name'] or '?'}, {head['type'] or '?'})"
    stamps = np.asarray(loaded["time_stamps"], np.float64).reshape(-1)
    if stamps.size != scanned.n_samples:
        raise BadInputError(path, f"damaged XDF file: {where}: its chunks count {scanned.n_samples} samples, "
                            f"{stamps.size} could be read")
    values = loaded["time_series"]
    fmt, n_ch = head["channel_format"], head["channel_count"]
    if fmt == STRING:
        values = [list(row) for row in values]
        if any(len(row) != n_ch for row in values):
            raise BadInputError(path, f"damaged XDF file: {where}: a marker with another number of strings "
                                f"than its {n_ch} channels")
    else:
        values = np.asarray(values)
        if values.size == 0:
            values = np.zeros((0, n_ch), VALUE_DTYPES[fmt])
        if values.shape != (stamps.size, n_ch) or values.dtype != np.dtype(VALUE_DTYPES[fmt]):
            raise BadInputError(path, f"damaged XDF file: {where}: samples read as {values.dtype}{values.shape}, "
                                f"not {fmt} × {n_ch} channels")
    clock_t = np.asarray(loaded.get("clock_times", []), np.float64).reshape(-1)
    clock_v = np.asarray(loaded.get("clock_values", []), np.float64).reshape(-1)
    if clock_t.size != clock_v.size or clock_t.size != scanned.n_clock_offsets:
        raise BadInputError(path, f"damaged XDF file: {where}: clock offsets do not add up")
    return XdfStream(index=scanned.order, stream_id=stream_id, header_xml=scanned.header_xml,
                     footer_xml=scanned.footer_xml, values=values, timestamps=stamps, clock_times=clock_t,
                     clock_values=clock_v, **head)


def _text(node, tag: str) -> str:
    child = node.find(tag) if node is not None else None
    return (child.text or "").strip() if child is not None else ""


def _fields(path: Path, xml: bytes, stream_id: int) -> dict:
    """What a StreamHeader says: name, type, source_id, format, channel count, rate, channels."""
    root = ElementTree.fromstring(xml)
    where = f"stream id {stream_id}"
    fmt = _text(root, "channel_format")
    if fmt not in CHANNEL_FORMATS:
        raise BadInputError(path, f"{where}: channel_format {fmt!r} is not one XDF defines ({', '.join(CHANNEL_FORMATS)})")
    try:
        n_ch = int(_text(root, "channel_count"))
        rate = float(_text(root, "nominal_srate"))
    except ValueError:
        raise BadInputError(path, f"{where}: channel_count or nominal_srate is not a number") from None
    if n_ch < 1 or n_ch > 1 << 16:
        raise BadInputError(path, f"{where}: declares {n_ch} channels")
    if not (np.isfinite(rate) and rate >= 0):
        raise BadInputError(path, f"{where}: nominal_srate {rate} is impossible")
    channels = [{"label": _text(ch, "label"), "type": _text(ch, "type"), "unit": _text(ch, "unit")}
                for ch in root.findall("desc/channels/channel")]
    return {"name": _text(root, "name"), "type": _text(root, "type"), "source_id": _text(root, "source_id"),
            "channel_format": fmt, "channel_count": n_ch, "nominal_srate": rate,
            "channels": channels if len(channels) == n_ch else []}


def _meas_date(file_header: bytes) -> tuple[dt.datetime | None, str | None]:
    """The FileHeader's ``datetime`` in UTC (MNE's meas_date), and a note when it cannot be."""
    text = _text(ElementTree.fromstring(file_header), "datetime")
    if not text:
        return None, None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None, f"the file header's datetime {text!r} is not ISO 8601: no measurement date"
    note = None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
        note = f"the file header's datetime {text!r} has no time zone: taken as UTC"
    return when.astimezone(dt.UTC), note


# --- channels ------------------------------------------------------------------------
def channel_layout(stream: XdfStream) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """MNE channel names (unique), types, the scale from each channel's unit to MNE's
    (1e-6 for a µV EEG channel; 1 where MNE's unit is not volts or the unit is not known) and
    the units as the header names them."""
    described = stream.channels or [{} for _ in range(stream.channel_count)]
    stream_type = _mne_type(stream.type)
    names, types, scales, units = [], [], np.ones(stream.channel_count), []
    seen: dict[str, int] = {}
    for i, ch in enumerate(described):
        name = ch.get("label") or f"ch{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
        kind = _mne_type(ch.get("type", "")) or stream_type or "misc"
        types.append(kind)
        unit = ch.get("unit", "")
        units.append(unit)
        if kind in VOLT_TYPES:
            scales[i] = UNIT_SCALES.get(unit.strip().lower().replace(" ", ""), 1.0)
    return names, types, scales, units


def _mne_type(text: str) -> str | None:
    t = text.strip().lower()
    t = TYPE_ALIASES.get(t, t)
    return t if t in MNE_TYPES else None


# --- choosing streams ------------------------------------------------------------------
def choose_main(path, streams: list[XdfStream], wanted=None) -> XdfStream:
    """The stream an archive's root holds: ``wanted`` (a number, name or type), else the
    EEG-typed stream with the most channels, else the first numeric stream with the highest
    nominal rate (streams with samples preferred over empty ones)."""
    if wanted is not None:
        chosen = select_stream(path, streams, wanted)
        if chosen.is_markers:
            raise BadInputError(path, f"{chosen.label()} is a marker stream; the main stream must be numeric")
        return chosen
    numeric = [s for s in streams if not s.is_markers]
    if not numeric:
        raise BadInputError(path, "the XDF file holds no numeric stream (only markers): nothing to store as "
                            "a recording")
    pool = [s for s in numeric if s.n_samples] or numeric
    eeg = [s for s in pool if s.type.strip().lower() == "eeg"]
    if eeg:
        return max(eeg, key=lambda s: s.channel_count)
    return max(pool, key=lambda s: s.nominal_srate)


def select_stream(path, entries, wanted):
    """The entry (anything with ``index``, ``name``, ``type``) that ``wanted`` names: its
    number, else its name, else its type (exact, then ignoring case); BadInputError when no
    entry or several match."""
    entries = list(entries)
    listing = "; ".join(f"{e.index}: {e.name or '?'} ({e.type or '?'})" for e in entries)
    text = str(wanted).strip()
    if isinstance(wanted, (int, np.integer)) or text.isdigit():
        hit = [e for e in entries if e.index == int(text)]
        if hit:
            return hit[0]
    tries = [lambda e: e.name == text, lambda e: e.type == text,
             lambda e: e.name.lower() == text.lower(), lambda e: e.type.lower() == text.lower()]
    for matches in tries:
        hit = [e for e in entries if matches(e)]
        if len(hit) == 1:
            return hit[0]
        if len(hit) > 1:
            raise BadInputError(path, f"several streams match {text!r} ("
                                + ", ".join(f"{e.index}: {e.name} ({e.type})" for e in hit)
                                + "); give its number or its type")
    raise BadInputError(path, f"no stream {text!r}; the streams are {listing or 'none'}")
