"""Byte-exact EDF/BDF round trip: which signals the archive's channels already hold,
and rebuilding the file from an archive.

While a recording is encoded, :class:`SignalMatcher` compares every block's
integer codes with the digital values in the file. Signals that match are
restored from the archive's channels; the rest (annotation signals, signals MNE
resamples or masks) are stored as bytes in the ``/edf`` group.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..container import edf_source
from ..container.layout import get_text
from ..errors import CorruptArchiveError
from ..io import edf_file
from ..io.edf_native import samples_per_record


class SignalMatcher:
    """Tracks, per EDF signal, whether the codes stored for its MNE channel are its
    digital values, sample for sample."""

    def __init__(self, path, raw, native: dict[int, np.ndarray]):
        self.path = path
        self.layout = edf_file.read_layout(path)
        extras = raw._raw_extras[0]
        self.signal_of_channel = np.asarray(extras["sel"], np.int64)
        self.max_samp = int(extras["max_samp"])
        if (self.layout.n_records * self.max_samp != raw.n_times
                or self.signal_of_channel.size != raw.info["nchan"]
                or (samples_per_record(raw) != self.layout.samples_per_record[self.signal_of_channel]).any()):
            self.signal_of_channel = np.full(raw.info["nchan"], -1)  # MNE saw another layout: keep bytes
        self.ok = np.zeros(self.layout.n_signals, bool)
        valid = self.signal_of_channel >= 0
        self.ok[self.signal_of_channel[valid]] = True
        for ch, codes in native.items():
            s = int(self.signal_of_channel[ch])
            if s >= 0:
                self.ok[s] = np.array_equal(codes, edf_file.signal_values(path, self.layout, s))

    def observe(self, t0: int, t1: int, picks, codes: np.ndarray) -> None:
        """Codes of MNE channels ``picks`` for samples [t0, t1), as they go into the archive."""
        spr = self.max_samp  # signals at another rate hold MNE's resampled view, not their values
        r0, r1 = t0 // spr, -(-t1 // spr)
        records = None
        for row, ch in enumerate(picks):
            s = int(self.signal_of_channel[ch])
            if s < 0 or not self.ok[s]:
                continue
            if int(self.layout.samples_per_record[s]) != spr:
                self.ok[s] = False
                continue
            if records is None:  # the records of this window, read once for every signal
                records = edf_file.read_records(self.path, self.layout, r0, r1)
            values = edf_file.signal_values(self.path, self.layout, s, records=records)
            self.ok[s] = np.array_equal(values[t0 - r0 * spr : t1 - r0 * spr], codes[row])

    def channel_of_signal(self) -> np.ndarray:
        out = np.full(self.layout.n_signals, edf_source.BYTES, np.int64)
        for ch, s in enumerate(self.signal_of_channel):
            if s >= 0 and self.ok[s]:
                out[s] = ch
        return out

    def write(self, h5) -> None:
        sha = json.loads(get_text(h5.attrs, "source"))["sha256"]
        onsets = edf_file.record_onsets(self.path, self.layout)
        edf_source.write(h5, self.path, self.layout, self.channel_of_signal(), sha, onsets)
        edf_source.derive_recipe(h5)


class NullSink:
    """A sink that only lets the SHA-256 be computed."""

    def write(self, data: bytes) -> None:
        pass


def write_file(arc, sink, records_per_chunk: int | None = None, progress=None) -> str:
    """Write the archived EDF/BDF file to ``sink`` (``.write(bytes)``); return its SHA-256."""
    return Rebuild(arc, sink, records_per_chunk, progress, defer_errors=False).finish()


def verify_with_file(arc, progress=None, pool=None) -> tuple[dict, Rebuild]:
    """``arc.verify(progress, pool=pool)`` and the EDF/BDF file rebuilt from the archive, from
    one decode of every block: records are rebuilt (and hashed) as the blocks holding them are
    decoded for the samples' SHA-256, while they are still in the archive's block cache.

    Returns (``arc.verify``'s result, the rebuild): check the result first, then
    ``rebuild.finish()`` gives the rebuilt file's SHA-256, or raises what went wrong while
    rebuilding (:class:`CorruptArchiveError`), in the order two separate passes would.
    """
    rebuild = Rebuild(arc, NullSink())
    with arc.larger_cache(2 * arc.window_groups() + 2):  # a record can straddle two windows
        result = arc.verify(progress=progress, decoded=rebuild.upto, pool=pool)
    return result, rebuild


class Rebuild:
    """The archived EDF/BDF file, written to ``sink`` record by record in order, its SHA-256
    computed on the way.

    :meth:`upto` writes the records whose samples all lie before a sample of the archive;
    :meth:`finish` writes the rest and the tail. With ``defer_errors``, a damaged archive
    found by :meth:`upto` stops the rebuild and is raised by :meth:`finish`.
    """

    def __init__(self, arc, sink, records_per_chunk: int | None = None, progress=None, *,
                 defer_errors: bool = True):
        self.arc, self.sink, self.progress, self.defer_errors = arc, sink, progress, defer_errors
        self.records_per_chunk = records_per_chunk
        self.sha = hashlib.sha256()
        self.next_record = None  # None: the header is not written yet
        self.error: CorruptArchiveError | None = None

    def _put(self, data: bytes) -> None:
        self.sha.update(data)
        self.sink.write(data)

    def _start(self) -> None:
        stored = self.arc.stored_edf
        self.stored, self.layout = stored, stored.layout
        block = int(self.arc.attrs.get("block_samples", 16384))
        self.step = self.records_per_chunk or max(1, block // int(self.layout.samples_per_record.max()))
        cos = np.asarray(stored.channel_of_signal)
        # signals held by channels in the archive's own clock: their records are ready in time order
        self.clocked = [int(self.layout.samples_per_record[s]) for s in np.flatnonzero(cos >= 0)
                        if not self.arc.native[int(cos[s])]]
        self._put(self.layout.header)
        self.next_record = 0

    def upto(self, t: int) -> None:
        """Write every record whose samples (of signals in the archive's clock) lie before sample ``t``."""
        if self.error is not None:
            return
        try:
            if self.next_record is None:
                self._start()
            ready = min((t // spr for spr in self.clocked), default=0)
            self._records(min(ready, self.layout.n_records))
        except CorruptArchiveError as exc:
            if not self.defer_errors:
                raise
            self.error = exc

    def finish(self) -> str:
        """Write the remaining records and the tail; return the file's SHA-256."""
        if self.error is not None:
            raise self.error
        if self.next_record is None:
            self._start()
        self._records(self.layout.n_records)
        self._put(self.stored.tail())
        return self.sha.hexdigest()

    def _records(self, stop: int) -> None:
        arc, layout, stored = self.arc, self.layout, self.stored
        cos = np.asarray(stored.channel_of_signal)
        spr = layout.samples_per_record.astype(np.int64)
        mapped = np.flatnonzero(cos != edf_source.BYTES)
        groups = [mapped[spr[mapped] == n] for n in np.unique(spr[mapped])]  # signals of one rate
        while self.next_record < stop:
            r0 = self.next_record
            r1 = min(stop, r0 + self.step)
            columns = [None] * layout.n_signals
            for sigs in groups:  # their channels' codes, read together
                n = int(spr[sigs[0]])
                values = arc.stored_rows(cos[sigs], r0 * n, r1 * n)
                data = self._signal_bytes(values, cos[sigs])
                for s, row in zip(sigs, data):
                    columns[s] = row.reshape(r1 - r0, -1)
            for s in np.flatnonzero(cos == edf_source.BYTES):
                columns[s] = stored.signal_bytes(int(s), r0, r1)
            self._put(edf_file.assemble_records(layout, columns))
            self.next_record = r1
            if self.progress:
                self.progress(r1 - r0)

    def _signal_bytes(self, values: np.ndarray, chans: np.ndarray) -> np.ndarray:
        """Bytes (rows, samples · width) of each row of codes, as the EDF/BDF file stores them."""
        width = self.layout.width
        try:
            return edf_file.values_to_bytes(values, width).reshape(values.shape[0], -1)
        except ValueError:
            for row, ch in zip(values, chans):  # which channel
                try:
                    edf_file.values_to_bytes(row, width)
                except ValueError as exc:
                    raise CorruptArchiveError(f"{self.arc.path}: channel {ch} cannot be an EDF/BDF signal "
                                              f"({exc})") from None
            raise
