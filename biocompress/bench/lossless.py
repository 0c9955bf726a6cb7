"""Side-by-side lossless benchmark: biocompress against external codecs on a corpus of recordings.

Every codec gets the same integer sample codes (from :func:`biocompress.io.read_codes`), the
ratio is native bytes (n_channels x n_samples x bits/8) / compressed bytes, and every codec's
output is decoded and checked to equal the input exactly.
"""

from __future__ import annotations

import csv
import math
import sys
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from threadpoolctl import threadpool_limits

from biocompress.io import read_codes

from .external import ALL_CODECS, CodecSkipped, Result, RoundTripError, check_equal, make_codecs

BIOCOMPRESS = "biocompress"  # every core: blocks encoded on worker processes
BIOCOMPRESS_1P = "biocompress_1p"  # the same blocks in one process
OURS = (BIOCOMPRESS, BIOCOMPRESS_1P)
ALL_NAMES = (*ALL_CODECS, *OURS)
# Prototype column of the anchors: shown next to biocompress for reference.
ANCHOR_EXTRA = ("ar_proto",)
RECORDING_SUFFIXES = {
    ".edf", ".bdf", ".gdf", ".fif", ".lay", ".vhdr", ".set", ".con", ".sqd", ".cnt", ".mff",
    ".ns1", ".ns2", ".ns3", ".ns4", ".ns5", ".ns6", ".nxe", ".nwb", ".xdf", ".mef", ".mefd",
}
FAIRNESS_RULES = "\n".join((
    "- Same integer samples for everyone: the stored sample codes of each recording (EDF/BDF digital "
    "values, integer codes of other formats); recordings whose samples are not integer codes are skipped.",
    "- Ratio = native bytes / compressed bytes, native bytes = n_channels x n_samples x bits/8 "
    "(bits = native width 16/24/32). Mixed-rate EDF/BDF: every signal at its own rate (no resampling); "
    "each codec compresses each group of equal-rate channels and the sizes and times add up.",
    "- Bytes counted: gzip/bzip2/xz/zstd their whole output stream (time-interleaved little-endian "
    "samples at native width); mtscomp its .cbin (not the .ch JSON, as in the anchors); MEF3 RED the "
    ".tdat files less their 1024-byte headers; flac/wavpack one mono file per channel, file headers "
    "included; biocompress the payload of the blocks its archive writer makes (16384 samples x up "
    "to 32 channels, lpc-v3), not the HDF5 container.",
    "- Threads: every external codec runs single-threaded; command-line tools run one process per "
    "channel, sequentially, on input files already written to tmpfs. biocompress_1p encodes the "
    "blocks in one process; biocompress encodes and decodes them on one worker process per core, "
    "as the archive writer does.",
    "- Timings: wall-clock of the whole encode and of the whole decode (packing/unpacking and process "
    "start-up included), integrity checks outside the clock; biocompress is warmed up once (JIT "
    "compilation excluded).",
    "- Every output is decoded and compared with the input; any difference is reported as FAILED.",
    "- Peak memory: command-line tools = peak RSS of one per-channel process (GNU time, extra untimed "
    "run); biocompress = tracemalloc peak of an extra untimed encode+decode (Python/NumPy allocations "
    "only, numba/Rust internals not seen); in-process external codecs are not measured.",
))

CSV_FIELDS = (
    "file", "path", "n_channels", "n_samples", "bits", "sfreq", "native_bytes", "codec", "status",
    "reason", "compressed_bytes", "ratio", "encode_s", "decode_s", "encode_msps", "decode_msps",
    "peak_mem_bytes", "mem_method",
)


# --------------------------------------------------------------------------- reading


def find_recordings(corpus_dir: Path) -> list[Path]:
    corpus_dir = Path(corpus_dir)
    if corpus_dir.is_file():
        return [corpus_dir]
    return sorted(p for p in corpus_dir.rglob("*") if p.suffix.lower() in RECORDING_SUFFIXES)


