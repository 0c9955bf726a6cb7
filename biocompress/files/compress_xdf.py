"""compress() of an XDF file: one archive holding every stream (docs/FORMAT.md §5.6).

The main stream goes at the root, exactly as a recording's archive, so ``read_raw`` gives it
as an ``mne.io.Raw``; every other stream of the file goes in ``/streams/<k>``: numeric
streams with the same layout (their samples, channels, info, annotations and timestamps),
marker streams as their strings and timestamps. Samples are coded losslessly from the file's
own values, timestamps exactly (times-v1), and the archive is compared with the file, stream
by stream and bit for bit, before it gets its name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pyxdf

from ..codecs.pool import BlockPool
from ..container.layout import DATA, TIMES, put_text
from ..container.reader import sample_bytes, times_bytes
from ..container.streams import MARKERS, SIGNAL, group_of
from ..container.writer import ArchiveWriter, json_dataset, write_description
from ..errors import VerificationError
from ..io.source import file_sha256
from ..io.xdf import XdfRecording, XdfStream, choose_main, read_xdf
from ..io.xdf_streams import StreamPlan, plan_stream
from ..progress import progress_bar
from ..stream.blocks import Chunk
from ..stream.encoder import StreamEncoder
from ..stream.lanes import CodesLane, group_runs
from ..stream.plans import times_lane
from ..system.outputs import check_output, writing

SMALL_RECORDING = 1_000_000  # samples × channels; below this, worker processes cost more than they save
LOSSLESS_HASH = "sha256 of float64 little-endian samples, time-major"
TIMES_HASH = "sha256 of float64 little-endian timestamps, in sample order"
MAX_COMPACT_ATTRS = 16
CLOCK = "lsl"  # XDF timestamps are the recording machine's LSL clock (local_clock), in seconds


class _CodedChunk(Chunk):
    """A chunk whose integer codes are known exactly (the file's own values)."""

    def __init__(self, start, values, timestamps, codes):
        super().__init__(start, values, timestamps)
        object.__setattr__(self, "codes", codes)


class _KnownCodesLane(CodesLane):
    """A lossless lane that takes the chunk's exact codes instead of deriving them from values."""

    def codes_of(self, chunk: _CodedChunk) -> np.ndarray:
        return chunk.codes[self.start : self.stop]


def compress_xdf(src, dst=None, *, stream=None, overwrite: bool = False, block_samples: int = 16384,
                 group_channels: int = 32, workers: int | None = None, progress: bool = False,
                 verify: bool = True) -> Path:
    """Compress the XDF file ``src`` into one archive holding every stream; ``stream`` picks the
    main one (its number, name or type; default: the EEG stream with the most channels, else
    the numeric stream with the highest rate). See :func:`biocompress.compress`."""
    src = Path(src)
    from .compress import default_output

    dst = check_output(dst if dst is not None else default_output(src), [src], force=overwrite, kind="archive")
    recording = read_xdf(src)
    main = choose_main(src, recording.streams, stream)
    numeric = [main] + [s for s in recording.streams if not s.is_markers and s is not main]
    plans = [plan_stream(src, recording, s) for s in numeric]
    total = sum(p.stream.n_samples * p.stream.channel_count for p in plans)
    source = source_description(recording, main, [w for p in plans for w in p.warnings])
    if workers is None:
        workers = 1 if total < SMALL_RECORDING else None
    n_samples = sum(p.stream.n_samples for p in plans)
    with writing(dst), BlockPool(workers) as pool, \
            progress_bar(f"compress {src.name}", n_samples, enabled=progress) as advance, \
            ArchiveWriter(dst) as writer:
        others = {}
        for plan in plans:
            prefix = "" if plan.stream is main else group_of(plan.stream.index)
            if prefix:
                _new_group(writer.h5, prefix)
            attrs = _encode(writer, prefix, plan, block_samples, group_channels, pool, advance)
            if prefix:
                others.update({prefix + DATA: attrs[DATA], prefix + TIMES: attrs[TIMES]})
            else:
                main_attrs = attrs
            _describe(writer.h5, prefix, plan, None if prefix else source)
        for markers in recording.markers:
            _write_markers(writer.h5, markers)
        writer.finish(main_attrs[DATA], main_attrs[TIMES], others)
        if verify:
            from .verify_xdf import compare

            ok, lines = compare(writer.tmp, recording, main_index=main.index)
            if not ok:
                raise VerificationError(f"{src.name}: the archive differs from the XDF file: "
                                        + "; ".join(line for line in lines if "DIFFER" in line or "MISSING" in line))
        return writer.publish(overwrite=overwrite)


def _encode(writer: ArchiveWriter, prefix: str, plan: StreamPlan, block: int, group_channels: int,
            pool: BlockPool, advance) -> dict:
    """Code one stream's samples and timestamps into ``writer``; return its /data and /times attributes."""
    stream = plan.stream
    lanes = [_KnownCodesLane(a, b, int(plan.kinds[a]), plan.recipe, block)
             for a, b in group_runs(plan.kinds.tolist(), group_channels)]
    lanes.append(times_lane(block, stream.nominal_srate or None))
    samples, stamps = hashlib.sha256(), hashlib.sha256()
    n = stream.n_samples

    def chunks():
        for t0 in range(0, n, block):
            t1 = min(n, t0 + block)
            codes = plan.codes(t0, t1)
            chunk = _CodedChunk(t0, plan.values(codes), stream.timestamps[t0:t1], codes)
            samples.update(sample_bytes(chunk.values))
            stamps.update(times_bytes(chunk.timestamps))
            yield chunk
            advance(t1 - t0)

    for coded in StreamEncoder(lanes, pool).encode(chunks()):
        writer.add_block(coded.t_start, coded.t_stop, coded.ch_start, coded.ch_stop, coded.config, coded.payload,
                         section=prefix + coded.section)
    return {
        DATA: {"n_samples": n, "n_channels": stream.channel_count, "sfreq": plan.sfreq, "first_samp": 0,
               "block_samples": block, "samples_sha256": samples.hexdigest(), "samples_hash_layout": LOSSLESS_HASH},
        TIMES: {"n_samples": n, "clock": CLOCK, "times_sha256": stamps.hexdigest(), "times_hash_layout": TIMES_HASH},
    }


def _describe(h5, prefix: str, plan: StreamPlan, source: dict | None) -> None:
    """/info, /channels, /annotations (with the markers' timestamps), /times/clock_offsets of one
    stream; the root's provenance (main stream), or the group's stream attributes."""
    stream = plan.stream
    group = h5.require_group(prefix or "/")
    write_description(group, info=plan.info, ch_types=plan.info.get_channel_types(), recipe=plan.recipe,
                      kinds=plan.kinds, stored=np.full(stream.channel_count, stream.n_samples, np.int64),
                      annotations=plan.annotations, source=source)
    if plan.marker_stamps is not None:
        group["annotations"].create_dataset("timestamp", data=plan.marker_stamps)
    if stream.clock_times.size:
        group.require_group(TIMES).create_dataset("clock_offsets", data=_clock(stream))
    if prefix:
        _stream_attrs(group, stream, SIGNAL)


def _clock(stream: XdfStream) -> np.ndarray:
    """The stream's clock offsets as (time, offset) rows (docs/FORMAT.md §4.4)."""
    return np.column_stack([stream.clock_times, stream.clock_values]).astype(np.float64)


def _new_group(h5, path: str):
    """A stream's group, its attributes kept in its object header: HDF5 moves more than 8
    attributes to a heap and B-tree of their own by default, kilobytes for a few hundred bytes."""
    parent = h5.require_group(path.rstrip("/").rsplit("/", 1)[0])
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_attr_phase_change(MAX_COMPACT_ATTRS, MAX_COMPACT_ATTRS - 2)
    return h5py.Group(h5py.h5g.create(parent.id, path.rstrip("/").rsplit("/", 1)[1].encode(), gcpl=gcpl))


def _write_markers(h5, stream: XdfStream) -> None:
    group = _new_group(h5, group_of(stream.index))
    _stream_attrs(group, stream, MARKERS)
    markers = group.create_group("markers")
    markers.create_dataset("timestamp", data=np.asarray(stream.timestamps, np.float64))
    json_dataset(markers, "strings", [list(row) for row in stream.values])
    if stream.clock_times.size:
        markers.create_dataset("clock_offsets", data=_clock(stream))


def _stream_attrs(group, stream: XdfStream, kind: str) -> None:
    put_text(group.attrs, "kind", kind)
    for key, value in stream.header().items():
        if key == "index" or value is None:
            continue
        if isinstance(value, str):
            put_text(group.attrs, key, value)
        else:
            group.attrs[key] = value


def source_description(recording: XdfRecording, main: XdfStream, notes=()) -> dict:
    """Provenance of an XDF file's archive (docs/FORMAT.md §3, §5.6); ``notes``: what the
    streams' coding said (channels left in the file's unit, irregular streams)."""
    path = recording.path
    size = path.stat().st_size
    sha = file_sha256(path)
    warnings = list(recording.warnings) + list(notes)
    return {
        "file_name": path.name, "file_size": size, "sha256": sha,
        "files": [{"name": path.name, "size": size, "sha256": sha}],
        "reader": "pyxdf", "pyxdf_version": getattr(pyxdf, "__version__", None), "source_bytes": size,
        "warnings": warnings, "xdf_header": recording.file_header_xml.decode("utf-8"),
        "stream": main.header(),
    }
