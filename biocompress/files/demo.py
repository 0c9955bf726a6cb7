"""``biocompress demo``: compress, verify and tabulate the bundled sample recordings."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from .compress import compress
from ..container.reader import Archive
from ..errors import BadInputError
from ..io.source import SIDECAR_OF, open_raw
from .read import read_raw

RECORDING_SUFFIXES = {".edf", ".bdf", ".fif", ".vhdr", ".set", ".lay", ".cnt", ".con", ".sqd", ".ns3", ".gdf"}


def find_samples(folder: Path | None) -> Path:
    candidates = [folder] if folder else [Path.cwd() / "data_samples", Path(__file__).resolve().parents[1] / "data_samples"]
    for c in candidates:
        if c is not None and c.is_dir():
            return c
    raise BadInputError(candidates[0], "sample folder not found (pass a folder of recordings)")


def recordings_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES
                  and p.suffix.lower() not in SIDECAR_OF)


def run_demo(folder: Path | None = None, console: Console | None = None) -> list[dict]:
    console = console or Console()
    folder = find_samples(folder)
    files = recordings_in(folder)
    if not files:
        raise BadInputError(folder, "no recordings found")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in files:
            dst = Path(tmp) / (src.name + ".bc.h5")
            t0 = time.perf_counter()
            compress(src, dst, progress=console.is_terminal)
            t_enc = time.perf_counter() - t0
            t0 = time.perf_counter()
            y = read_raw(dst, verbose="ERROR").get_data()
            t_dec = time.perf_counter() - t0
            x = open_raw(src).get_data()
            with Archive(dst) as arc:
                src_bytes = arc.source["source_bytes"]
                n_ch, n = arc.n_channels, arc.n_samples
            rows.append({
                "file": src.name, "channels": n_ch, "samples": n,
                "source_bytes": src_bytes, "archive_bytes": dst.stat().st_size,
                "ratio": src_bytes / dst.stat().st_size,
                "compress_s": t_enc, "decode_s": t_dec,
                "exact": bool(np.array_equal(x.view(np.int64), y.view(np.int64))),
            })
    _print(rows, folder, console)
    eeg = folder / LOSSY_SAMPLE
    if eeg.is_file():
        _print_lossy(_run_lossy(eeg, console), eeg, console)
    return rows


LOSSY_SAMPLE = "Subject00_2.edf"
LOSSY_SETTINGS = [("lossy", {"quality": q}) for q in (1, 2, 3, 4, 5)] + \
    [("near-lossless", {"max_error_uv": d}) for d in (1.0, 5.0)]


def _run_lossy(src: Path, console: Console) -> list[dict]:
    """The lossy ladder and two near-lossless bounds on one EEG sample."""
    import warnings

    rows = []
    x = open_raw(src).get_data()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read_raw's lossy notice: the table says it
        for mode, kw in LOSSY_SETTINGS:
            dst = Path(tmp) / f"{mode}.bc.h5"
            compress(src, dst, mode=mode, overwrite=True, progress=console.is_terminal, **kw)
            y = read_raw(dst, verbose="ERROR").get_data()
            with Archive(dst) as arc:
                fid = arc.fidelity["overall"]
                src_bytes = arc.source["source_bytes"]
            rows.append({"setting": f"{mode} " + ", ".join(f"{k.split('_')[0]} {v:g}" for k, v in kw.items()),
                         "archive_bytes": dst.stat().st_size, "ratio": src_bytes / dst.stat().st_size,
                         "prdn": fid["prdn"], "max_error_uv": float(np.abs(y - x).max() * 1e6)})
    return rows


def _print_lossy(rows, src: Path, console: Console) -> None:
    table = Table(title=f"biocompress demo — lossy and near-lossless, {src.name}")
    for col in ("setting", "archive B", "ratio", "PRDN %", "max |error| µV"):
        table.add_column(col, justify="left" if col == "setting" else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["setting"], f"{r['archive_bytes']:,}", f"{r['ratio']:.1f}", f"{r['prdn']:.2f}",
                      f"{r['max_error_uv']:.3f}")
    console.print(table)


def _print(rows, folder, console: Console) -> None:
    table = Table(title=f"biocompress demo — lossless, {folder}")
    for col in ("file", "ch", "source B", "archive B", "ratio", "enc s", "dec s", "bit-exact"):
        table.add_column(col, justify="left" if col == "file" else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["file"], str(r["channels"]), f"{r['source_bytes']:,}", f"{r['archive_bytes']:,}",
            f"{r['ratio']:.3f}", f"{r['compress_s']:.2f}", f"{r['decode_s']:.2f}",
            "[green]yes[/]" if r["exact"] else "[red]NO[/]",
        )
    total_src = sum(r["source_bytes"] for r in rows)
    total_arc = sum(r["archive_bytes"] for r in rows)
    table.add_row("all", "", f"{total_src:,}", f"{total_arc:,}", f"{total_src / total_arc:.3f}", "", "", "")
    console.print(table)
    console.print("compress s includes verify-after-write; ratio = source file bytes ÷ archive bytes "
                  "(archive includes all metadata).")
