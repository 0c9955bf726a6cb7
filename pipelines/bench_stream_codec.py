"""Live-stream lossless coding: lpc-s1 chains at short flush intervals against what ``compress``
writes for the same codes (its default integer codec, lpc-v4, in 16384-sample blocks), on real
recordings; and lpc-s1's speed on one core. The issue's target: a stream's archive reaches
≥ 0.95× the ratio ``compress`` reaches.

    python pipelines/bench_stream_codec.py [--corpus DIR] [--seconds 60] [--flush 50,100,250,1000]
        [--key-seconds 4] [--markdown] [--speed-only | --no-speed]

Ratios are of payload bytes (16-bit samples count 2 bytes, 24-bit 3): what both codecs write
for the same integer codes, channel groups of 32 as ``compress`` cuts them. The "with index"
column adds the 50-byte index row an HDF5 archive keeps per block (a journal's frame header is
of the same order): short blocks pay it once per flush and channel group, which is why a
finished archive should hold merged chains (``stream_codec.merge_chain``). Each stream starts
cold, as a live acquisition does (its first seconds are coded with predictors fitted on little
data), and has a key block every ``--key-seconds`` (but at most every 2048 samples), as
``stream.plans.live_lossless_lanes`` sets it. Speeds are CPU seconds of this process with BLAS on
one thread; on a shared machine they are provisional (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_limits

from biocompress.codecs.lossless import LPCStreamCodec
from biocompress.files.compress import BLOCK_SAMPLES
from biocompress.io.codes import read_codes
from biocompress.stream import plans
from biocompress.stream.lanes import lossless_codec_for

RECORDINGS = [  # (label, path under the corpus, what it is)
    ("eegmat S01 rest", "eegmat/Subject01_1.edf", "21 ch, 500 Hz, EDF 16-bit"),
    ("eegmat S05 task", "eegmat/Subject05_2.edf", "21 ch, 500 Hz, EDF 16-bit"),
    ("eegmmidb S001R01", "eegmmidb/S001R01.edf", "64 ch, 160 Hz, EDF 16-bit"),
    ("eegmmidb S002R01", "eegmmidb/S002R01.edf", "64 ch, 160 Hz, EDF 16-bit"),
    ("ieeg sEEG", "ieeg/sample_seeg.edf", "98 ch, 1 kHz, EDF 16-bit"),
    ("clinical MB0400FU", "mne-testing-data/NihonKohden/MB0400FU.EDF", "25 ch, 200 Hz, EDF+D"),
    ("clinical chtypes", "mne-testing-data/EDF/chtypes_edf.edf", "42 ch mixed types, 200 Hz, 5 s"),
    ("TMS-EEG eximia", "highrate/test_eximia.nxe", "64 ch, 1450 Hz, 16-bit"),
    ("wearable nedf", "wearable/testdata.nedf", "33 ch, 500 Hz, 24-bit"),
    ("sleep BDF", "mne-testing-data/BDF/multiple_annotation_chans.bdf", "19 ch, 125 Hz, BDF 24-bit"),
]
GROUP = 32
REF_BLOCK = BLOCK_SAMPLES
REF_NAME = f"compress ({lossless_codec_for(0).get_config()['id']} {REF_BLOCK})"
INDEX_ROW_BYTES = 50


def groups(n_ch: int):
    return [(a, min(n_ch, a + GROUP)) for a in range(0, n_ch, GROUP)]


def stream_codec(sfreq: float, key_seconds: float) -> LPCStreamCodec:
    key = max(int(round(key_seconds * sfreq)), plans.KEY_MIN_SAMPLES)
    update = max(int(round(plans.UPDATE_SECONDS * sfreq)), plans.UPDATE_MIN_SAMPLES)
    return LPCStreamCodec(key_interval=key, update_interval=min(update, key))


def ref_bytes(codes: np.ndarray) -> tuple[int, int]:
    """Payload bytes and blocks of what ``compress`` writes for these codes."""
    codec, total, blocks = lossless_codec_for(0), 0, 0
    for a, b in groups(codes.shape[0]):
        for t in range(0, codes.shape[1], REF_BLOCK):
            total += len(codec.encode(codes[a:b, t : t + REF_BLOCK]))
            blocks += 1
    return total, blocks


def s1_run(codes: np.ndarray, sfreq: float, block: int, key_seconds: float):
    """(bytes, blocks, encode CPU s, decode CPU s) of every group's chain in blocks of ``block``."""
    total = blocks = 0
    enc_s = dec_s = 0.0
    for a, b in groups(codes.shape[0]):
        codec = stream_codec(sfreq, key_seconds)
        x = np.ascontiguousarray(codes[a:b])
        stream = codec.encode_stream()
        t0 = time.process_time()
        payloads = [stream.encode(x[:, t : t + block]) for t in range(0, x.shape[1], block)]
        t1 = time.process_time()
        state, parts = None, []
        for p in payloads:
            out, state = codec.decode_with(p, state)
            parts.append(out)
        t2 = time.process_time()
        if not np.array_equal(np.concatenate(parts, axis=1), x):
            raise SystemExit("lpc-s1 round trip failed")
        total += sum(map(len, payloads))
        blocks += len(payloads)
        enc_s, dec_s = enc_s + t1 - t0, dec_s + t2 - t1
    return total, blocks, enc_s, dec_s


