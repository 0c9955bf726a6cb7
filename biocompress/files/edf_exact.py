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


class NullSink:
    """A sink that only lets the SHA-256 be computed."""

    def write(self, data: bytes) -> None:
        pass


def write_file(arc, sink, records_per_chunk: int | None = None, progress=None) -> str:
    """Write the archived EDF/BDF file to ``sink`` (``.write(bytes)``); return its SHA-256."""
    stored = arc.stored_edf
    layout = stored.layout
    sha = hashlib.sha256()

    def put(data: bytes) -> None:
        sha.update(data)
        sink.write(data)

    put(layout.header)
    block = int(arc.attrs.get("block_samples", 16384))
    step = records_per_chunk or max(1, block // int(layout.samples_per_record.max()))
    for r0 in range(0, layout.n_records, step):
        r1 = min(layout.n_records, r0 + step)
        columns = []
        for s, ch in enumerate(stored.channel_of_signal):
            spr = int(layout.samples_per_record[s])
            if ch == edf_source.BYTES:
                columns.append(stored.signal_bytes(s, r0, r1))
            else:
                values = arc.stored_window(int(ch), r0 * spr, r1 * spr)
                try:
                    columns.append(edf_file.values_to_bytes(values, layout.width).reshape(r1 - r0, -1))
                except ValueError as exc:
                    raise CorruptArchiveError(f"{arc.path}: channel {ch} cannot be an EDF/BDF signal ({exc})") from None
        put(edf_file.assemble_records(layout, columns))
        if progress:
            progress(r1 - r0)
    put(stored.tail())
    return sha.hexdigest()
