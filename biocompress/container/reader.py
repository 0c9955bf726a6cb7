"""Read archives: block index, random access by time window and channels, verification."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import stat
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..codecs import get_codec
from ..codecs.base import SHIPPED_IDS, is_known
from ..system import os_errors
from ..errors import BadInputError, CorruptArchiveError
from ..io import edf_native, metadata, scaling
from ..codecs.pool import decode_parts
from . import integrity, packed
from .integrity import damage_is_corruption
from ..codecs.float_codes import codes_to_f64
from .layout import DATA, FORMAT_NAME, INDEX_DTYPE, MAX_BLOCK_ELEMENTS, PACKED_VERSION, READABLE_VERSIONS, TIMES, segment_path


MAX_JSON_BYTES = 256 << 20
class Archive:
    """An open biocompress archive (read-only).

    Every part a reader uses is checked against the archive's integrity manifest
    (format version 3) when it is first read, and every size the archive declares
    against the file before memory is allocated for it.

    A live recording's journal (not finalized yet, or left by a writer that was killed)
    opens too, as a :class:`~biocompress.container.live.LiveArchive`: everything up to its
    last valid frame.

    >>> with Archive("rec.bc.h5") as arc:               # doctest: +SKIP
    ...     x = arc.read(0, 5000, picks=[0, 3])
    """

    def __new__(cls, path=None, *args, **kwargs):
        if cls is Archive and path is not None:
            from . import journal

            if journal.is_journal(path):  # a live (or crashed) recording: read up to its last valid frame
                from .live import LiveArchive

                return super().__new__(LiveArchive)
        return super().__new__(cls)

    def __init__(self, path, *, cache_blocks: int = 16, stream=None):
        self.path = Path(path)
        self._wanted_stream = stream
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise BadInputError(self.path, "no such archive file" if exc.errno == errno.ENOENT
                                else os_errors.problem(exc) or str(exc)) from None
        if not stat.S_ISREG(st.st_mode):
            raise BadInputError(self.path, "is a folder, not an archive file" if stat.S_ISDIR(st.st_mode)
                                else "is not a regular file, not an archive")
        self.h5 = self._open_hdf5()
        try:
            with damage_is_corruption(str(self.path), "archive structure"):
                self._open()
        except BaseException:
            self.close()
            raise
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_blocks
        self._native_views: OrderedDict[int, np.ndarray] = OrderedDict()
        self.native = self.value_kind == scaling.NATIVE

    def _open_hdf5(self) -> h5py.File:
        """The archive's metadata tree: the file itself, or (formats 5-6) its packed metadata
        unpacked in memory, the file kept for the payload segments."""
        if not _is_hdf5(self.path):
            raise BadInputError(self.path, "not a biocompress archive (not an HDF5 file)")
        try:
            self._outer = h5py.File(self.path, "r")
        except OSError as exc:
            raise CorruptArchiveError(f"{self.path}: damaged HDF5 file ({str(exc).splitlines()[0]})") from exc
        try:
            with damage_is_corruption(str(self.path), "packed metadata"):
                self._check_format(self._outer)
                image = self._unpacked()
        except BaseException:
            self._outer.close()
            raise
        return self._outer if image is None else image

    def _unpacked(self) -> h5py.File | None:
        """Formats 5-6: the metadata tree, once its SHA-256 and declared size hold; None before."""
        outer, where = self._outer, str(self.path)
        sizes = integrity.Sizes(self.path.stat().st_size, where)
        self._outer_version = version = int(sizes.attr(outer, "format_version"))
        if version < PACKED_VERSION and "meta_sha256" not in outer.attrs:
            return None
        if "meta" not in outer:
            raise CorruptArchiveError(f"{where}: packed metadata is missing")
        blob_ds = outer["meta"]
        if not isinstance(blob_ds, h5py.Dataset) or blob_ds.dtype != np.uint8 or blob_ds.ndim != 1:
            raise CorruptArchiveError(f"{where}: packed metadata is malformed")
        sizes.dataset(blob_ds)
        blob = blob_ds[()].tobytes()
        bound = packed.meta_bound(self.path.stat().st_size)
        if version >= packed.SEALED_VERSION:
            raw = packed.open_sealed(blob, where, bound)
        else:
            if hashlib.sha256(blob).hexdigest() != integrity._plain(sizes.attr(outer, "meta_sha256")):
                raise CorruptArchiveError(f"{where}: packed metadata is damaged (checksum mismatch)")
            raw = packed.inflate(blob, int(sizes.attr(outer, "meta_bytes")), where, bound)
        self._image_size = len(raw)
        return h5py.File(packed.unpack(raw, where), "r")

    @property
    def file(self) -> h5py.File:
        """The HDF5 file on disk. Formats 5-6: it holds the payload segments and ``/meta``; the
        metadata tree (``h5``) is unpacked in memory. Before: the same as ``h5``."""
        return self._outer

    def _file_size(self) -> int:
        """The size the archive's declared sizes are checked against."""
        return getattr(self, "_image_size", None) or self.path.stat().st_size

    def _open(self) -> None:
        self.sizes = integrity.Sizes(self._file_size(), str(self.path))
        self.format_version = version = self._check_format()
        # formats 5-6: the packed metadata's SHA-256 covers it all; formats 3-4: a manifest per part
        self.parts = integrity.Manifest.load(self.h5, self.sizes, required=3 <= version < PACKED_VERSION)
        self.root_attrs = self.parts.attrs("/")
        self.base = self._stream_group(self._wanted_stream)  # "" (the root) or "streams/<k>/"
        self.attrs = self.parts.attrs(self._p(DATA))
        self.n_samples = _count(self.attrs, "n_samples", self.path)
        self.n_channels = _count(self.attrs, "n_channels", self.path)
        self.sfreq = float(self.attrs["sfreq"])
        self.first_samp = int(self.attrs.get("first_samp", 0))
        if not (np.isfinite(self.sfreq) and self.sfreq > 0) or self.n_channels < 1:
            raise CorruptArchiveError(f"{self.path}: impossible sampling rate or channel count")
        self.codec_configs = json.loads(self.attrs["codecs"])
        if not isinstance(self.codec_configs, list) or not all(isinstance(c, dict) for c in self.codec_configs):
            raise CorruptArchiveError(f"{self.path}: codec list is malformed")
        per_channel = 16 * self.n_channels + 1024
        ch_attrs = self.parts.attrs(self._p("channels"))
        self.value_kind = self._channel_array("value_kind", per_channel).astype(np.int8)
        self.stored_samples = (self._channel_array("stored_samples", per_channel).astype(np.int64)
                               if "stored_samples" in self.h5[self._p("channels")]
                               else np.full(self.n_channels, self.n_samples, np.int64))
        regular = self.value_kind != scaling.NATIVE
        if (self.stored_samples[regular] != self.n_samples).any() or (self.stored_samples > self.n_samples).any():
            raise CorruptArchiveError(f"{self.path}: channels store other lengths than the archive's "
                                      f"{self.n_samples} samples")
        steps = tuple(json.loads(ch_attrs["recipe_steps"]))
        names = [s.split(":")[1] for s in steps]
        if any(s.split(":")[0] not in ("mul", "add") for s in steps):
            raise CorruptArchiveError(f"{self.path}: unknown scaling step in {steps}")
        derived = self._derived_recipe(ch_attrs)
        params = {n: derived[n] if n in derived else self._channel_array(f"recipe_{n}", per_channel).astype(np.float64)
                  for n in names}
        self.recipe = scaling.Recipe(steps, params)
        self.index = self._read_index()
        unknown = [c.get("id") for c in self.codec_configs if not is_known(c.get("id"))]
        if unknown:
            raise CorruptArchiveError(f"{self.path}: unknown codec {unknown[0]!r}; this biocompress knows "
                                      f"{sorted(SHIPPED_IDS)}")
        self._check_stored_model()
        self.times_index = self._read_times() if self._p(TIMES) in self.h5 else None

    def _derived_recipe(self, ch_attrs) -> dict:
        """The recipe parameters an EDF archive does not store: its header gives them (format 6)."""
        from . import edf_source

        how = ch_attrs.get("recipe_derived")
        if how is None:
            return {}
        how = how.decode("utf-8", "replace") if isinstance(how, bytes) else str(how)
        if how != edf_source.DERIVED or self.base or edf_source.GROUP not in self.h5:
            raise CorruptArchiveError(f"{self.path}: scaling recipe derived from {how!r}, which the archive lacks")
        header = self.parts.dataset(f"{edf_source.GROUP}/header", 256 * (edf_source.MAX_SIGNALS + 1)).tobytes()
        cos = self.parts.dataset(f"{edf_source.GROUP}/channel_of_signal", 8 * edf_source.MAX_SIGNALS)
        derived = edf_source.gains(header, cos, self.n_channels) if cos.ndim == 1 and cos.dtype.kind == "i" else None
        if derived is None:
            raise CorruptArchiveError(f"{self.path}: the EDF header does not give the channels' scaling")
        return derived

    def _p(self, path: str) -> str:
        """``path`` within this archive's stream (the root, or /streams/<k>)."""
        return self.base + path

    def _stream_group(self, wanted) -> str:
        """The group of the stream ``wanted`` names (None: the main stream, at the root)."""
        if wanted is None:
            return ""
        from . import streams

        entry = streams.select(self, wanted)
        if entry.kind != streams.SIGNAL:
            raise BadInputError(self.path, f"stream {entry.index} ({entry.name}, {entry.type}) is a marker stream: "
                                f"biocompress.open(path).stream({entry.index}) gives its markers")
        return entry.group

    def _channel_array(self, name: str, max_bytes: int) -> np.ndarray:
        values = self.parts.dataset(self._p(f"channels/{name}"), max_bytes)
        if values.shape != (self.n_channels,):
            raise CorruptArchiveError(f"{self.path}: /{self._p('channels')}/{name} has {values.shape}, "
                                      f"not one value per channel ({self.n_channels})")
        return values

    def _read_index(self) -> np.ndarray:
        ds = self.h5[self._p("data/index")]
        if ds.ndim != 1 or ds.dtype.names != INDEX_DTYPE.names:
            raise CorruptArchiveError(f"{self.path}: block index has an unexpected layout")
        index = self.parts.dataset(self._p("data/index")).astype(INDEX_DTYPE)
        self._segments = self._payload_sizes(DATA)
        check_index(index, self.n_channels, self.stored_samples, len(self.codec_configs), self._segments,
                    str(self.path))
        return index

    def _read_times(self) -> np.ndarray:
        """The index of the timestamp blocks (``/times``): one channel, tiling the archive's samples."""
        self.times_attrs = attrs = self.parts.attrs(self._p(TIMES))
        if _count(attrs, "n_samples", self.path) != self.n_samples:
            raise CorruptArchiveError(f"{self.path}: /times holds {attrs['n_samples']} timestamps for "
                                      f"{self.n_samples} samples")
        self.times_codec_configs = configs = json.loads(attrs["codecs"])
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise CorruptArchiveError(f"{self.path}: /times codec list is malformed")
        ds = self.h5[self._p(f"{TIMES}/index")]
        if ds.ndim != 1 or ds.dtype.names != INDEX_DTYPE.names:
            raise CorruptArchiveError(f"{self.path}: /times block index has an unexpected layout")
        index = self.parts.dataset(self._p(f"{TIMES}/index")).astype(INDEX_DTYPE)
        self._times_segments = self._payload_sizes(TIMES)
        check_index(index, 1, np.array([self.n_samples]), len(configs), self._times_segments,
                    f"{self.path}: /times")
        try:
            self._times_codecs = [get_codec(c) for c in configs]
        except (CorruptArchiveError, TypeError, ValueError) as exc:
            raise CorruptArchiveError(f"{self.path}: /times: {exc}") from exc
        return index

    def _payload_sizes(self, section: str) -> list[int]:
        sizes = []
        for i in itertools.count():  # ends: each step finds another dataset of the file
            ds = self._segment_dataset(section, i)
            if ds is None:
                break
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype != np.uint8:
                raise CorruptArchiveError(f"{self.path}: payload segment {i} is malformed")
            integrity.Sizes(self.path.stat().st_size, str(self.path)).dataset(ds)
            if ds.file == self.h5:
                self.parts.check(ds.name)
            sizes.append(int(ds.shape[0]))
        return sizes

    def _segment_dataset(self, section: str, i: int):
        """Payload segment ``i`` of ``section``, or None: in the file, or (before format 5) in
        the metadata tree, which was the file."""
        version = getattr(self, "_outer_version", self.format_version)
        path = segment_path(self._p(section), i, version)
        return self._outer.get(path) if path in self._outer else self.h5.get(path)

    @cached_property
    def _codecs(self) -> list:
        """The block codecs, built on the first decode (reading metadata loads no codec module)."""
        return self._make_codecs()

    def _check_stored_model(self) -> None:
        if self._p("lossy") in self.h5 and "model" in self.h5[self._p("lossy")]:  # a model trained by the user, stored here
            from ..codecs.lossy import model_file

            blob = self.parts.dataset(self._p("lossy/model"), model_file.MAX_MODEL_BYTES)
            model_file.load_bytes(blob.tobytes(), where=str(self.path))

    def _make_codecs(self) -> list:
        try:
            return [get_codec(c) for c in self.codec_configs]
        except (CorruptArchiveError, TypeError, ValueError) as exc:
            raise CorruptArchiveError(f"{self.path}: {exc}") from exc

    def _check_format(self, h5: h5py.File | None = None) -> int:
        """The format version the file (or, formats 5-6, its packed metadata) says it is in."""
        h5 = self.h5 if h5 is None else h5
        sizes = getattr(self, "sizes", None) or integrity.Sizes(self.path.stat().st_size, str(self.path))
        a = h5.attrs
        if "format" not in a or integrity._plain(sizes.attr(h5, "format")) != FORMAT_NAME:
            raise BadInputError(self.path, "HDF5 file is not a biocompress archive")
        version = int(sizes.attr(h5, "format_version")) if "format_version" in a else -1
        if version not in READABLE_VERSIONS:
            raise BadInputError(
                self.path, f"archive format version {version} is not supported "
                f"(this biocompress reads {READABLE_VERSIONS}; a newer biocompress may)"
            )
        return version

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for h5 in {id(f): f for f in (getattr(self, "h5", None), getattr(self, "_outer", None)) if f is not None}.values():
            if h5.id.valid:
                h5.close()

    @property
    def mode(self) -> str:
        return self.root_attrs["mode"]

    def _json(self, path: str):
        with damage_is_corruption(str(self.path), path):
            return json.loads(bytes(self.parts.dataset(path, MAX_JSON_BYTES)).decode("utf-8"))

    @cached_property
    def info(self):
        with damage_is_corruption(str(self.path), "/info/json"):
            info = metadata.info_from_dict(self._json(self._p("info/json")))
        if info["nchan"] != self.n_channels:
            raise CorruptArchiveError(f"{self.path}: /info/json describes {info['nchan']} channels, "
                                      f"the archive holds {self.n_channels}")
        return info

    @cached_property
    def annotations(self):
        where = str(self.path)
        with damage_is_corruption(where, "/annotations"):
            attrs = self.parts.attrs(self._p("annotations"))
            onset = self.parts.dataset(self._p("annotations/onset")).astype(np.float64)
            duration = self.parts.dataset(self._p("annotations/duration")).astype(np.float64)
            description = [s.decode("utf-8") for s in self.parts.dataset(self._p("annotations/description"))]
            ch_names = json.loads(attrs["ch_names"])
            if not (onset.shape == duration.shape == (len(description),)) or onset.ndim != 1:
                raise CorruptArchiveError(f"{where}: annotation arrays differ in length")
            if ch_names and len(ch_names) != len(description):
                raise CorruptArchiveError(f"{where}: annotation channel lists differ in length")
            return metadata.annotations_from_dict({
                "onset": onset, "duration": duration, "description": description,
                "ch_names": ch_names, "orig_time": attrs.get("orig_time") or None,
            })

    @cached_property
    def fidelity(self) -> dict | None:
        """Lossy archives: the fidelity figures measured at compression (see biocompress.files.fidelity)."""
        return self._json(self._p("fidelity/json")) if self._p("fidelity") in self.h5 else None

    @cached_property
    def lossy_attrs(self) -> dict:
        """Attributes of ``/lossy`` (lossy and near-lossless archives), or {}."""
        with damage_is_corruption(str(self.path), "/lossy"):
            return self.parts.attrs(self._p("lossy")) if self._p("lossy") in self.h5 else {}

    @cached_property
    def source(self) -> dict:
        with damage_is_corruption(str(self.path), "source description"):
            source = json.loads(self.root_attrs["source"])
        if not isinstance(source, dict):
            raise CorruptArchiveError(f"{self.path}: source description is malformed")
        return source

    @cached_property
    def stored_edf(self):
        """The ``/edf`` group (EDF/BDF sources), checked; None when absent."""
        from . import edf_source

        if self.base or edf_source.GROUP not in self.h5:  # an XDF file's other streams have none
            return None
        with damage_is_corruption(str(self.path), "/edf group"):
            return edf_source.StoredEdf(self)

    @cached_property
    def ch_names(self) -> list[str]:
        with damage_is_corruption(str(self.path), "/channels/names"):
            names = [s.decode("utf-8") for s in self.parts.dataset(self._p("channels/names"),
                                                                   1024 * self.n_channels + 1024)]
        if len(names) != self.n_channels:
            raise CorruptArchiveError(f"{self.path}: {len(names)} channel names for {self.n_channels} channels")
        return names

    # --- the streams of an XDF file (docs/FORMAT.md §5.6) -------------------
    @cached_property
    def streams(self) -> list:
        """Every stream the archive holds (:class:`~.streams.StreamEntry`: number, name, type,
        kind, channels, rate, samples), the main one (the root) first; one entry for archives
        of a single recording."""
        from . import streams

        with damage_is_corruption(str(self.path), "stream list"):
            return streams.entries(self)

    def stream(self, wanted):
        """Another stream of the file (its number, name or type): an :class:`Archive` for a
        numeric stream, a :class:`~.streams.MarkerStream` (timestamps, strings) for markers."""
        from . import streams

        entry = streams.select(self, wanted)
        if entry.kind == streams.MARKERS:
            return streams.markers(self, entry)
        return Archive(self.path, stream=None if entry.main else entry.index)

    @cached_property
    def stream_header(self) -> dict:
        """This stream's header where it came from an XDF file or an LSL stream (name, type,
        source_id, channel_format, nominal_srate, header_xml, footer_xml, ...), else {}."""
        from . import streams

        with damage_is_corruption(str(self.path), "stream header"):
            return streams.header(self)

    def source_values(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """An XDF stream's samples [start, stop) as the file held them: (samples, channels) in
        the stream's channel_format, bit for bit."""
        from . import streams

        return streams.source_values(self, start, stop)

    @property
    def archive_bytes(self) -> int:
        return self.path.stat().st_size

    def check_all(self) -> int:
        """Check every part of the archive against its integrity data; return how many parts
        that covered (formats 5-6: every object of the packed metadata, whose SHA-256 was checked
        on opening; formats 3-4: the manifest's parts; before: 0)."""
        with damage_is_corruption(str(self.path), "archive structure"):
            if self.format_version >= PACKED_VERSION and not self.parts.enabled:
                return len(integrity.objects(self.h5))
            return self.parts.check_all()

    # --- blocks -----------------------------------------------------------
    def block_bytes(self, i: int, section: str = DATA) -> bytes:
        """The bytes of block ``i`` of ``section`` (DATA, or TIMES), CRC checked."""
        row = (self.index if section == DATA else self.times_index)[i]
        segments = self._segments if section == DATA else self._times_segments
        start, n, seg = int(row["offset"]), int(row["length"]), int(row["segment"])
        what = f"block {i}" if section == DATA else f"timestamp block {i}"
        if start + n > segments[seg]:
            raise CorruptArchiveError(f"{self.path}: {what} lies outside the payload")
        with damage_is_corruption(str(self.path), f"payload of {what}"):
            block = self._segment_bytes(section, seg, start, n)
        if zlib.crc32(block) != int(row["crc32"]):
            raise CorruptArchiveError(f"{self.path}: {what} fails its CRC-32 check")
        return block

    def _segment_bytes(self, section: str, seg: int, start: int, n: int) -> bytes:
        return self._segment_dataset(section, seg)[start : start + n].tobytes()

    # --- timestamps -------------------------------------------------------
    @cached_property
    def clock_offsets(self) -> np.ndarray | None:
        """(time, offset) pairs measured while recording (``/times/clock_offsets``), or None."""
        if self.times_index is None or "clock_offsets" not in self.h5[self._p(TIMES)]:
            return None
        with damage_is_corruption(str(self.path), "/times/clock_offsets"):
            values = self.parts.dataset(self._p(f"{TIMES}/clock_offsets"))
        if values.ndim != 2 or values.shape[1] != 2 or values.dtype != np.float64:
            raise CorruptArchiveError(f"{self.path}: /times/clock_offsets is {values.dtype}{values.shape}, "
                                      "not float64 (n, 2)")
        return values

    @cached_property
    def annotation_timestamps(self) -> np.ndarray | None:
        """Each annotation's marker timestamp (NaN for none), in ``annotations`` order, or None."""
        if "timestamp" not in self.h5[self._p("annotations")]:
            return None
        with damage_is_corruption(str(self.path), "/annotations/timestamp"):
            values = self.parts.dataset(self._p("annotations/timestamp")).astype(np.float64)
        if values.shape != (len(self.annotations),):
            raise CorruptArchiveError(f"{self.path}: {values.size} marker timestamps for "
                                      f"{len(self.annotations)} annotations")
        return values

    @property
    def has_timestamps(self) -> bool:
        """Whether the archive holds each sample's timestamp (live streams, XDF files; format 4)."""
        return self.times_index is not None

    def timestamps(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Timestamps (float64 seconds, the stream's clock, e.g. LSL's) of samples [start, stop)."""
        if self.times_index is None:
            raise ValueError(f"{self.path}: the archive holds no per-sample timestamps")
        stop = self.n_samples if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"window [{start}, {stop}) outside 0..{self.n_samples}")
        out = np.empty(stop - start, np.float64)
        filled = 0
        idx = self.times_index
        for i in np.flatnonzero((idx["t_start"] < stop) & (idx["t_stop"] > start)):
            row = idx[i]
            t0, t1 = int(row["t_start"]), int(row["t_stop"])
            payload = self.block_bytes(int(i), TIMES)
            with damage_is_corruption(str(self.path), f"timestamp block {i}"):
                codes = self._times_codecs[int(row["codec"])].decode(payload)
            if codes.shape != (1, t1 - t0):
                raise CorruptArchiveError(f"{self.path}: timestamp block {i} decodes to {codes.shape}, "
                                          f"index says {(1, t1 - t0)}")
            a, b = max(start, t0), min(stop, t1)
            out[a - start : b - start] = codes_to_f64(codes[0, a - t0 : b - t0])
            filled += b - a
        if filled != out.size:
            raise CorruptArchiveError(f"{self.path}: /times index does not cover samples [{start}, {stop})")
        return out

    def decode_block(self, i: int, stop: int | None = None, rows=None) -> np.ndarray:
        """Codes of block ``i``, shape (channels of its group, samples of its window).

        With ``stop`` (samples from the block start) and ``rows`` (channels of the
        group), codecs that can stop early decode only what covers them; the rest of
        the returned array is then meaningless.
        """
        hit = self._cache.get(i)
        if hit is not None and _covers(hit, stop, rows):
            self._cache.move_to_end(i)
            return hit[0]
        return self._remember(i, self._decode_uncached(i, stop, rows), stop, rows)

    def _decode_uncached(self, i: int, stop: int | None = None, rows=None) -> np.ndarray:
        row = self.index[i]
        if self._codecs[int(row["codec"])].stateful:  # decoded with the blocks before it (chains.py)
            return self._chains.decode(i)
        payload = self.block_bytes(i)
        with damage_is_corruption(str(self.path), f"block {i}"):
            codes = self._codecs[int(row["codec"])].decode_prefix(payload, stop, rows)
        self._check_shape(i, codes, stop)
        return codes

    def _check_shape(self, i: int, codes: np.ndarray, stop: int | None) -> None:
        row = self.index[i]
        shape = (int(row["ch_stop"] - row["ch_start"]), int(row["t_stop"] - row["t_start"]))
        need = shape[1] if stop is None else min(stop, shape[1])
        if codes.shape[0] != shape[0] or not need <= codes.shape[1] <= shape[1]:
            raise CorruptArchiveError(f"{self.path}: block {i} decodes to {codes.shape}, index says {shape}")

    def _remember(self, i: int, codes: np.ndarray, stop=None, rows=None) -> np.ndarray:
        self._cache[i] = (codes, stop is None, None if rows is None else frozenset(int(r) for r in rows))
        self._cache.move_to_end(i)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return codes

    def _prefetch(self, jobs: list[tuple[int, int | None, object]]) -> None:
        """Decode the uncached blocks of one request together, their parts (frames)
        spread over worker processes, when they all fit in the cache."""
        missing = [(i, stop, rows) for i, stop, rows in jobs
                   if not (i in self._cache and _covers(self._cache[i], stop, rows))
                   and not self._codecs[int(self.index[i]["codec"])].stateful]
        if not missing or len(jobs) > self._cache_size:
            return
        plans, work = [], []
        for i, stop, rows in missing:
            slot = int(self.index[i]["codec"])
            payload = self.block_bytes(i)
            with damage_is_corruption(str(self.path), f"block {i}"):
                parts, join = self._codecs[slot].split_decode(payload, stop, rows)
            plans.append((len(parts), join))
            work += [(self.codec_configs[slot], part) for part in parts]
        with damage_is_corruption(str(self.path), "a block"):
            results = decode_parts(work, cost=[len(part[0]) for _, part in work])
        for (i, stop, rows), (n_parts, join) in zip(missing, plans):
            with damage_is_corruption(str(self.path), f"block {i}"):
                codes = join(results[:n_parts])
            results = results[n_parts:]
            self._check_shape(i, codes, stop)
            self._remember(i, codes, stop, rows)

    @cached_property
    def _chains(self):
        from .chains import ChainReader

        return ChainReader(self)

    def stored_codes(self, ch: int) -> np.ndarray:
        """Every stored code of channel ``ch``, in its own sample clock."""
        return self.stored_window(ch, 0, int(self.stored_samples[ch]))

    def stored_window(self, ch: int, start: int, stop: int) -> np.ndarray:
        """Stored codes [start, stop) of channel ``ch``, in its own sample clock."""
        if not 0 <= start <= stop <= int(self.stored_samples[ch]):
            raise ValueError(f"window [{start}, {stop}) outside channel {ch}'s 0..{int(self.stored_samples[ch])}")
        idx = self.index
        hit = np.flatnonzero((idx["ch_start"] <= ch) & (idx["ch_stop"] > ch)
                             & (idx["t_start"] < stop) & (idx["t_stop"] > start))
        out = np.empty(stop - start, np.int64)
        filled = 0
        for i in hit:
            row = idx[i]
            t0 = int(row["t_start"])
            a, b = max(start, t0), min(stop, int(row["t_stop"]))
            out[a - start : b - start] = self.decode_block(int(i))[ch - row["ch_start"], a - t0 : b - t0]
            filled += b - a
        if filled != out.size:
            raise CorruptArchiveError(f"{self.path}: block index does not cover channel {ch}")
        return out

    def stored_rows(self, chans, start: int, stop: int) -> np.ndarray:
        """Stored codes [start, stop) of channels ``chans``, each in its own sample clock:
        (len(chans), stop - start), as :meth:`stored_window` gives them one by one."""
        chans = np.asarray(chans, np.int64)
        out = np.empty((chans.size, stop - start), np.int64)
        if not chans.size:
            return out
        if not 0 <= start <= stop <= int(self.stored_samples[chans].min()):
            raise ValueError(f"window [{start}, {stop}) outside channels {chans.tolist()}' stored samples")
        idx = self.index
        hit = np.flatnonzero((idx["ch_start"] <= chans.max()) & (idx["ch_stop"] > chans.min())
                             & (idx["t_start"] < stop) & (idx["t_stop"] > start))
        filled = np.zeros(chans.size, np.int64)
        for i in hit:
            row = idx[i]
            rows = np.flatnonzero((chans >= row["ch_start"]) & (chans < row["ch_stop"]))
            if not rows.size:
                continue
            t0 = int(row["t_start"])
            a, b = max(start, t0), min(stop, int(row["t_stop"]))
            out[rows, a - start : b - start] = self.decode_block(int(i))[chans[rows] - row["ch_start"], a - t0 : b - t0]
            filled[rows] += b - a
        short = np.flatnonzero(filled != stop - start)
        if short.size:
            raise CorruptArchiveError(f"{self.path}: block index does not cover channel {int(chans[short[0]])}")
        return out

    def _native_view(self, ch: int) -> np.ndarray:
        """MNE's resampled float64 view of an int-native channel (whole recording, cached)."""
        if ch not in self._native_views:
            codes = self.stored_codes(ch)
            self._native_views[ch] = edf_native.mne_view(self.recipe, codes, ch, self.n_samples)
            if len(self._native_views) > self._cache_size:
                self._native_views.popitem(last=False)
        self._native_views.move_to_end(ch)
        return self._native_views[ch]

    def _need(self, i: int, chans: np.ndarray, stop: int):
        """(stop, rows) of block ``i`` that a read of ``chans`` up to ``stop`` needs; None = all."""
        row = self.index[i]
        width, n_rows = int(row["t_stop"] - row["t_start"]), int(row["ch_stop"] - row["ch_start"])
        need_stop = min(width, stop - int(row["t_start"]))
        rows = chans - int(row["ch_start"])
        return (need_stop if need_stop < width else None,
                tuple(sorted(set(rows.tolist()))) if rows.size < n_rows else None)

    def read(self, start: int = 0, stop: int | None = None, picks=None) -> np.ndarray:
        """Samples [start, stop) of channels ``picks`` as MNE's float64 values."""
        stop = self.n_samples if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"window [{start}, {stop}) outside 0..{self.n_samples}")
        picks = np.arange(self.n_channels) if picks is None else np.atleast_1d(np.asarray(picks, int))
        if picks.size and (picks.min() < 0 or picks.max() >= self.n_channels):
            raise IndexError(f"picks must be channel indices in 0..{self.n_channels - 1}, got {picks.tolist()}")
        out = np.empty((picks.size, stop - start), np.float64)
        filled = np.zeros(picks.size, np.int64)  # samples written per requested channel
        is_native = self.native[picks]
        for r in np.flatnonzero(is_native):
            out[r] = self._native_view(int(picks[r]))[start:stop]
            filled[r] = stop - start
        idx = self.index
        hit = np.flatnonzero((idx["t_start"] < stop) & (idx["t_stop"] > start))
        wanted = [(int(i), np.flatnonzero((picks >= idx["ch_start"][i]) & (picks < idx["ch_stop"][i]) & ~is_native))
                  for i in hit]
        wanted = [(i, rows) for i, rows in wanted if rows.size]
        jobs = [(i, *self._need(i, picks[rows], stop)) for i, rows in wanted]
        self._prefetch(jobs)
        for (i, rows), job in zip(wanted, jobs):
            row = idx[i]
            codes = self.decode_block(*job)
            a, b = max(start, int(row["t_start"])), min(stop, int(row["t_stop"]))
            chans = picks[rows]
            part = codes[chans - row["ch_start"], a - row["t_start"] : b - row["t_start"]]
            kind = int(self.value_kind[chans[0]])
            out[rows, a - start : b - start] = scaling.from_codes(self.recipe, part, chans, kind)
            filled[rows] += b - a
        if (filled != stop - start).any():
            raise CorruptArchiveError(f"{self.path}: block index does not cover samples [{start}, {stop})")
        return out

    def iter_chunks(self, pool=None):
        """(start, stop, samples of every channel) per time window, in time order.

        ``pool``: a :class:`~biocompress.codecs.pool.BlockPool` whose workers decode whole
        blocks ahead of the window being read, while this process converts and uses the
        window before (rather than the read pool, block by block).
        """
        regular = ~self.native[self.index["ch_start"]]
        if regular.any():
            starts = self.index["t_start"][regular]
            stops = self.index["t_stop"][regular]
            windows = [(int(t0), int(stops[starts == t0].max())) for t0 in np.unique(starts)]
        else:
            step = int(self.attrs.get("block_samples", 16384))
            windows = [(t0, min(self.n_samples, t0 + step)) for t0 in range(0, self.n_samples, step)]
        if pool is None:
            for t0, t1 in windows:
                yield t0, t1, self.read(t0, t1)
            return
        with self.larger_cache(self.window_groups() + 1):  # a window's blocks, decoded ahead
            ahead = self._decoded_ahead(pool, regular)
            for t0, t1 in windows:
                ahead(t0)
                yield t0, t1, self.read(t0, t1)

    def window_groups(self) -> int:
        """How many blocks a time window of the archive spans at most (its channel groups)."""
        return max(1, int((self.index["t_start"] == 0).sum()))

    @contextmanager
    def larger_cache(self, blocks: int):
        """Keep at least ``blocks`` decoded blocks in the cache while inside."""
        size = self._cache_size
        self._cache_size = max(size, blocks)
        try:
            yield
        finally:
            self._cache_size = size
            while len(self._cache) > size:
                self._cache.popitem(last=False)

    def _decoded_ahead(self, pool, regular: np.ndarray):
        """A function ``ahead(t0)`` that puts every block starting at ``t0`` in the cache,
        decoded whole on ``pool`` (in time order, a few blocks ahead). Blocks of stateful
        codecs, or of codecs the workers may not know, are left to :meth:`read`."""
        from ..codecs.pool import workers_know

        idx = self.index
        inline = getattr(pool, "workers", None) == 1  # decodes here: any codec this process knows
        known = [not self._codecs[slot].stateful and (inline or workers_know(config))
                 for slot, config in enumerate(self.codec_configs)]
        usable = regular & np.array([known[int(c)] for c in idx["codec"]], bool)
        order = [int(i) for i in np.lexsort((idx["ch_start"], idx["t_start"])) if usable[i]]
        jobs = ((i, self.codec_configs[int(idx[i]["codec"])], self.block_bytes(i)) for i in order)
        results = pool.decode_stream(jobs)
        pos = 0

        def ahead(t0: int) -> None:
            nonlocal pos
            while pos < len(order) and int(idx[order[pos]]["t_start"]) <= t0:
                with damage_is_corruption(str(self.path), f"block {order[pos]}"):
                    i, codes = next(results)
                self._check_shape(i, codes, None)
                self._remember(i, codes)
                pos += 1

        return ahead

    def to_dask(self, chunk_samples: int | None = None):
        """This archive's samples as a lazy (channels × samples) Dask array of MNE's float64
        values, chunked on the blocks (see :mod:`biocompress.files.lazy`); needs dask."""
        from ..files.lazy import archive_to_dask

        return archive_to_dask(self.path, chunk_samples)

    def check_metadata(self) -> int:
        """Read and check every part that ``read_raw``, ``restore`` and ``info`` use besides the
        blocks; return how many parts the integrity manifest covered (0 before format 3)."""
        n = self.check_all()
        _ = self.info, self.annotations, self.ch_names, self.source, self.fidelity, self.lossy_attrs
        _ = self.annotation_timestamps, self.clock_offsets
        with damage_is_corruption(str(self.path), "channel scaling"):
            self.recipe.forward(np.zeros((self.n_channels, 1)), np.arange(self.n_channels))
        if self.stored_edf is not None:
            self.stored_edf.check(self)
        return n

    def verify(self, progress=None, decoded=None, pool=None) -> dict:
        """Decode every block and compare the samples' SHA-256 with the stored one.

        ``decoded(t)``, if given, is called once the samples before ``t`` are decoded and
        hashed, while their blocks are still cached (e.g. to rebuild the source file from
        the same decoded blocks: :func:`biocompress.files.edf_exact.verify_with_file`).
        ``pool``: a :class:`~biocompress.codecs.pool.BlockPool` to decode the blocks on
        (see :meth:`iter_chunks`).
        """
        sha = hashlib.sha256()
        for t0, t1, x in self.iter_chunks(pool):
            sha.update(sample_buffer(x))
            if decoded:
                decoded(t1)
            if progress:
                progress(t1 - t0)
        expected = self.attrs["samples_sha256"]
        result = {"samples_sha256": sha.hexdigest(), "expected": expected, "ok": sha.hexdigest() == expected}
        if self.has_timestamps:
            result.update(self.verify_timestamps())
            result["ok"] = result["ok"] and result["times_ok"]
        return result

    def verify_timestamps(self) -> dict:
        """Decode every timestamp block and compare their SHA-256 with ``/times`` ``times_sha256``."""
        sha = hashlib.sha256()
        step = 1 << 20
        for t0 in range(0, self.n_samples, step):
            sha.update(times_bytes(self.timestamps(t0, min(self.n_samples, t0 + step))))
        expected = self.times_attrs.get("times_sha256")
        return {"times_sha256": sha.hexdigest(), "times_expected": expected,
                "times_ok": sha.hexdigest() == expected}

    def identity(self) -> tuple:
        """What tells this archive file from any other at its path: (device, inode, size, mtime in
        ns, samples SHA-256) of the file held open (see biocompress.files.read)."""
        try:
            st = os.fstat(self._outer.id.get_vfd_handle())  # the open file itself, whatever its path holds now
        except (AttributeError, TypeError, ValueError, OSError):  # a driver without a file descriptor
            st = os.stat(self.path)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, self.attrs.get("samples_sha256"))


