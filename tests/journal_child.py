"""A live recording in a subprocess, for the journal tests (not a test file).

    python tests/journal_child.py RECORDING JOURNAL [--chunk N] [--pause S] [--sync S]

streams RECORDING (any file MNE reads) into a journal at JOURNAL in real-time-like chunks,
with LSL-like timestamps (:func:`stream_timestamps`), lossless lanes and a timestamp lane,
flushing the encoder and making the journal durable every ``--sync`` seconds; after each
flush it prints ``durable <samples>``. At the end it stops cleanly (END, finalize) and
prints ``done``. The tests kill it with SIGKILL at random moments, or read the journal
while it writes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

BLOCK = 2048
T0 = 81234.5678  # an LSL clock reading (seconds since the machine started)


def stream_timestamps(n: int, sfreq: float, chunk: int) -> np.ndarray:
    """As LSL stamps a stream pushed in chunks: each chunk's first sample from the clock (with
    jitter), the others the previous timestamp plus 1.0 / srate."""
    rng = np.random.default_rng(7)
    out = np.empty(n)
    for s in range(0, n, chunk):
        out[s] = T0 + s / sfreq + rng.normal(0, 2e-4)
        for i in range(s + 1, min(n, s + chunk)):
            out[i] = out[i - 1] + 1.0 / sfreq
    return out


def description(raw, recipe, kinds, block: int = BLOCK):
    from biocompress.container.description import StreamDescription

    return StreamDescription(info=raw.info, recipe=recipe, kinds=kinds, block_samples=block,
                             source={"stream": "test"}, annotations=raw.annotations, clock="lsl",
                             stream={"name": "child", "type": "EEG", "source_id": "journal_child"})


def lanes(raw, recipe, kinds, block: int = BLOCK):
    from biocompress.stream.plans import lossless_lanes, times_lane

    return lossless_lanes(kinds, recipe, block, 32) + [times_lane(block, raw.info["sfreq"])]


def prepare(recording: Path):
    from biocompress.io import scaling
    from biocompress.io.source import open_raw

    raw = open_raw(recording)
    x = raw.get_data()
    recipe = scaling.recipe_for(raw)
    return raw, x, recipe, scaling.detect_kinds(recipe, x)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording", type=Path)
    ap.add_argument("journal", type=Path)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--pause", type=float, default=0.005)
    ap.add_argument("--sync", type=float, default=0.2)
    args = ap.parse_args()

    from biocompress.container.journal import JournalSink
    from biocompress.stream.blocks import Chunk
    from biocompress.stream.encoder import StreamEncoder

    raw, x, recipe, kinds = prepare(args.recording)
    stamps = stream_timestamps(x.shape[1], raw.info["sfreq"], args.chunk)
    encoder = StreamEncoder(lanes(raw, recipe, kinds))
    with JournalSink(args.journal, description(raw, recipe, kinds), sync_interval=args.sync) as sink:
        print("started", flush=True)
        last = time.monotonic()
        for s in range(0, x.shape[1], args.chunk):
            e = min(x.shape[1], s + args.chunk)
            for block in encoder.push(Chunk(s, x[:, s:e], stamps[s:e])):
                sink.add(block)
            if time.monotonic() - last >= args.sync:
                for block in encoder.flush():
                    sink.add(block)
                sink.flush()
                print(f"durable {sink.samples_written}", flush=True)
                last = time.monotonic()
            time.sleep(args.pause)
        for block in encoder.finish():
            sink.add(block)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