def warm_up() -> None:
    x = np.cumsum(np.random.default_rng(0).integers(-9, 10, (3, 3000)), axis=1)
    s1_run(x, 1000.0, 50, 1.0)
    ref_bytes(x)


def ratios(corpus: Path, seconds: float, flushes: list[int], key_seconds: float, markdown: bool) -> None:
    head = ["recording", "what", REF_NAME] + [f"{f} ms" for f in flushes] + \
        [f"{f} ms + index" for f in flushes[:2]]
    rows, rel = [], {f: [] for f in flushes}
    for label, rel_path, what in RECORDINGS:
        path = corpus / rel_path
        if not path.exists():
            print(f"skip {label}: {path} not found", file=sys.stderr)
            continue
        sc = read_codes(path)
        if sc.codes is None:
            print(f"skip {label}: {sc.reason}", file=sys.stderr)
            continue
        codes = sc.codes[:, : int(seconds * sc.sfreq)]
        raw_bytes = codes.size * (sc.bits // 8)
        ref, ref_blocks = ref_bytes(codes)
        ref_ratio = raw_bytes / ref
        cells, extra = [], []
        for f in flushes:
            block = max(1, int(round(f / 1000 * sc.sfreq)))
            size, blocks, _, _ = s1_run(codes, sc.sfreq, block, key_seconds)
            rel[f].append(ref / size)
            cells.append(f"{raw_bytes / size:.3f} ({ref / size:.3f}×)")
            if f in flushes[:2]:
                extra.append(f"{(ref + INDEX_ROW_BYTES * ref_blocks) / (size + INDEX_ROW_BYTES * blocks):.3f}×")
        rows.append([label, f"{what}, {codes.shape[1] / sc.sfreq:.0f} s", f"{ref_ratio:.3f}"] + cells + extra)
        print(" | ".join(rows[-1]), file=sys.stderr)
    rows.append(["geometric mean", "", ""] + [f"({np.exp(np.mean(np.log(rel[f]))):.3f}×)" for f in flushes] +
                [""] * len(flushes[:2]))
    _table(head, rows, markdown)


def speed(corpus: Path, markdown: bool) -> None:
    """64 channels at 1 kHz (the first 64 of the sEEG recording, 20 s), as one lane would see them."""
    sc = read_codes(corpus / "ieeg/sample_seeg.edf")
    codes = sc.codes[:64]
    head = ["flush", "encode Msamples/s", "× real time", "decode Msamples/s", "× real time"]
    rows = []
    for f in (50, 100, 250):
        block = int(f / 1000 * sc.sfreq)
        best = None
        for _ in range(3):
            _, _, enc_s, dec_s = s1_run(codes, sc.sfreq, block, 4.0)
            best = (enc_s, dec_s) if best is None else (min(best[0], enc_s), min(best[1], dec_s))
        rate = 64 * sc.sfreq
        rows.append([f"{f} ms", f"{codes.size / best[0] / 1e6:.2f}", f"{codes.size / best[0] / rate:.0f}×",
                     f"{codes.size / best[1] / 1e6:.2f}", f"{codes.size / best[1] / rate:.0f}×"])
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs", file=sys.stderr)
    _table(head, rows, markdown)


def _table(head, rows, markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for r in [head] + rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    print()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of each recording (from its start)")
    p.add_argument("--flush", default="50,100,250,1000", help="flush intervals in ms")
    p.add_argument("--key-seconds", type=float, default=plans.KEY_SECONDS)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    a = p.parse_args(argv)
    import mne

    mne.set_log_level("ERROR")
    with threadpool_limits(1):
        warm_up()
        if not a.speed_only:
            ratios(a.corpus, a.seconds, [int(f) for f in a.flush.split(",")], a.key_seconds, a.markdown)
        if not a.no_speed:
            speed(a.corpus, a.markdown)


if __name__ == "__main__":
    main()
