"""Lossless float benchmark: biocompress's float coder against zstd -19 and byte-shuffle + zstd -19.

    python pipelines/bench_float.py [CORPUS_DIR] [--csv F]

Every recording of the corpus whose samples MNE gives as float32 values (FIF,
EEGLAB, BrainVision, ANT, ... : value kind f32) is benchmarked on the same
samples: the float32 values the file stores, time-interleaved little-endian for
zstd (as the integer anchors are), byte planes of that for shuffle + zstd (what
blosc's shuffle filter does). biocompress codes the blocks its archive writer
makes (16384 samples x up to 32 channels) with ``float-lpc-v1``; the size counted
is the codec payloads, not the HDF5 container. The previous float codec
(``float-xor-zlib-v1``) is shown too. Every payload is decoded and compared bit
for bit. Timings are wall-clock, one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from biocompress.bench import write_rows_csv
from biocompress.codecs.lossless import FloatLPCCodec, FloatXorCodec
from biocompress.files.compress import BLOCK_SAMPLES, GROUP_CHANNELS
from biocompress.files.demo import recordings_in
from biocompress.io import scaling
from biocompress.io.source import open_raw


def float_samples(path: Path):
    """(float32 values (n_ch, n), reason skipped or None) of a recording."""
    try:
        raw = open_raw(path)
    except Exception as exc:  # noqa: BLE001 - report and go on
        return None, f"not readable: {exc}"
    x = raw.get_data()
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, x)
    if not (kinds == 1).all():
        return None, "not float32 samples" if (kinds != 1).all() else "only some channels are float32"
    codes = scaling.to_codes(recipe, x, np.arange(x.shape[0]), 1)
    return scaling.codes_to_f32(codes), None


def blockwise(codec, codes: np.ndarray):
    """(payload bytes, encode s, decode s) over the writer's blocks; raises if any block differs."""
    size, t_enc, t_dec = 0, 0.0, 0.0
    for c0 in range(0, codes.shape[0], GROUP_CHANNELS):
        for t0 in range(0, codes.shape[1], BLOCK_SAMPLES):
            block = codes[c0 : c0 + GROUP_CHANNELS, t0 : t0 + BLOCK_SAMPLES]
            t = time.perf_counter()
            payload = codec.encode(block)
            t_enc += time.perf_counter() - t
            t = time.perf_counter()
            back = codec.decode(payload)
            t_dec += time.perf_counter() - t
            if not np.array_equal(back, block):
                raise AssertionError(f"{codec!r} does not round-trip")
            size += len(payload)
    return size, t_enc, t_dec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", nargs="?", type=Path,
                   default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--csv", type=Path, help="write one row per recording here")
    a = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 170)
    try:
        import zstandard
    except ImportError:
        console.print("[red]zstandard is not installed (pip install zstandard); nothing measured[/red]")
        return 2
    if not a.corpus.exists():
        console.print(f"[red]{a.corpus}: not found; nothing measured[/red]")
        return 2
    warm = scaling.f32_to_codes(np.linspace(-1, 1, 600, dtype=np.float32).reshape(2, 300))
    FloatLPCCodec().decode(FloatLPCCodec().encode(warm))  # JIT compilation outside the clock

    table = Table(title="Lossless float32 recordings: compression ratio (float32 bytes / compressed bytes)")
    for col in ("recording", "ch x samples", "zstd -19", "shuffle+zstd -19", "float-xor-zlib-v1",
                "float-lpc-v1", "÷ best baseline", "enc MS/s", "dec MS/s"):
        table.add_column(col, justify="left" if col == "recording" else "right")
    rows, gains = [], []
    for path in recordings_in(a.corpus) if a.corpus.is_dir() else [a.corpus]:
        x, skipped = float_samples(path)
        if x is None:
            continue
        native = np.ascontiguousarray(x.T).astype("<f4").tobytes()
        shuffled = np.frombuffer(native, np.uint8).reshape(-1, 4).T.copy().tobytes()
        zstd = len(zstandard.ZstdCompressor(level=19).compress(native))
        shuf = len(zstandard.ZstdCompressor(level=19).compress(shuffled))
        codes = scaling.f32_to_codes(x)
        xor_size, _, _ = blockwise(FloatXorCodec(4), codes)
        size, t_enc, t_dec = blockwise(FloatLPCCodec(), codes)
        n = len(native)
        gain = min(zstd, shuf) / size
        gains.append(gain)
        row = {"recording": str(path.relative_to(a.corpus)) if a.corpus.is_dir() else path.name,
               "channels": x.shape[0], "samples": x.shape[1], "float32_bytes": n,
               "zstd19": n / zstd, "shuffle_zstd19": n / shuf, "float_xor_zlib": n / xor_size,
               "float_lpc": n / size, "gain_vs_best_baseline": gain,
               "encode_msps": x.size / t_enc / 1e6, "decode_msps": x.size / t_dec / 1e6}
        rows.append(row)
        table.add_row(path.name, f"{x.shape[0]} x {x.shape[1]}", f"{row['zstd19']:.3f}",
                      f"{row['shuffle_zstd19']:.3f}", f"{row['float_xor_zlib']:.3f}", f"[bold]{row['float_lpc']:.3f}[/]",
                      ("" if gain > 1 else "[red]") + f"{gain:.3f}", f"{row['encode_msps']:.2f}",
                      f"{row['decode_msps']:.2f}")
    if not rows:
        console.print(f"no float32 recordings under {a.corpus}")
        return 2
    geo = lambda k: float(np.exp(np.mean(np.log([r[k] for r in rows]))))  # noqa: E731
    table.add_section()
    table.add_row(f"geometric mean ({len(rows)})", "", f"{geo('zstd19'):.3f}", f"{geo('shuffle_zstd19'):.3f}",
                  f"{geo('float_xor_zlib'):.3f}", f"[bold]{geo('float_lpc'):.3f}[/]",
                  f"{geo('gain_vs_best_baseline'):.3f}", "", "")
    console.print(table)
    beaten = sum(g > 1 for g in gains)
    console.print(f"float-lpc-v1 beats both zstd -19 and shuffle + zstd -19 on {beaten} of {len(rows)} float "
                  f"recordings (lowest margin {min(gains):.3f}x).")
    if a.csv:
        write_rows_csv(a.csv, rows)
        console.print(f"CSV written to {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