# --------------------------------------------------------------------------- biocompress


def _single_thread() -> None:
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _load_biocompress() -> str | None:
    """Import and warm up (JIT-compile) the LosslessCodec; the reason it is unusable, or None."""
    try:
        from biocompress.codecs.lossless import LosslessCodec

        _single_thread()
        warm = np.cumsum(np.random.default_rng(0).integers(-20, 21, (2, 4096)), axis=1)
        codec = LosslessCodec()
        codec.decode(codec.encode(warm))
    except ImportError as e:
        return f"not available yet ({e})"
    except Exception as e:  # a half-written codec must not stop the external benchmark
        return f"failed to import or warm up ({type(e).__name__}: {e})"
    _single_thread()  # again: the import may have loaded numba/torch
    return None


def _blocks(codes: np.ndarray):
    """The archive writer's blocks: BLOCK_SAMPLES samples × up to GROUP_CHANNELS channels."""
    from biocompress.files.compress import BLOCK_SAMPLES, GROUP_CHANNELS

    n_ch, n = codes.shape
    for t0 in range(0, max(n, 1), BLOCK_SAMPLES):
        for c0 in range(0, n_ch, GROUP_CHANNELS):
            yield (c0, t0), codes[c0 : c0 + GROUP_CHANNELS, t0 : t0 + BLOCK_SAMPLES]


def _biocompress_codec(codes: np.ndarray, bits: int, sfreq: float | None, *, pool,
                       measure_memory: bool = True) -> Result:
    """Encode and decode the archive's blocks (lpc-v2) on ``pool``; payload bytes only."""
    from biocompress.codecs.lossless import LosslessCodec

    config = LosslessCodec().get_config()
    t0 = time.perf_counter()
    payloads = list(pool.encode_stream((tag, config, b) for tag, b in _blocks(codes)))
    t1 = time.perf_counter()
    back = np.empty_like(codes)
    for (c0, s0), block in pool.decode_stream((tag, config, p) for tag, p in payloads):
        back[c0 : c0 + block.shape[0], s0 : s0 + block.shape[1]] = block
    t2 = time.perf_counter()
    check_equal(BIOCOMPRESS, codes, back)
    peak = None
    if measure_memory and pool.workers == 1:  # separate pass: tracemalloc slows allocations down
        tracemalloc.start()
        try:
            for _, b in _blocks(codes):
                LosslessCodec().decode(LosslessCodec().encode(b))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    size = sum(len(p) for _, p in payloads)
    return Result(size, t1 - t0, t2 - t1, peak, "tracemalloc peak (Python/NumPy heap)" if peak else "")


def _over_parts(run, parts: list[np.ndarray], bits: int, sfreq, name: str) -> Result:
    """Run a codec on each uniform-rate part of a recording (mixed-rate EDF/BDF) and add up."""
    if len(parts) > 1 and name == "mtscomp":
        raise CodecSkipped("mtscomp takes uniform-rate recordings only")
    results = [run(p, bits, sfreq=sfreq) for p in parts]
    peaks = [r.peak_mem_bytes for r in results if r.peak_mem_bytes is not None]
    return Result(sum(r.compressed_bytes for r in results), sum(r.encode_s for r in results),
                  sum(r.decode_s for r in results), max(peaks) if peaks else None, results[0].mem_method)


# --------------------------------------------------------------------------- anchors


def find_anchors(corpus_dir: Path, anchors_path=None) -> Path | None:
    if anchors_path is not None:
        return Path(anchors_path) if Path(anchors_path).is_file() else None
    corpus_dir = Path(corpus_dir)
    base = corpus_dir if corpus_dir.is_dir() else corpus_dir.parent
    for cand in (base / "../shared/anchors/lossless.tsv", base / "../anchors/lossless.tsv",
                 Path.cwd() / "../shared/anchors/lossless.tsv"):
        if cand.is_file():
            return cand.resolve()
    return None


