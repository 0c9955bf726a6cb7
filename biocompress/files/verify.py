"""Full verification of an archive, optionally against its source recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import edf_exact, lossy_verify
from ..container.reader import Archive
from ..errors import CorruptArchiveError
from ..io.source import file_sha256, iter_samples, open_raw
from ..io.xdf_chunks import is_xdf_path
from ..progress import progress_bar
from ..system.threads import one_blas_thread


def verify_archive(archive, source=None, *, progress: bool = False) -> dict:
    """Check every block CRC, the decoded-samples SHA-256 and, with ``source``,
    bitwise equality with MNE's reading of the source and the source file's SHA-256.

    Lossy and near-lossless archives (:mod:`.lossy_verify`): the decoded samples match the
    SHA-256 or, decoded on a machine that rounds floats differently, the stored fingerprint
    within its tolerance; with ``source``, the stored error bounds and fidelity figures hold.

    Returns a dict with ``ok`` and human-readable ``lines``.
    """
    with one_blas_thread():
        return _verify(archive, source, progress)


def _verify(archive, source, progress: bool) -> dict:
    lines, ok = [], True
    with Archive(archive) as arc:
        live = getattr(arc, "live", False)  # a journal: no fingerprint yet, digests only once it ended
        lossy = arc.mode != "lossless" and not live
        if live:
            lines.append(arc.state_line())
        try:
            n_parts = arc.check_metadata()
            lines.append(_metadata_line(arc, n_parts))
            with progress_bar(f"verify {Path(archive).name}", arc.n_samples, enabled=progress) as adv:
                rebuild = None
                if lossy:
                    decoded_ok, decoded_lines = lossy_verify.check_decoded(arc, progress=adv)
                elif arc.stored_edf is not None:  # one decode of every block for both checks
                    result, rebuild = edf_exact.verify_with_file(arc, progress=adv)  # timestamps too
                else:
                    result = arc.verify(progress=adv)  # timestamps too
            times = (arc.verify_timestamps() if lossy else result) if arc.has_timestamps else None
            if arc.stored_edf is not None:
                rebuilt = rebuild.finish() if rebuild is not None else edf_exact.write_file(arc, edf_exact.NullSink())
        except CorruptArchiveError as exc:
            return {"ok": False, "lines": lines + [f"corrupt: {exc}"]}
        if lossy:
            ok &= decoded_ok
            lines += decoded_lines
        else:
            ok &= result["ok"]
            lines.append(f"blocks: {arc.index.size} decoded, CRC-32 ok")
            if result["expected"] is None:
                lines.append(f"samples sha256: {result['samples_sha256'][:16]}… (no digest to compare with until the "
                             "recording ends)")
            else:
                same = result["samples_sha256"] == result["expected"]
                lines.append(f"samples sha256: {'ok' if same else 'MISMATCH'} ({result['samples_sha256'][:16]}…)")
        if times is not None:
            ok &= times["times_ok"]
            state = ("ok" if times["times_ok"] else "MISMATCH") if times["times_expected"] is not None else "decoded"
            lines.append(f"timestamps: {arc.times_index.size} blocks, sha256 {state} ({times['times_sha256'][:16]}…)")
        if arc.stored_edf is not None:
            same = rebuilt == arc.stored_edf.sha256
            ok &= same
            lines.append(f"{arc.stored_edf.kind} file rebuilt for restore: sha256 "
                         f"{'matches the source' if same else 'DIFFERS from the source'}")
        if len(arc.streams) > 1:  # an XDF file's archive: every other stream, checked alike
            streams_ok, stream_lines = _other_streams(arc)
            ok &= streams_ok
            lines += stream_lines
        if source is not None:
            try:
                compare = _compare_xdf if is_xdf_path(source) else _compare_source
                src_ok, src_lines = compare(arc, Path(source), progress)
            except CorruptArchiveError as exc:
                return {"ok": False, "lines": lines + [f"corrupt: {exc}"]}
            ok &= src_ok
            lines += src_lines
    return {"ok": bool(ok), "lines": lines}


def _other_streams(arc: Archive) -> tuple[bool, list[str]]:
    """Every stream but the main one: its parts against the manifest, every block decoded and
    its samples' and timestamps' SHA-256 compared; marker streams read and checked."""
    from ..container.streams import MARKERS

    ok, lines = True, []
    for entry in arc.streams[1:]:
        label = f"stream {entry.index} ({entry.name}, {entry.type})"
        try:
            if entry.kind == MARKERS:
                markers = arc.stream(entry.index)
                lines.append(f"{label}: {markers.timestamps.size} markers readable")
                continue
            with Archive(arc.path, stream=entry.index) as s:
                s.check_metadata()
                result = s.verify()
            ok &= result["ok"]
            lines.append(f"{label}: {s.n_samples} samples × {s.n_channels} channels, {s.index.size} blocks, "
                         f"sha256 {'ok' if result['samples_sha256'] == result['expected'] else 'MISMATCH'}, "
                         f"timestamps {'ok' if result.get('times_ok') else 'MISMATCH'}")
        except CorruptArchiveError as exc:
            ok = False
            lines.append(f"{label}: corrupt: {exc}")
    return ok, lines


def _compare_xdf(arc: Archive, source: Path, progress: bool):
    """Every stream of the XDF file against the archive, bit for bit (samples in the file's own
    format, timestamps, clock offsets, markers, header XML), and the file's SHA-256."""
    from ..io.xdf import read_xdf
    from .verify_xdf import compare

    if "xdf_header" not in arc.source:
        return False, [f"{source.name} is an XDF file; this archive was not made from one"]
    ok, lines = compare(arc.path, read_xdf(source))
    stored = arc.source.get("sha256")
    if stored:
        same = file_sha256(source) == stored
        ok &= same
        lines.append(f"source file sha256: {'matches' if same else 'DIFFERS from'} the archived source")
    return ok, lines


