"""Side-by-side lossless benchmark of biocompress against external codecs.

    python pipelines/bench_lossless.py CORPUS_DIR [--csv out.csv] [--plot out.png]
        [--anchors lossless.tsv] [--codecs flac8,wavpack_hhx6,biocompress] [--limit N]
"""

import argparse
import os
import sys
from pathlib import Path

# Single-threaded numerics for a fair comparison; must be set before numpy/numba load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from biocompress.bench.lossless import ALL_NAMES, run_benchmark


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_dir", help="folder searched recursively for recordings (or one file)")
    p.add_argument("--csv", help="write one row per (file, codec) here")
    p.add_argument("--plot", help="write a PNG bar chart of the ratios here")
    p.add_argument("--anchors", help="lossless.tsv of anchor figures (default: looked up near corpus/cwd)")
    p.add_argument("--codecs", help=f"comma list out of: {','.join(ALL_NAMES)} (default: all)")
    p.add_argument("--limit", type=int, help="benchmark only the first N recordings found")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    codecs = [c.strip() for c in a.codecs.split(",") if c.strip()] if a.codecs else None
    run_benchmark(a.corpus_dir, codecs=codecs, csv_path=a.csv, plot_path=a.plot, anchors_path=a.anchors,
                  progress=not a.no_progress, limit=a.limit)


if __name__ == "__main__":
    main()
