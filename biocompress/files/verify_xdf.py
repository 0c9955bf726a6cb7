"""An XDF file's archive against the file: every stream's samples (in the file's own format),
timestamps, clock offsets, markers and header XML, bit for bit."""

from __future__ import annotations

import numpy as np

from ..container.reader import Archive
from ..errors import CorruptArchiveError
from ..io.xdf import XdfRecording, XdfStream

HEADER_KEYS = ("stream_id", "name", "type", "source_id", "channel_format", "channel_count", "nominal_srate",
               "header_xml", "footer_xml")


def compare(archive, recording: XdfRecording, main_index: int | None = None) -> tuple[bool, list[str]]:
    """Whether the archive holds every stream of ``recording`` exactly; one line per stream
    (lines that say DIFFER or MISSING name what is wrong)."""
    lines, ok = [], True
    with Archive(archive) as arc:
        entries = {e.index: e for e in arc.streams}
        main = arc.streams[0]
        if main_index is not None and main.index != main_index:
            return False, [f"main stream: DIFFER: the archive's root holds stream {main.index}, not {main_index}"]
        if arc.source.get("xdf_header") != recording.file_header_xml.decode("utf-8"):
            ok = False
            lines.append("file header XML: DIFFER")
        extra = sorted(set(entries) - {s.index for s in recording.streams}, key=str)
        if extra:
            ok = False
            lines.append(f"streams {extra}: DIFFER: in the archive, not in the file")
        for stream in recording.streams:
            entry = entries.get(stream.index)
            if entry is None:
                ok = False
                lines.append(f"{stream.label()}: MISSING from the archive")
                continue
            try:
                same, what = (_markers(arc, stream) if stream.is_markers
                              else _signal(arc, stream, None if entry.main else stream.index))
            except CorruptArchiveError as exc:
                same, what = False, f"DIFFER: corrupt ({exc})"
            ok &= same
            lines.append(f"{stream.label()}{' (main)' if entry.main else ''}: {what}")
    return ok, lines


def _signal(arc: Archive, stream: XdfStream, key) -> tuple[bool, str]:
    with Archive(arc.path, stream=key) as s:
        problems = []
        if not s.verify()["ok"]:
            problems.append("decoded samples or timestamps fail their SHA-256")
        values = s.source_values()
        if values.shape != stream.values.shape or values.dtype != stream.values.dtype or not _same(values, stream.values):
            problems.append("samples")
        stamps = s.timestamps() if s.has_timestamps else np.zeros(0)
        if not _same(stamps, stream.timestamps):
            problems.append("timestamps")
        if not _same(_offsets(s.clock_offsets), _offsets_of(stream)):
            problems.append("clock offsets")
        problems += _header(s.stream_header, stream)
    if problems:
        return False, "DIFFER: " + ", ".join(problems)
    return True, (f"{stream.n_samples} samples × {stream.channel_count} channels ({stream.channel_format}) and their "
                  f"timestamps bit-exact, {stream.clock_times.size} clock offsets, header XML kept")


def _markers(arc: Archive, stream: XdfStream) -> tuple[bool, str]:
    m = arc.stream(stream.index)
    problems = []
    if not _same(m.timestamps, stream.timestamps):
        problems.append("timestamps")
    if m.strings != [list(row) for row in stream.values]:
        problems.append("strings")
    if not _same(_offsets(m.clock_offsets), _offsets_of(stream)):
        problems.append("clock offsets")
    problems += _header(m.header, stream)
    if problems:
        return False, "DIFFER: " + ", ".join(problems)
    return True, (f"{stream.n_samples} markers: strings and timestamps exact, {stream.clock_times.size} clock offsets, "
                  "header XML kept")


def _header(stored: dict, stream: XdfStream) -> list[str]:
    want = stream.header()
    differ = [k for k in HEADER_KEYS if stored.get(k) != want[k]]
    return [f"header ({', '.join(differ)})"] if differ else []


def _offsets(stored) -> np.ndarray:
    return stored if stored is not None else np.zeros((0, 2))


def _offsets_of(stream: XdfStream) -> np.ndarray:
    return np.column_stack([stream.clock_times, stream.clock_values]).reshape(-1, 2)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()
