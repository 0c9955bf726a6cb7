"""Archive-level lossless benchmark: what a user gets from ``biocompress compress``.

    python pipelines/bench_archive.py [CORPUS] --codec-csv codec.csv [--level default] [--limit N]
        [--no-cli] [--markdown FILE]

``codec.csv`` is written by ``pipelines/bench_codec.py --csv`` in the same session: its FLAC -8
and WavPack -hhx6 ratios (one mono stream per channel of the same integer codes, file headers
counted) are the references. For every integer recording of the corpus this compresses the
file with ``biocompress.compress`` (the archive includes everything: HDF5 structure, the
packed metadata, the EDF restore group) and reports

- the archive-level ratio (native sample bytes ÷ archive file bytes) and its ratio to
  best(FLAC, WavPack); the archive's overhead (file bytes − payload bytes);
- ``xz -9e`` of the whole source file(s) (Python's lzma, preset 9 | EXTREME): no archive may be
  larger than twice that;

grouped as bench_codec groups them (real recordings, tiny ones, synthetic generators: the
corpus README says which are synthetic). Then, unless ``--no-cli``, whole-command timings:
``biocompress info`` wall time (median of 5) on the largest archive, and the whole CLI
``compress`` of a 21-channel EDF of real EEG (eegmat, ≈ 25 M samples) against
``flac -8 --verify`` on its codes, one mono stream per channel, in one ``flac`` run.
Run it on an otherwise idle machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import csv
import lzma
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np
from bench_access import real_channels, write_edf
from bench_codec import group_of
from rich.console import Console
from rich.table import Table

from biocompress.bench.lossless import find_recordings, geomean
from biocompress.io import read_codes

RUNS = 3  # whole-command timings: the median of this many runs
TARGETS = {"real": 1.15, "eegmat": 1.12, "floor": 1.0, "xz": 2.0, "info_s": 0.5, "cli_vs_flac": 4.0}
CLI_SECONDS = 2400  # 21 ch × 500 Hz × 2400 s = 25.2 M samples
CLI_CHANNELS = 21


def source_files(path: Path, source: dict) -> list[Path]:
    """The files the archive says it was made from (they sit beside the main one)."""
    names = [f["name"] for f in source.get("files") or []] or [path.name]
    return [path.parent / n for n in names if (path.parent / n).is_file()]


def xz_bytes(paths: list[Path]) -> int:
    return sum(len(lzma.compress(p.read_bytes(), preset=9 | lzma.PRESET_EXTREME)) for p in paths)


def reference_ratios(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, newline="") as f:
        return {row["recording"]: row for row in csv.DictReader(f)}


def measure(corpus: Path, refs: dict, level: str, limit: int | None, console: Console) -> list[dict]:
    import biocompress
    from biocompress.container.reader import Archive

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_archive_") as tmp:
        for path in find_recordings(corpus)[:limit]:
            rel = str(path.relative_to(corpus)) if corpus.is_dir() else path.name
            ref = refs.get(rel)
            if ref is None:
                continue
            try:
                src = read_codes(path)
            except Exception as exc:  # noqa: BLE001 - report and go on
                console.print(f"[dim]skip {rel}: {exc}[/dim]")
                continue
            if not src.integer:
                continue
            out = Path(tmp) / "a.bc.h5"
            out.unlink(missing_ok=True)
            try:
                biocompress.compress(path, out, level=level)
            except Exception as exc:  # noqa: BLE001 - a recording compress refuses is reported
                console.print(f"[red]{rel}: compress failed: {exc}[/red]")
                continue
            with Archive(out) as arc:
                payload = int(arc.index["length"].sum())
                if arc.has_timestamps:
                    payload += int(arc.times_index["length"].sum())
                source = arc.source
            size = out.stat().st_size
            native = src.n_stored * src.bits // 8
            best = max(float(ref["flac8"]), float(ref["wavpack_hhx6"]))
            xz = xz_bytes(source_files(path, source))
            row = {"recording": rel, "group": group_of(path, src.n_stored), "channels": src.n_channels,
                   "samples": src.n_stored, "native": native, "archive": size, "payload": payload,
                   "overhead": size - payload, "ratio": native / size, "payload_ratio": native / payload,
                   "best": best, "vs_best": native / size / best, "xz": xz, "vs_xz": size / xz}
            rows.append(row)
            console.print(f"{rel}: archive {row['ratio']:.3f} ({row['vs_best']:.3f}× best), overhead "
                          f"{row['overhead']:,} B, {row['vs_xz']:.3f}× xz -9e")
    return rows


def ratio_tables(rows: list[dict], console: Console) -> list[Table]:
    per_file = Table(title="Archive-level ratio (native sample bytes ÷ archive file bytes) per recording")
    cols = ["recording", "group", "ch", "archive B", "overhead B", "overhead %", "archive ratio", "payload ratio",
            "best(FLAC,WavPack)", "÷ best", "÷ xz -9e file"]
    for c in cols:
        per_file.add_column(c, justify="left" if c in ("recording", "group") else "right")
    for group in ("real", "tiny", "synthetic"):
        for r in (r for r in rows if r["group"] == group):
            flag = "[red]" if r["vs_best"] < TARGETS["floor"] else ""
            xflag = "[red]" if r["vs_xz"] > TARGETS["xz"] else ""
            per_file.add_row(r["recording"], group, str(r["channels"]), f"{r['archive']:,}", f"{r['overhead']:,}",
                             f"{100 * r['overhead'] / r['archive']:.2f}", f"{r['ratio']:.3f}",
                             f"{r['payload_ratio']:.3f}", f"{r['best']:.3f}", f"{flag}{r['vs_best']:.3f}",
                             f"{xflag}{r['vs_xz']:.3f}")
        per_file.add_section()

    summary = Table(title="Archive-level ÷ best(FLAC -8, WavPack -hhx6): geometric mean (lowest) against the targets")
    for c in ("recordings", "n", "geomean ÷ best", "lowest ÷ best", "target", "largest ÷ xz -9e (≤ 2)",
              "files > 1 MB: largest overhead %"):
        summary.add_column(c, justify="left" if c == "recordings" else "right")
    subsets = [
        ("real (all)", [r for r in rows if r["group"] == "real"], f"≥ {TARGETS['real']}"),
        ("real: eegmat/ (21 ch)", [r for r in rows if r["group"] == "real" and r["recording"].startswith("eegmat/")],
         f"≥ {TARGETS['eegmat']}"),
        ("tiny", [r for r in rows if r["group"] == "tiny"], "no file < 1.0"),
        ("synthetic", [r for r in rows if r["group"] == "synthetic"], "no file < 1.0"),
        ("every file", rows, "no file < 1.0, none > 2× xz"),
    ]
    for label, sub, target in subsets:
        if not sub:
            continue
        big = [100 * r["overhead"] / r["archive"] for r in sub if r["archive"] > 1 << 20]
        summary.add_row(label, str(len(sub)), f"{geomean(r['vs_best'] for r in sub):.4f}",
                        f"{min(r['vs_best'] for r in sub):.3f}", target, f"{max(r['vs_xz'] for r in sub):.3f}",
                        f"{max(big):.2f}" if big else "-")
    console.print(per_file)
    console.print(summary)
    return [per_file, summary]


def _wall(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def cli_timings(corpus: Path, console: Console) -> Table:
    table = Table(title=f"Whole-command wall time (median of {RUNS} runs each, this machine)")
    for c in ("measure", "biocompress", "reference", "ratio", "target"):
        table.add_column(c, justify="left" if c == "measure" else "right")
    exe = [sys.executable, "-m", "biocompress.cli"]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        tmp = Path(tmp)
        codes = real_channels(corpus, CLI_CHANNELS)
        edf = write_edf(tmp / "eegmat21.edf", codes, CLI_SECONDS)
        n_samples = CLI_CHANNELS * CLI_SECONDS * 500
        archive = tmp / "eegmat21.bc.h5"
        cli_s = statistics.median(_wall(exe + ["compress", str(edf), "-o", str(archive), "-q", "-f"], env)
                                  for _ in range(RUNS))
        flac_s = math.nan
        if shutil.which("flac"):
            src = read_codes(edf)
            streams = []
            for ch in range(src.n_channels):
                p = tmp / f"ch{ch:02d}.raw"
                p.write_bytes(np.ascontiguousarray(src.parts[0][ch], "<i2").tobytes())
                streams.append(str(p))
            flac_s = statistics.median(
                _wall(["flac", "-8", "--verify", "-f", "-s", "--force-raw-format", "--endian=little",
                       "--sign=signed", "--channels=1", "--bps=16", "--sample-rate=500", *streams])
                for _ in range(RUNS))
        table.add_row(f"compress CLI, 21 ch EEG, {n_samples / 1e6:.1f} M samples (vs flac -8 --verify, "
                      "21 mono streams, one run)", f"{cli_s:.2f} s", f"{flac_s:.2f} s",
                      f"{cli_s / flac_s:.2f}×", f"≤ {TARGETS['cli_vs_flac']}×")
        times = [_wall(exe + ["info", str(archive)], env) for _ in range(5)]
        table.add_row(f"info of the {n_samples / 1e6:.1f} M-sample archive (median of 5)",
                      f"{statistics.median(times):.3f} s", "", "", f"≤ {TARGETS['info_s']} s")
    console.print(table)
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=HERE.parents[1] / "shared" / "corpus")
    ap.add_argument("--codec-csv", type=Path, required=True, help="bench_codec.py --csv output (FLAC, WavPack)")
    ap.add_argument("--level", default="default", choices=("fast", "default", "max"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-command timings")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables as text here")
    a = ap.parse_args(argv)
    console = Console(record=True, width=200)
    if not a.corpus.exists() or not a.codec_csv.exists():
        console.print(f"[red]{a.corpus if not a.corpus.exists() else a.codec_csv}: not found[/red]")
        return 2
    from threadpoolctl import threadpool_limits

    load = os.getloadavg()
    with threadpool_limits(1):
        rows = measure(a.corpus, reference_ratios(a.codec_csv), a.level, a.limit, console)
        if not rows:
            console.print("no integer recordings matched the codec CSV")
            return 2
        ratio_tables(rows, console)
        if not a.no_cli:
            cli_timings(a.corpus, console)
    console.print(f"level {a.level}; load average before {tuple(round(v, 2) for v in load)}, after "
                  f"{tuple(round(v, 2) for v in os.getloadavg())} on {os.cpu_count()} cores")
    if a.markdown:
        a.markdown.write_text(console.export_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
