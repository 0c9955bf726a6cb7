"""Streams for the network tests: a data_samples recording with a counter channel, pushed
through the live pipeline into any sink, and the frames a sender sends for it (not a test file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import journal_child  # tests/ (on the path, as the folder of the suite's conftest)
import mne
import numpy as np

from biocompress.container.description import StreamDescription
from biocompress.container.reader import sample_bytes, times_bytes
from biocompress.io import scaling
from biocompress.stream.blocks import Chunk
from biocompress.stream.encoder import StreamEncoder

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "data_samples" / "Subject00_2.edf"  # 21 channels, 500 Hz, 62 s
BLOCK = 1024
COUNTER = "counter"


class Recording:
    """The recording plus a last channel ``counter`` = 0, 1, 2, … (samples), its timestamps,
    recipe, value kinds and stream description."""

    def __init__(self, seconds: float | None = None, timestamps: bool = True):
        raw = mne.io.read_raw_edf(RECORDING, preload=True, verbose="ERROR")
        if seconds is not None:
            raw.crop(0, seconds, include_tmax=False)
        n = raw.n_times
        recipe = scaling.recipe_for(raw)
        counter = mne.io.RawArray(np.arange(n, dtype=np.float64)[np.newaxis],
                                  mne.create_info([COUNTER], raw.info["sfreq"], "misc"), verbose="ERROR")
        raw.add_channels([counter], force_update_info=True)
        self.raw = raw
        self.x = raw.get_data()
        identity = {name: 1.0 if f"mul:{name}" in recipe.steps else 0.0 for name in recipe.params}
        self.recipe = scaling.Recipe(recipe.steps, {name: np.append(v, identity[name]) for name, v in recipe.params.items()})
        self.kinds = scaling.detect_kinds(self.recipe, self.x)
        self.stamps = journal_child.stream_timestamps(n, raw.info["sfreq"], 100) if timestamps else None
        self.description = StreamDescription(
            info=raw.info, recipe=self.recipe, kinds=self.kinds, block_samples=BLOCK, source={"test": "net"},
            annotations=raw.annotations, clock="lsl" if timestamps else None,
            stream={"name": "net-test", "type": "EEG", "source_id": "net-test"})

    @property
    def n(self) -> int:
        return self.x.shape[1]

    def encoder(self) -> StreamEncoder:
        from biocompress.stream.plans import lossless_lanes, times_lane

        lanes = lossless_lanes(self.kinds, self.recipe, BLOCK, 32)
        if self.stamps is not None:
            lanes.append(times_lane(BLOCK, self.raw.info["sfreq"]))
        return StreamEncoder(lanes)

    def digests(self, n: int | None = None) -> dict:
        n = self.n if n is None else n
        return {"samples_sha256": hashlib.sha256(sample_bytes(self.x[:, :n])).hexdigest(),
                "times_sha256": None if self.stamps is None else hashlib.sha256(times_bytes(self.stamps[:n])).hexdigest()}

    def push(self, sink, *, chunk: int = 25, flush_every: int = 2, stop: int | None = None, between=None,
             markers: bool = True) -> int:
        """Push samples [0, stop) in chunks of ``chunk`` samples (50 ms at 500 Hz), flushing the
        encoder every ``flush_every`` chunks, as a live pipeline does; ``between(s)`` runs after
        each chunk (a test's hook). Returns the samples pushed."""
        stop = self.n if stop is None else stop
        encoder = self.encoder()
        for k, s in enumerate(range(0, stop, chunk)):
            e = min(stop, s + chunk)
            stamps = None if self.stamps is None else self.stamps[s:e]
            for block in encoder.push(Chunk(s, self.x[:, s:e], stamps)):
                sink.add(block)
            if k % flush_every == flush_every - 1:
                for block in encoder.flush():
                    sink.add(block)
                sink.flush()
            if markers and s // 5000 != e // 5000:
                sink.add_markers([e / self.raw.info["sfreq"]], [0.0], [f"marker {e}"],
                                 timestamps=None if stamps is None else [stamps[-1]])
                if stamps is not None:
                    sink.add_clock(stamps[-1], -0.001 * k)
            if between is not None:
                between(e)
        for block in encoder.finish():
            sink.add(block)
        return stop


# --- a stream's frames, for hand-driven senders -----------------------------------------
class _Frames:
    def __init__(self):
        self.frames: list[tuple[int, bytes]] = []

    def write(self, kind, payload: bytes) -> None:
        self.frames.append((int(kind), payload))


def stream_frames(rec: Recording) -> list[tuple[int, bytes]]:
    """(type, payload) of every frame a sender sends for ``rec``: HEADER first, END last."""
    from biocompress.container import frames
    from biocompress.container.frame_sink import FrameSink
    from biocompress.container.frames import FrameType

    out = _Frames()
    out.write(FrameType.HEADER, frames.json_payload(rec.description.to_dict()))
    sink = FrameSink(rec.description, out)
    sink.flush = lambda: None
    rec.push(sink)
    sink.end(**rec.digests())
    return out.frames


def frame_bytes(frames_list, start: int, stop: int) -> bytes:
    from biocompress.container import frames

    return b"".join(frames.encode(kind, seq, payload) for seq, (kind, payload) in
                    enumerate(frames_list[:stop]) if seq >= start)