def _compare_source(arc: Archive, source: Path, progress: bool):
    raw = open_raw(source)
    lines, ok = [], True
    if raw.n_times != arc.n_samples or raw.info["nchan"] != arc.n_channels:
        return False, [f"source shape ({raw.info['nchan']}, {raw.n_times}) differs from archive "
                       f"({arc.n_channels}, {arc.n_samples})"]
    if arc.mode != "lossless":
        with progress_bar(f"compare {source.name}", raw.n_times, enabled=progress) as advance:
            ok, lines = lossy_verify.check_claims(arc, raw, progress=advance)
    else:
        differ = np.zeros(arc.n_channels, bool)
        block = int(arc.attrs.get("block_samples", 16384))
        with progress_bar(f"compare {source.name}", raw.n_times, enabled=progress) as advance:
            for t0, t1, x in iter_samples(raw, block):  # MNE's view, window by window
                y = arc.read(t0, t1)
                differ |= (x.view(np.int64) != y.view(np.int64)).any(axis=1)
                advance(t1 - t0)
        diff = np.flatnonzero(differ)
        ok &= diff.size == 0
        lines.append("source samples: bit-exact" if diff.size == 0
                     else f"source samples: {diff.size} channel(s) differ, first {raw.ch_names[diff[0]]}")
    stored = arc.source.get("sha256")
    if stored and source.is_file():
        same = file_sha256(source) == stored
        ok &= same
        lines.append(f"source file sha256: {'matches' if same else 'DIFFERS from'} the archived source")
    if list(raw.ch_names) != arc.ch_names:
        ok = False
        lines.append("channel names differ")
    return ok, lines


def _metadata_line(arc, n_parts: int) -> str:
    if not n_parts:
        return "metadata: readable (no integrity data: archive format before version 3)"
    if arc.format_version >= 5 and not getattr(arc, "live", False):
        return f"metadata: {n_parts} parts, packed, match their SHA-256"
    return f"metadata: {n_parts} parts match the integrity manifest"
