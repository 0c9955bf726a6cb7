"""Write an archive block by block to a temporary file; publish it only when complete."""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..system.guarded_file import GuardedFile, hdf5_for_writing
from ..system.outputs import temporary
from ..system.signals import check_interrupted
from . import packed
from .layout import DATA, FORMAT_NAME, FORMAT_VERSION, INDEX_DTYPE, SEGMENT_BYTES, TIMES, put_text, segment_path


def json_dataset(group: h5py.Group, name: str, obj, digits: int | None = None) -> None:
    """Store a JSON document as gzip-filtered UTF-8 bytes (any HDF5 reader can inflate it);
    ``digits``: its floats rounded to that many significant digits."""
    if digits is not None:
        obj = round_floats(obj, digits)
    data = np.frombuffer(json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8"),
                         np.uint8)
    ds = group.create_dataset(name, data=data, compression="gzip" if data.size > 512 else None)
    put_text(ds.attrs, "content", "application/json; charset=utf-8")


def round_floats(obj, digits: int):
    """``obj`` (JSON-like) with every float rounded to ``digits`` significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    return obj


HDF5_OPTIONS = {"libver": ("v110", "latest"), "meta_block_size": 512}
_SECTION = re.compile(r"^(data|times|streams/(0|[1-9][0-9]*)/(data|times))$")


def minimize_dataset_headers(h5: h5py.File) -> bool:
    """Create the file's datasets without the ~190 bytes HDF5 reserves in each one's header for
    attributes (HDF5 ≥ 1.10.5; a file's layout and contents are unchanged). Archives of many
    small streams (XDF files) hold dozens of tiny datasets, where this is a tenth of the file.
    h5py does not wrap the call: it is made through ctypes, and skipped where that fails."""
    import ctypes

    import h5py.h5f

    try:
        hint = ctypes.CDLL(h5py.h5f.__file__).H5Fset_dset_no_attrs_hint  # resolved in h5py's HDF5
    except (OSError, AttributeError):
        return False
    hint.argtypes, hint.restype = [ctypes.c_int64, ctypes.c_bool], ctypes.c_int
    with h5py._objects.phil:  # h5py's lock around HDF5 calls
        return hint(h5.id.id, True) >= 0


def write_root(h5: h5py.File, mode: str) -> None:
    """The root attributes that say what the file is (docs/FORMAT.md §3)."""
    put_text(h5.attrs, "format", FORMAT_NAME)
    h5.attrs["format_version"] = FORMAT_VERSION
    put_text(h5.attrs, "created_by", f"biocompress {__version__}")
    put_text(h5.attrs, "mode", mode)


class _Section:
    """One group of coded blocks (``/data``, or ``/times`` for timestamps): its index rows and
    codec list (in the metadata, ``group``), and its payload segments, written to the file
    (``payload``) as contiguous datasets of ~SEGMENT_BYTES."""

    def __init__(self, group: h5py.Group, out: h5py.File, name: str):
        self.group = group
        self.out, self.name = out, name
        self.index: list[tuple] = []
        self.codecs: list[str] = []
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._segment = 0

    def codec_slot(self, config: dict) -> int:
        key = json.dumps(config, sort_keys=True)
        if key not in self.codecs:
            self.codecs.append(key)
        return self.codecs.index(key)

    def add(self, t_start, t_stop, ch_start, ch_stop, codec_config: dict, block: bytes) -> None:
        self.index.append(
            (t_start, t_stop, ch_start, ch_stop, self._segment, self._pending_bytes, len(block),
             self.codec_slot(codec_config), zlib.crc32(block))
        )
        self._pending.append(block)
        self._pending_bytes += len(block)
        if self._pending_bytes >= SEGMENT_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write buffered blocks as one contiguous dataset (no chunk padding on disk)."""
        if not self._pending:
            return
        data = np.frombuffer(b"".join(self._pending), np.uint8)
        self.out.create_dataset(segment_path(self.name, self._segment), data=data, track_times=False)
        self._segment += 1
        self._pending, self._pending_bytes = [], 0

    def finish(self, attrs: dict) -> None:
        """Write the block index, the codec list and the section's attributes."""
        self.flush()
        self.group.create_dataset("index", data=np.array(self.index, dtype=INDEX_DTYPE))
        put_text(self.group.attrs, "codecs", json.dumps([json.loads(c) for c in self.codecs]))
        for key, value in attrs.items():
            if isinstance(value, str):
                put_text(self.group.attrs, key, value)
            else:
                self.group.attrs[key] = value


class ArchiveWriter:
    """Creates ``<dst>`` through a temporary file in the same folder.

    Payload segments go to the file as the blocks come; everything else (``h5``: the
    archive's groups, datasets and attributes) is built in memory and packed into ``/meta``
    when the archive is finished (formats 5-6, :mod:`.packed`). Use as a context manager: on an
    exception the temporary file is removed and ``dst`` is untouched; :meth:`publish` renames
    it into place.
    """

    def __init__(self, dst, *, mode: str = "lossless"):
        self.dst = Path(dst)
        self.tmp = temporary(self.dst)
        self._file = GuardedFile(self.tmp, "w")  # a failed write must not reach HDF5 (it cannot recover)
        self._out = h5py.File(self._file, "w", **HDF5_OPTIONS)
        minimize_dataset_headers(self._out)
        self.h5 = h5py.File(io.BytesIO(), "w", libver=HDF5_OPTIONS["libver"])  # the metadata, in memory
        write_root(self.h5, mode)
        self._sections = {DATA: self._new_section(DATA)}
        self._image: bytes | None = None
        self._published = False

    def _new_section(self, name: str) -> _Section:
        return _Section(self.h5.require_group(name), self._out, name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._published:
            self.discard()
        return False

    def add(self, block) -> None:
        """Append a coded :class:`~biocompress.stream.blocks.Block` (samples, or timestamps)."""
        self.add_block(block.t_start, block.t_stop, block.ch_start, block.ch_stop, block.config, block.payload,
                       section=block.section)

    def add_block(self, t_start, t_stop, ch_start, ch_stop, codec_config: dict, block: bytes, *,
                  section: str = DATA) -> None:
        """``section``: DATA or TIMES, or those of another stream of the file (``streams/<k>/data``,
        ``streams/<k>/times``, docs/FORMAT.md §5.6)."""
        self.section(section).add(t_start, t_stop, ch_start, ch_stop, codec_config, block)

    def section(self, name: str) -> _Section:
        """The section ``name``, created (empty) on first use."""
        if name not in self._sections:
            if not _SECTION.match(name):
                raise ValueError(f"unknown archive section {name!r}")
            self._sections[name] = self._new_section(name)
        return self._sections[name]

    @property
    def has_times(self) -> bool:
        return TIMES in self._sections

    def finish(self, data_attrs: dict, times_attrs: dict | None = None, others: dict | None = None) -> None:
        """Write the block indexes and the stream attributes (``times_attrs``: those of
        ``/times``, needed when timestamp blocks were added; ``others``: the attributes of every
        other section, by name, e.g. ``{"streams/3/data": {...}}``), pack the metadata into the
        file and close it: from here on ``tmp`` reads as an archive."""
        if self.has_times and times_attrs is None:
            raise ValueError("timestamp blocks were added: finish() needs the /times attributes")
        if times_attrs is not None and not self.has_times:  # a stream with timestamps but no samples yet
            self._sections[TIMES] = self._new_section(TIMES)
        others = dict(others or {})
        for name in others:
            self.section(name)  # an empty stream's sections too
        missing = set(self._sections) - {DATA, TIMES} - set(others)
        if missing:
            raise ValueError(f"blocks were added to {sorted(missing)}: finish() needs their attributes")
        self._sections[DATA].finish(data_attrs)
        if self.has_times:
            self._sections[TIMES].finish(times_attrs)
        for name, attrs in others.items():
            self._sections[name].finish(attrs)
        self._image = self._close_image()
        write_meta(self._out, self._image)
        self._out.close()
        self._file.close()  # raises a write that failed

    def _close_image(self) -> bytes:
        """The metadata tree, serialized (before compression); the in-memory file is closed."""
        self.h5.flush()
        raw = packed.serialize(self.h5)
        self.h5.close()
        return raw

    @contextmanager
    def amend(self):
        """The finished (unpublished) archive's metadata opened for changes, packed again
        afterwards (the file is written anew: its payload segments copied, no hole left)."""
        h5 = h5py.File(packed.unpack(self._image, str(self.tmp)), "r+")
        try:
            yield h5
            h5.flush()
            self._image = packed.serialize(h5)
        finally:
            h5.close()
        self._rewrite()

    def _rewrite(self) -> None:
        fresh = temporary(self.dst)
        try:
            with hdf5_for_writing(fresh, "w", **HDF5_OPTIONS) as out, h5py.File(self.tmp, "r") as old:
                minimize_dataset_headers(out)
                old.visititems(lambda name, obj: _copy_segment(out, name, obj))
                write_meta(out, self._image)
            os.replace(fresh, self.tmp)
        finally:
            fresh.unlink(missing_ok=True)

    def publish(self, *, overwrite: bool = False) -> Path:
        check_interrupted()  # the point of no return: an interrupted run publishes nothing
        if self.h5.id.valid:
            self.h5.close()
        self._file.close()
        if self.dst.exists() and not overwrite:
            self.discard()
            raise FileExistsError(f"{self.dst}: exists (use --force to overwrite)")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private; give it a normal file's mode
        os.replace(self.tmp, self.dst)
        self._published = True
        return self.dst

    def discard(self) -> None:
        try:
            for h5 in (self.h5, self._out):
                if h5.id.valid:
                    h5.close()
        finally:
            self._file.close(check=False)
            self.tmp.unlink(missing_ok=True)


def _copy_segment(out: h5py.File, name: str, obj) -> None:
    if isinstance(obj, h5py.Dataset) and name != "meta":
        out.create_dataset(name, data=obj[()], track_times=False)


def write_meta(out: h5py.File, raw: bytes) -> None:
    """The metadata tree (``raw``: serialized), packed, and what a reader needs to find and
    check it (docs/FORMAT.md §2.1)."""
    put_text(out.attrs, "format", FORMAT_NAME)
    out.attrs["format_version"] = FORMAT_VERSION
    data = np.frombuffer(packed.seal(raw), np.uint8)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if data.size <= COMPACT_LIMIT:  # small: inside its header, no separate allocation
        dcpl.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple(data.shape)
    ds = h5py.h5d.create(out.id, b"meta", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, data)


COMPACT_LIMIT = 60000  # HDF5 keeps a compact dataset in its object header (at most 64 KiB)


def write_description(h5: h5py.Group, *, info, ch_types, recipe, kinds, stored, annotations,
                      source: dict | None) -> None:
    """What an archive says about its recording besides the blocks: ``/info``, ``/channels``
    (names, value kinds, stored lengths, scaling recipe), ``/annotations`` and the root
    ``source`` attribute (docs/FORMAT.md §3, §5). ``h5`` may be another stream's group
    (``/streams/<k>``, §5.6), which has no ``source`` of its own (``source=None``)."""
    from ..io import metadata, scaling

    g = h5.create_group("info")
    json_dataset(g, "json", metadata.info_to_dict(info, list(ch_types)))
    ch = h5.create_group("channels")
    ch.create_dataset("names", data=fixed_utf8(info["ch_names"]))
    ch.create_dataset("value_kind", data=np.asarray(kinds, np.int8))
    ch.create_dataset("stored_samples", data=np.asarray(stored, np.int64))
    put_text(ch.attrs, "value_kinds", json.dumps(scaling.VALUE_KINDS))
    put_text(ch.attrs, "recipe_steps", json.dumps(list(recipe.steps)))
    for name, values in recipe.params.items():
        ch.create_dataset(f"recipe_{name}", data=np.asarray(values, np.float64))
    ann = metadata.annotations_to_dict(annotations)
    g = h5.create_group("annotations")
    g.create_dataset("onset", data=ann["onset"])
    g.create_dataset("duration", data=ann["duration"])
    g.create_dataset("description", data=fixed_utf8(ann["description"]))
    put_text(g.attrs, "ch_names", json.dumps(ann["ch_names"]))
    put_text(g.attrs, "orig_time", ann["orig_time"] or "")
    if source is not None:
        put_text(h5.attrs, "source", json.dumps(source, separators=(",", ":")))


def fixed_utf8(texts) -> np.ndarray:
    """Fixed-length UTF-8 byte strings (no global heap; NUL-padded, so no trailing NULs kept)."""
    encoded = [t.encode("utf-8") for t in texts]
    return np.array(encoded, dtype=f"S{max([len(e) for e in encoded] + [1])}")