def _is_hdf5(path: Path) -> bool:
    """HDF5's signature at offset 0 (where biocompress writes it)."""
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _count(attrs: dict, key: str, path) -> int:
    value = attrs[key]
    if isinstance(value, (bool, float, str)) or not 0 <= int(value) < 1 << 62:
        raise CorruptArchiveError(f"{path}: {key} = {value!r} is impossible")
    return int(value)


def check_index(index: np.ndarray, n_channels: int, stored: np.ndarray, n_codecs: int, segments: list[int],
                where: str) -> None:
    """Raise unless the block index is one a writer can have made: every row inside the
    archive's channels, codecs and payload, every block within MAX_BLOCK_ELEMENTS, and for
    every channel the blocks holding it tiling [0, stored_samples) exactly once."""
    def bad(problem):
        return CorruptArchiveError(f"{where}: block index {problem}")

    t0, t1 = index["t_start"].astype(np.int64), index["t_stop"].astype(np.int64)
    c0, c1 = index["ch_start"].astype(np.int64), index["ch_stop"].astype(np.int64)
    if ((t0 < 0) | (t1 <= t0) | (c0 < 0) | (c1 <= c0) | (c1 > n_channels)).any():
        raise bad("has a row with an empty or out-of-range window")
    if ((index["codec"] < 0) | (index["codec"] >= n_codecs)).any():
        raise bad("names a codec the archive does not list")
    seg = index["segment"].astype(np.int64)
    if (seg >= len(segments)).any():
        raise bad("names a payload segment the archive does not hold")
    end = index["offset"].astype(np.float64) + index["length"].astype(np.float64)
    if index.size and (end > np.asarray(segments, np.float64)[seg]).any():
        raise bad("points outside the payload")
    if ((c1 - c0).astype(np.float64) * (t1 - t0).astype(np.float64) > MAX_BLOCK_ELEMENTS).any():
        raise bad(f"declares a block larger than {MAX_BLOCK_ELEMENTS} samples")
    if (stored < 0).any():
        raise bad("goes with negative stored sample counts")
    # channels cut at every group edge: within one piece, every channel has the same blocks
    edges = np.unique(np.concatenate([[0, n_channels], c0, c1]))
    for a, b in zip(edges[:-1], edges[1:]):
        rows = np.flatnonzero((c0 <= a) & (c1 >= b))
        want = stored[a:b]
        if (want != want[0]).any():
            raise bad(f"groups channels {a}..{b - 1} of different lengths together")
        order = rows[np.argsort(t0[rows], kind="stable")]
        starts, stops = t0[order], t1[order]
        if want[0] == 0 and order.size == 0:
            continue
        if order.size == 0 or starts[0] != 0 or stops[-1] != want[0] or (starts[1:] != stops[:-1]).any():
            raise bad(f"does not tile channels {a}..{b - 1} over [0, {int(want[0])}) exactly once")


def _covers(entry, stop, rows) -> bool:
    """Whether a cache entry (codes, whole length decoded, rows decoded or None = all) serves a request."""
    codes, complete, have = entry
    if not (complete or (stop is not None and codes.shape[1] >= stop)):
        return False
    return have is None or (rows is not None and set(rows) <= have)


def sample_bytes(x: np.ndarray) -> bytes:
    """Canonical bytes of samples for hashing: float64 little-endian, time-major."""
    return sample_buffer(x).tobytes()


def sample_buffer(x: np.ndarray) -> np.ndarray:
    """:func:`sample_bytes` without the copy into ``bytes``: a C-contiguous array whose buffer
    holds them (``hashlib`` hashes it as it is)."""
    return np.ascontiguousarray(x.T, dtype="<f8")


def times_bytes(t: np.ndarray) -> bytes:
    """Canonical bytes of timestamps for hashing: float64 little-endian, in sample order."""
    return np.ascontiguousarray(t, dtype="<f8").tobytes()
