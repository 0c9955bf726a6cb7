"""XDF files: the archive of every stream against the XDF file and the same file gzip-compressed.

    python pipelines/bench_xdf.py [CORPUS_DIR_OR_FILES ...] [--csv F]

For each XDF file (found recursively; default ../shared/corpus): its size, the size of
``gzip -9`` of it (the ``.xdfz`` LabRecorder and pyxdf read), and the size of the whole
biocompress archive holding every stream (samples, timestamps, clock offsets, markers, header
XML; the HDF5 container included), checked bit for bit against the file. Per stream, the
bytes its sample and timestamp blocks take.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rich.console import Console
from rich.table import Table

import biocompress
from biocompress.bench import write_rows_csv
from biocompress.files.verify import verify_archive

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def xdf_files(places: list[Path]) -> list[Path]:
    found = []
    for place in places:
        found += [place] if place.is_file() else sorted(place.rglob("*.xdf"))
    return found


def measure(src: Path, folder: Path) -> dict:
    archive = biocompress.compress(src, folder / (src.stem + ".bc.h5"))
    exact = verify_archive(archive, src)["ok"]
    xdf_bytes = src.stat().st_size
    xdfz = len(gzip.compress(src.read_bytes(), compresslevel=9))
    streams = []
    with biocompress.open(archive) as arc:
        for entry in arc.streams:
            if entry.kind != "signal":
                streams.append(f"{entry.index}:{entry.type} markers")
                continue
            with arc.stream(entry.index) as s:
                data = int(s.index["length"].sum())
                times = int(s.times_index["length"].sum())
            streams.append(f"{entry.index}:{entry.type} {entry.channels}ch×{entry.samples} data {data} B, times {times} B")
    size = archive.stat().st_size
    return {"file": src.name, "xdf_bytes": xdf_bytes, "xdfz_bytes": xdfz, "archive_bytes": size,
            "archive_vs_xdfz": round(size / xdfz, 4), "smaller_than_xdfz": size < xdfz, "exact": exact,
            "streams": "; ".join(streams)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("places", nargs="*", type=Path, default=[DEFAULT_CORPUS])
    parser.add_argument("--csv", type=Path, help="write one row per file here")
    args = parser.parse_args(argv)
    files = xdf_files(args.places)
    if not files:
        print(f"no XDF file in {', '.join(map(str, args.places))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(src, Path(tmp)) for src in files]
    table = Table("file", "XDF bytes", ".xdfz bytes", "archive bytes", "archive / .xdfz", "exact", "streams")
    for r in rows:
        table.add_row(r["file"], f"{r['xdf_bytes']:,}", f"{r['xdfz_bytes']:,}", f"{r['archive_bytes']:,}",
                      f"{r['archive_vs_xdfz']:.3f}" + ("" if r["smaller_than_xdfz"] else " (NOT smaller)"),
                      "yes" if r["exact"] else "NO", r["streams"].replace("; ", "\n"))
    Console(width=160).print(table)
    if args.csv:
        write_rows_csv(args.csv, rows)
    return 0 if all(r["exact"] and r["smaller_than_xdfz"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
