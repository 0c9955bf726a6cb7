"""Read archives: block index, random access by time window and channels, verification."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..codecs import get_codec
from ..errors import BadInputError, CorruptArchiveError
from ..io import edf_native, metadata, scaling
from ..parallel import decode_parts
from .layout import FORMAT_NAME, INDEX_DTYPE, READABLE_VERSIONS, SEGMENT_NAME, get_text


def read_json(ds: h5py.Dataset):
    return json.loads(bytes(ds[()]).decode("utf-8"))


class Archive:
    """An open biocompress archive (read-only).

    >>> with Archive("rec.bc.h5") as arc:               # doctest: +SKIP
    ...     x = arc.read(0, 5000, picks=[0, 3])
    """

    def __init__(self, path, *, cache_blocks: int = 16):
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(self.path, "no such archive file")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise BadInputError(self.path, f"not an HDF5 file ({exc})") from exc
        try:
            self._check_format()
            data = self.h5["data"]
            self.index = data["index"][()].astype(INDEX_DTYPE)
            self.codec_configs = json.loads(get_text(data.attrs, "codecs"))
            self.attrs = {k: get_text(data.attrs, k) for k in data.attrs}
            self.n_samples = int(data.attrs["n_samples"])
            self.n_channels = int(data.attrs["n_channels"])
            self.sfreq = float(data.attrs["sfreq"])
            self.first_samp = int(data.attrs.get("first_samp", 0))
            ch = self.h5["channels"]
            self.value_kind = ch["value_kind"][()].astype(np.int8)
            self.stored_samples = (ch["stored_samples"][()].astype(np.int64) if "stored_samples" in ch
                                   else np.full(self.n_channels, self.n_samples, np.int64))
            steps = tuple(json.loads(get_text(ch.attrs, "recipe_steps")))
            params = {s.split(":")[1]: ch[f"recipe_{s.split(':')[1]}"][()] for s in steps}
            self.recipe = scaling.Recipe(steps, params)
        except KeyError as exc:
            self.h5.close()
            raise CorruptArchiveError(f"{self.path}: missing part of the archive ({exc})") from exc
        if "lossy" in self.h5 and "model" in self.h5["lossy"]:  # a model trained by the user, stored here
            from ..codecs.lossy import model_file

            model_file.load_bytes(self.h5["lossy/model"][()].tobytes())
        try:
            self._codecs = [get_codec(c) for c in self.codec_configs]
        except (CorruptArchiveError, TypeError, ValueError) as exc:
            self.h5.close()
            raise CorruptArchiveError(f"{self.path}: {exc}") from exc
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_blocks
        self._native_views: OrderedDict[int, np.ndarray] = OrderedDict()
        self.native = self.value_kind == scaling.NATIVE

    def _check_format(self):
        a = self.h5.attrs
        if get_text(a, "format") != FORMAT_NAME:
            self.h5.close()
            raise BadInputError(self.path, "HDF5 file is not a biocompress archive")
        version = int(a.get("format_version", -1))
        if version not in READABLE_VERSIONS:
            self.h5.close()
            raise BadInputError(
                self.path, f"archive format version {version} is not supported "
                f"(this biocompress reads {READABLE_VERSIONS})"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.h5.id.valid:
            self.h5.close()

    @property
    def mode(self) -> str:
        return get_text(self.h5.attrs, "mode")

    @cached_property
    def info(self):
        return metadata.info_from_dict(read_json(self.h5["info/json"]))

    @cached_property
    def annotations(self):
        g = self.h5["annotations"]
        return metadata.annotations_from_dict(
            {
                "onset": g["onset"][()],
                "duration": g["duration"][()],
                "description": [s.decode("utf-8") for s in g["description"][()]],
                "ch_names": json.loads(get_text(g.attrs, "ch_names")),
                "orig_time": get_text(g.attrs, "orig_time") or None,
            }
        )

    @cached_property
    def fidelity(self) -> dict | None:
        """Lossy archives: the fidelity figures measured at compression (see biocompress.fidelity)."""
        return read_json(self.h5["fidelity/json"]) if "fidelity" in self.h5 else None

    @cached_property
    def source(self) -> dict:
        return json.loads(get_text(self.h5.attrs, "source"))

    @property
    def ch_names(self) -> list[str]:
        return [s.decode("utf-8") for s in self.h5["channels/names"][()]]

    @property
    def archive_bytes(self) -> int:
        return self.path.stat().st_size

    # --- blocks -----------------------------------------------------------
    def block_bytes(self, i: int) -> bytes:
        row = self.index[i]
        start, n = int(row["offset"]), int(row["length"])
        segment = self.h5["data/payload"].get(SEGMENT_NAME.format(int(row["segment"])))
        if segment is None or start + n > segment.shape[0]:
            raise CorruptArchiveError(f"{self.path}: block {i} lies outside the payload")
        block = segment[start : start + n].tobytes()
        if zlib.crc32(block) != int(row["crc32"]):
            raise CorruptArchiveError(f"{self.path}: block {i} fails its CRC-32 check")
        return block

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
        codes = self._codecs[int(row["codec"])].decode_prefix(self.block_bytes(i), stop, rows)
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
                   if not (i in self._cache and _covers(self._cache[i], stop, rows))]
        if not missing or len(jobs) > self._cache_size:
            return
        plans, work = [], []
        for i, stop, rows in missing:
            slot = int(self.index[i]["codec"])
            parts, join = self._codecs[slot].split_decode(self.block_bytes(i), stop, rows)
            plans.append((len(parts), join))
            work += [(self.codec_configs[slot], part) for part in parts]
        results = decode_parts(work, cost=[len(part[0]) for _, part in work])
        for (i, stop, rows), (n_parts, join) in zip(missing, plans):
            codes = join(results[:n_parts])
            results = results[n_parts:]
            self._check_shape(i, codes, stop)
            self._remember(i, codes, stop, rows)

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

    def iter_chunks(self):
        """(start, stop, samples of every channel) per time window, in time order."""
        regular = ~self.native[self.index["ch_start"]]
        if regular.any():
            starts = self.index["t_start"][regular]
            stops = self.index["t_stop"][regular]
            windows = [(int(t0), int(stops[starts == t0].max())) for t0 in np.unique(starts)]
        else:
            step = int(self.attrs.get("block_samples", 16384))
            windows = [(t0, min(self.n_samples, t0 + step)) for t0 in range(0, self.n_samples, step)]
        for t0, t1 in windows:
            yield t0, t1, self.read(t0, t1)

    def verify(self, progress=None) -> dict:
        """Decode every block and compare the samples' SHA-256 with the stored one."""
        sha = hashlib.sha256()
        for t0, t1, x in self.iter_chunks():
            sha.update(sample_bytes(x))
            if progress:
                progress(t1 - t0)
        expected = self.attrs["samples_sha256"]
        return {"samples_sha256": sha.hexdigest(), "expected": expected, "ok": sha.hexdigest() == expected}


def _covers(entry, stop, rows) -> bool:
    """Whether a cache entry (codes, whole length decoded, rows decoded or None = all) serves a request."""
    codes, complete, have = entry
    if not (complete or (stop is not None and codes.shape[1] >= stop)):
        return False
    return have is None or (rows is not None and set(rows) <= have)


def sample_bytes(x: np.ndarray) -> bytes:
    """Canonical bytes of samples for hashing: float64 little-endian, time-major."""
    return np.ascontiguousarray(x.T, dtype="<f8").tobytes()
