"""The archive layout of a journal's contents: what finalizing writes besides the blocks,
and the in-memory image through which a live journal is read like any archive."""

from __future__ import annotations

import io
import json

import h5py
import mne
import numpy as np

from . import integrity
from .journal_reader import BlockFrame, JournalContents
from .layout import DATA, INDEX_DTYPE, TIMES, put_text
from .writer import HDF5_OPTIONS, json_dataset, write_description, write_root

LOSSLESS_HASH = "sha256 of float64 little-endian samples, time-major"
DECODED_HASH = "sha256 of float64 little-endian samples (decoded), time-major"
TIMES_HASH = "sha256 of float64 little-endian timestamps, in sample order"


def annotations_of(contents: JournalContents) -> tuple[mne.Annotations, np.ndarray | None]:
    """The description's annotations and every marker frame's, in MNE's order, with the markers'
    own timestamps (NaN for annotations without one), or None when no marker has one."""
    first = contents.description.annotations or mne.Annotations([], [], [])
    onset, duration = list(first.onset), list(first.duration)
    description, ch_names = list(first.description), [list(c) for c in first.ch_names]
    stamps = [np.nan] * len(onset)
    for m in contents.markers:
        onset += m["onset"]
        duration += m["duration"]
        description += m["description"]
        ch_names += m["ch_names"] if m["ch_names"] is not None else [[] for _ in m["onset"]]
        stamps += m["timestamp"] if m["timestamp"] is not None else [np.nan] * len(m["onset"])
    with_stamps = any(m["timestamp"] is not None for m in contents.markers)
    ann = mne.Annotations(onset, duration, description, orig_time=first.orig_time,
                          ch_names=ch_names if any(ch_names) else None,
                          extras=[{"timestamp": t} for t in stamps])  # sorted along with the onsets
    order_stamps = np.array([e["timestamp"] for e in ann.extras], np.float64)
    return ann, (order_stamps if with_stamps else None)


def source_of(contents: JournalContents, recovery: dict | None = None) -> dict:
    """The provenance: the description's, with the stream header, notes and recovery record."""
    desc = contents.description
    source = dict(desc.source)
    if desc.stream is not None:
        source["stream"] = desc.stream
    if contents.notes:
        source["notes"] = list(contents.notes)
    if recovery is not None:
        source["recovery"] = recovery
    return source


def write_metadata(h5: h5py.File, contents: JournalContents, recovery: dict | None = None) -> None:
    """Everything but the blocks and the /data and /times attributes: /info, /channels,
    /annotations (marker timestamps too), the provenance, /lossy, /times/clock_offsets."""
    desc = contents.description
    annotations, stamps = annotations_of(contents)
    write_description(h5, info=desc.info, ch_types=desc.ch_types, recipe=desc.recipe, kinds=desc.kinds,
                      stored=np.full(desc.n_channels, contents.n_samples, np.int64), annotations=annotations,
                      source=source_of(contents, recovery))
    if stamps is not None:
        h5["annotations"].create_dataset("timestamp", data=stamps)
    if desc.lossy is not None:
        g = h5.create_group("lossy")
        for key, value in desc.lossy.items():
            if isinstance(value, str):
                put_text(g.attrs, key, value)
            else:
                g.attrs[key] = value
        if desc.lossy_model is not None:
            g.create_dataset("model", data=np.frombuffer(desc.lossy_model, np.uint8))
    if desc.has_timestamps and contents.clock:
        group = h5.require_group(TIMES)
        group.create_dataset("clock_offsets", data=np.array(contents.clock, np.float64).reshape(-1, 2))


def data_attrs(contents: JournalContents, samples_sha256: str) -> dict:
    desc = contents.description
    return {"n_samples": contents.n_samples, "n_channels": desc.n_channels, "sfreq": desc.sfreq,
            "first_samp": 0, "block_samples": int(desc.block_samples), "samples_sha256": samples_sha256,
            "samples_hash_layout": LOSSLESS_HASH if desc.mode == "lossless" else DECODED_HASH}


def times_attrs(contents: JournalContents, times_sha256: str) -> dict:
    return {"n_samples": contents.n_samples, "clock": contents.description.clock, "times_sha256": times_sha256,
            "times_hash_layout": TIMES_HASH}


def write_fidelity(h5: h5py.File, contents: JournalContents, stats: list[np.ndarray], window: int) -> None:
    """Lossy streams: the decoded samples' fingerprint (§5.5.1); there is no source to measure
    fidelity figures against, so ``/fidelity/json`` says so."""
    from . import fingerprint

    group = h5.create_group("fidelity")
    measured = contents.end.get("fidelity") if contents.complete else None
    if isinstance(measured, dict) and {"overall", "per_channel"} <= set(measured):
        # figures the recorder measured as it coded, against the samples it received
        json_dataset(group, "json", {**measured, "ch_names": contents.description.info["ch_names"],
                                     "measured": "live, against the samples received"}, digits=6)
    else:
        json_dataset(group, "json", {"overall": {}, "per_channel": {}, "ch_names": contents.description.info["ch_names"],
                                     "measured": False, "why": "a live stream: no source to measure against"})
    fingerprint.write(group, stats, window)


def image(contents: JournalContents) -> tuple[io.BytesIO, int]:
    """An in-memory HDF5 archive of the journal's metadata and block index, sealed like any
    archive; its index rows point at the blocks' bytes in the journal file (segment 0)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", **HDF5_OPTIONS) as h5:
        write_root(h5, contents.description.mode)
        sections = [(DATA, contents.end_digest("samples_sha256"), data_attrs)]
        if contents.description.has_timestamps:
            sections.append((TIMES, contents.end_digest("times_sha256"), times_attrs))
        for section, digest, attrs in sections:
            group = h5.require_group(section)
            index, configs = _index(contents, [b for b in contents.blocks if b.section == section])
            group.create_dataset("index", data=index)
            put_text(group.attrs, "codecs", _codecs_json(configs))
            for key, value in attrs(contents, digest or "").items():
                if isinstance(value, str):
                    put_text(group.attrs, key, value)
                else:
                    group.attrs[key] = value
        write_metadata(h5, contents)
    size = len(buffer.getbuffer())
    with h5py.File(buffer, "r+") as h5:
        integrity.seal(h5, size)
    return buffer, len(buffer.getbuffer())


def _index(contents: JournalContents, blocks: list[BlockFrame]) -> tuple[np.ndarray, list[str]]:
    """Index rows (segment 0 = the journal file) and the section's codec list, in order of first
    use, as the archive writer numbers them."""
    slots: dict[str, int] = {}
    rows = []
    for b in blocks:
        slot = slots.setdefault(json.dumps(contents.codecs[b.codec], sort_keys=True), len(slots))
        rows.append((b.t_start, b.t_stop, b.ch_start, b.ch_stop, 0, b.offset, b.length, slot, b.crc32))
    return np.array(rows, dtype=INDEX_DTYPE), list(slots)


def _codecs_json(configs: list[str]) -> str:
    return json.dumps([json.loads(c) for c in configs])