def load_anchors(path: Path) -> dict[str, dict[str, float]]:
    """file name -> {codec column: ratio}; missing figures ('-') left out."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            ratios = {}
            for k, v in row.items():
                try:
                    ratios[k] = float(v)
                except (TypeError, ValueError):
                    pass
            out[row["file"]] = ratios
    return out


# --------------------------------------------------------------------------- runner


def geomean(values) -> float:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def _row(path: Path, src, native: int, codec: str, **kw) -> dict:
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(file=path.name, path=str(path), n_channels=src.n_channels, n_samples=src.n_samples,
               bits=src.bits, sfreq=src.sfreq, native_bytes=native, codec=codec)
    row.update(kw)
    return row


def _run_one(name, fn, path, src, native) -> dict:
    n = src.n_stored
    try:
        r = fn()
    except CodecSkipped as e:
        return _row(path, src, native, name, status="skipped", reason=str(e))
    except RoundTripError as e:
        return _row(path, src, native, name, status="FAILED", reason=str(e))
    except Exception as e:  # a tool crashing must not stop the whole benchmark
        return _row(path, src, native, name, status="error", reason=f"{type(e).__name__}: {e}")
    return _row(path, src, native, name, status="ok", compressed_bytes=r.compressed_bytes,
                ratio=native / r.compressed_bytes, encode_s=r.encode_s, decode_s=r.decode_s,
                encode_msps=n / r.encode_s / 1e6 if r.encode_s else "",
                decode_msps=n / r.decode_s / 1e6 if r.decode_s else "",
                peak_mem_bytes=r.peak_mem_bytes if r.peak_mem_bytes is not None else "",
                mem_method=r.mem_method)


def _fmt(v, spec=".3f") -> str:
    return "-" if v in ("", None) or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _file_table(path: Path, src, native: int, rows: list[dict]) -> Group:
    t = Table()
    for col in ("codec", "ratio", "bytes", "enc MS/s", "dec MS/s", "peak MB", "note"):
        t.add_column(col, justify="left" if col in ("codec", "note") else "right")
    for r in rows:
        mem = r["peak_mem_bytes"]
        note = r["reason"] if r["status"] != "ok" else ""
        style = "red" if r["status"] in ("FAILED", "error") else None
        t.add_row(r["codec"], _fmt(r["ratio"]), str(r["compressed_bytes"]), _fmt(r["encode_msps"], ".2f"),
                  _fmt(r["decode_msps"], ".2f"), _fmt(mem / 1e6 if mem != "" else "", ".1f"),
                  f"{r['status']}: {note}" if note else "", style=style)
    head = (f"[bold]{path.name}[/bold]  {src.n_channels} ch x {src.n_samples} samples, {src.bits} bit, "
            f"{src.sfreq:g} Hz, {native / 1e6:.2f} MB native")
    return Group(head, t)


def _summary_table(rows: list[dict], names: list[str]) -> Table:
    files = list(dict.fromkeys(r["file"] for r in rows))
    ratio = {(r["file"], r["codec"]): r["ratio"] for r in rows if r["status"] == "ok"}
    t = Table(title="Compression ratio (native / compressed), higher is better", title_justify="left")
    t.add_column("file")
    for n in names:
        t.add_column(n, justify="right")
    for f in files:
        t.add_row(f, *(_fmt(ratio.get((f, n), "")) for n in names))
    t.add_section()
    counts = [sum((f, n) in ratio for f in files) for n in names]
    t.add_row(f"geometric mean ({len(files)} files)",
              *(_fmt(geomean(ratio.get((f, n)) for f in files)) + ("" if c == len(files) else f" (n={c})")
                for n, c in zip(names, counts)), style="bold")
    for label, key_s in (("encode MS/s (all files)", "encode_s"), ("decode MS/s (all files)", "decode_s")):
        cells = []
        for n in names:
            ok = [r for r in rows if r["codec"] == n and r["status"] == "ok" and r[key_s]]
            secs = sum(r[key_s] for r in ok)
            samples = sum(r["n_channels"] * r["n_samples"] for r in ok)
            cells.append(_fmt(samples / secs / 1e6 if secs else "", ".2f"))
        t.add_row(label, *cells)
    return t


def _anchor_tables(rows: list[dict], names: list[str], anchors: dict, console: Console) -> None:
    cols = [n for n in names if any(n in a for a in anchors.values())]
    cols += [c for c in ANCHOR_EXTRA if any(c in a for a in anchors.values())]
    ours = {(r["file"], r["codec"]): r["ratio"] for r in rows if r["status"] == "ok"}
    files = [f for f in dict.fromkeys(r["file"] for r in rows) if f in anchors]
    t = Table(title="Anchor figures (lossless.tsv), same files; ar_proto = the prototype",
              title_justify="left")
    t.add_column("file")
    for c in cols:
        t.add_column(c, justify="right")
    for f in files:
        t.add_row(f, *(_fmt(anchors[f].get(c, "")) for c in cols))
    t.add_section()
    t.add_row(f"anchor geomean ({len(files)} files above)",
              *(_fmt(geomean(anchors[f].get(c) for f in files)) for c in cols), style="bold")
    t.add_row(f"measured geomean ({len(files)} files above)",
              *(_fmt(geomean(ours.get((f, c)) for f in files)) for c in cols), style="bold")
    t.add_row(f"anchor geomean (all {len(anchors)} anchor files)",
              *(_fmt(geomean(a.get(c) for a in anchors.values())) for c in cols))
    console.print(t)
    off = [(f, c, ours[(f, c)], anchors[f][c]) for f in files for c in cols
           if (f, c) in ours and c in anchors[f] and abs(ours[(f, c)] / anchors[f][c] - 1) > 0.02]
    for f, c, mine, ref in off:
        console.print(f"[yellow]{c} on {f}: measured {mine:.3f} vs anchor {ref:.3f}[/yellow]")
    if files and not off:
        console.print("All measured ratios are within 2 % of the anchors.")
    missing = sorted(set(anchors) - set(files))
    if missing:
        listed = f": {', '.join(missing)}" if len(missing) <= 5 else ""
        console.print(f"{len(missing)} anchor file(s) not benchmarked here{listed}")


def _plot(rows: list[dict], names: list[str], plot_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    files = list(dict.fromkeys(r["file"] for r in rows))
    ratio = {(r["file"], r["codec"]): r["ratio"] for r in rows if r["status"] == "ok"}
    groups = files + ["geometric mean"]
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(min(40.0, max(8.0, 2 + 0.06 * len(groups) * len(names))), 5.5))
    x = np.arange(len(groups))
    for i, n in enumerate(names):
        vals = [ratio.get((f, n), np.nan) for f in files] + [geomean(ratio.get((f, n)) for f in files)]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=n)
    ax.set_yscale("log")  # synthetic files reach ratios of 20; EEG sits at 1-4
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_yticks([0.5, 1, 1.5, 2, 3, 4, 6, 10, 20])
    ax.set_xticks(x, groups, rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.axvline(len(files) - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("compression ratio (native / compressed)")
    ax.set_title("Lossless compression ratio per file")
    ax.legend(fontsize=7, ncol=min(5, len(names)), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=120)
    plt.close(fig)


def _write_csv(rows: list[dict], csv_path) -> None:
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def run_benchmark(
    corpus_dir,
    *,
    codecs: Sequence[str] | None = None,
    csv_path=None,
    plot_path=None,
    anchors_path=None,
    progress: bool = True,
    limit: int | None = None,
    console: Console | None = None,
) -> list[dict]:
    """Benchmark every available codec (default: all of :data:`ALL_NAMES`) on every integer
    recording under ``corpus_dir``; print tables, optionally save a CSV and a PNG bar chart.

    Returns one dict per (file, codec) with the fields of :data:`CSV_FIELDS`.
    """
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    names = list(ALL_NAMES if codecs is None else codecs)
    unknown = [n for n in names if n not in ALL_NAMES]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; known: {list(ALL_NAMES)}")

    externals = []
    for c in make_codecs([n for n in names if n not in OURS]):
        ok, why = c.available()
        if ok:
            externals.append(c)
        else:
            console.print(f"[yellow]{c.name} unavailable: {why}[/yellow]")
    ours = [n for n in OURS if n in names]
    if ours and (why := _load_biocompress()):
        ours = []
        console.print(f"[yellow]biocompress codec {why}[/yellow]")
    ran = [c.name for c in externals] + ours
    pools = {}
    if ours:
        from biocompress.codecs.pool import BlockPool, default_workers

        pools = {BIOCOMPRESS: BlockPool(default_workers()), BIOCOMPRESS_1P: BlockPool(1)}
        list(pools[BIOCOMPRESS].encode_stream([(0, {"id": "lpc-v2"}, np.zeros((1, 300), np.int64))] * 4))

    paths = find_recordings(Path(corpus_dir))[:limit]
    rows: list[dict] = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not progress, transient=True)
    try:
        with threadpool_limits(1):  # single-threaded numerics in this process, like the externals
            _run_files(paths, externals, ours, pools, bar, console, rows)
    finally:
        for pool in pools.values():
            pool.close()
    return _report(rows, ran, corpus_dir, anchors_path, csv_path, plot_path, console)


def _run_files(paths, externals, ours, pools, bar, console, rows) -> None:
    with bar:
        task = bar.add_task("files", total=len(paths))
        for path in paths:
            bar.update(task, description=path.name)
            try:
                src = read_codes(path)
            except Exception as e:
                console.print(f"[dim]skip {path}: cannot read codes ({type(e).__name__}: {e})[/dim]")
                bar.advance(task)
                continue
            if not src.integer:
                why = getattr(src, "reason", None) or "samples are not integer codes"
                console.print(f"[dim]skip {path}: {why}[/dim]")
                bar.advance(task)
                continue
            parts = [np.ascontiguousarray(p, dtype=np.int64) for p in src.parts]
            native = src.n_stored * src.bits // 8
            file_rows = []
            for c in externals:
                bar.update(task, description=f"{path.name}: {c.name}")
                run = partial(_over_parts, c.run, parts, src.bits, src.sfreq, c.name)
                file_rows.append(_run_one(c.name, run, path, src, native))
            for name in ours:
                bar.update(task, description=f"{path.name}: {name}")
                fn = partial(_biocompress_codec, pool=pools[name])
                run = partial(_over_parts, fn, parts, src.bits, src.sfreq, name)
                file_rows.append(_run_one(name, run, path, src, native))
            console.print(_file_table(path, src, native, file_rows))
            rows += file_rows
            bar.advance(task)


def _report(rows, ran, corpus_dir, anchors_path, csv_path, plot_path, console) -> list[dict]:
    if not rows:
        console.print("[red]no integer recordings benchmarked[/red]")
        return rows
    console.print(_summary_table(rows, ran))
    anchor_file = find_anchors(Path(corpus_dir), anchors_path)
    if anchor_file is None:
        console.print("Anchor figures: lossless.tsv not found" +
                      (f" at {anchors_path}" if anchors_path else " (give anchors_path)"))
    else:
        console.print(f"Anchor figures from {anchor_file}")
        _anchor_tables(rows, ran, load_anchors(anchor_file), console)
    console.print(Panel(FAIRNESS_RULES, title="Fairness rules", title_align="left"))
    if csv_path:
        _write_csv(rows, csv_path)
        console.print(f"CSV written to {csv_path}")
    if plot_path:
        _plot(rows, ran, plot_path)
        console.print(f"Bar chart written to {plot_path}")
    return rows
