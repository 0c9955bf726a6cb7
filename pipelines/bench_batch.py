"""Benchmark of `biocompress batch` on a corpus (not a test: it measures time).

Four runs over the same corpus, each into a fresh destination:

1. batch, local pool, 1 worker
2. the same compress-and-verify calls as 1, one after the other in this already started
   Python process (imports done, kernels loaded): 1 must take ≤ 1.3 × its time
3. batch, local pool, 2 workers                 target: ≥ 1.8 × the throughput of 1
   (1, 3 and 4 each in a fresh process, as a user's command runs)
4. batch, Dask LocalCluster of 2 workers        target: ≥ 0.9 × the throughput of 3,
   (inside a network namespace of its own,       decoded samples byte-identical to 3's
   loopback only: `unshare -n`)

Throughput: bytes of the sources handled per second of wall time, start-up of the pool or
cluster included. Every figure depends on what else the machine runs: the load average is
printed before and after.

    python pipelines/bench_batch.py [CORPUS] [--work DIR] [--markdown] [--skip-dask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def default_corpus() -> Path:
    env = os.environ.get("BIOCOMPRESS_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def batch_run(src: Path, dst: Path, **kw) -> dict:
    from biocompress.batch import run_batch

    t0 = time.perf_counter()
    s = run_batch(src, dst, **kw)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "bytes": s.bytes_in, "files": s.converted + s.copied, "failed": [r for r, _ in s.failed],
            "throughput": s.bytes_in / wall}


def in_process(src: Path, dst: Path) -> dict:
    """The calls a batch task makes, here one after the other: compress (which decodes and
    checks the archive before renaming it) and a read-back of the archive's integrity
    manifest; plain files copied. One BLAS thread and no read pool, as in a batch worker."""
    from biocompress.batch.discover import find_units
    from biocompress.batch.plan import compressed_names
    from biocompress.codecs.pool import no_read_pool
    from biocompress.container.reader import Archive
    from biocompress.errors import BiocompressError
    from biocompress.files.compress import compress
    from biocompress.system.threads import one_thread_per_process

    one_thread_per_process()
    no_read_pool()
    warm = dst.parent / "warm"
    warm.mkdir(exist_ok=True)
    compress(REPO / "data_samples" / "chtypes_edf.edf", warm / "w.bc.h5", workers=1)  # an already started process
    t0 = time.perf_counter()
    units = find_units(src).units
    names = compressed_names(units, {})
    done, failed, n_bytes = 0, [], 0
    for u in units:
        out = dst / names[u.rel]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if u.kind == "recording":
                compress(src / u.rel, out, workers=1)
                with Archive(out) as arc:
                    arc.check_metadata()
            else:
                shutil.copyfile(src / u.rel, out)
        except BiocompressError:
            failed.append(u.rel)
            continue
        done += 1
        n_bytes += sum((src / m).stat().st_size for m in u.members)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "bytes": n_bytes, "files": done, "failed": failed, "throughput": n_bytes / wall}


def local_in_child(src: Path, dst: Path, workers: int) -> dict:
    """Runs 1 and 3 in a fresh child process, as the Dask run is: each then starts its worker
    processes (and the fork server they come from) from nothing, as a user's command does."""
    result = dst.parent / f"local{workers}.json"
    cmd = [sys.executable, __file__, "--local-only", str(src), str(dst), str(result), str(workers)]
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"the local run failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return json.loads(result.read_text())


def dask_in_namespace(src: Path, dst: Path) -> dict:
    """Run 3. in a child process inside a network namespace with loopback only."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise RuntimeError("unshare(1) and ip(8) are needed for the Dask run")
    result = dst.parent / "dask.json"
    script = 'ip link set lo up && exec "$0" "$1" --dask-only "$2" "$3" "$4"'
    cmd = ["unshare", "-n", "sh", "-c", script, sys.executable, __file__, str(src), str(dst), str(result)]
    done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"the Dask run failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return json.loads(result.read_text())


def same_samples(a: Path, b: Path) -> tuple[int, list[str]]:
    """Archives compared: how many, and those whose decoded samples differ (or exist in one only)."""
    import numpy as np

    import biocompress

    names_a = sorted(p.relative_to(a) for p in a.rglob("*.bc.h5"))
    names_b = sorted(p.relative_to(b) for p in b.rglob("*.bc.h5"))
    differ = [str(n) for n in set(names_a) ^ set(names_b)]
    for rel in set(names_a) & set(names_b):
        with biocompress.open(a / rel) as x, biocompress.open(b / rel) as y:
            if np.ascontiguousarray(x.read()).tobytes() != np.ascontiguousarray(y.read()).tobytes():
                differ.append(str(rel))
    return len(names_a), sorted(differ)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--dask-only", "--local-only"):
        src, dst, out = map(Path, sys.argv[2:5])
        executor = "dask" if sys.argv[1] == "--dask-only" else "local"
        workers = int(sys.argv[5]) if len(sys.argv) > 5 else 2
        Path(out).write_text(json.dumps(batch_run(src, dst, executor=executor, workers=workers)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=default_corpus())
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2
    import mne

    mne.set_log_level("ERROR")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_", dir=args.work))
    try:
        for p in args.corpus.rglob("*"):  # the corpus in the page cache for every run alike
            if p.is_file():
                p.read_bytes()
        # numba compiles its kernels once per installation (cached on disk): a first conversion
        # pays that, once, before anything is timed
        first = work / "first"
        first.mkdir()
        subprocess.run([sys.executable, "-m", "biocompress.cli", "compress", str(REPO / "data_samples" /
                        "test_utf8_annotations.edf"), "-o", str(first / "w.bc.h5"), "-q"], check=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
        print(f"corpus {args.corpus}; cores {os.cpu_count()}; load average before {load()}", flush=True)
        runs = {}
        # each comparison's two runs back to back, so that both meet about the same load
        runs["1"] = local_in_child(args.corpus, work / "one", 1)
        print(f"  batch, 1 worker: {runs['1']['wall_s']:.1f} s (load {load()})", flush=True)
        runs["inproc"] = in_process(args.corpus, work / "inproc")
        print(f"  in-process loop: {runs['inproc']['wall_s']:.1f} s (load {load()})", flush=True)
        runs["2"] = local_in_child(args.corpus, work / "two", 2)
        print(f"  batch, 2 workers: {runs['2']['wall_s']:.1f} s (load {load()})", flush=True)
        if not args.skip_dask:
            runs["dask"] = dask_in_namespace(args.corpus, work / "dask")
            print(f"  batch, Dask LocalCluster, 2 workers: {runs['dask']['wall_s']:.1f} s (load {load()})", flush=True)
        after = load()
        rows = [("batch, local, 1 worker", runs["1"], "", "")]
        speedup = runs["2"]["throughput"] / runs["1"]["throughput"]
        rows.append(("batch, local, 2 workers", runs["2"], f"{speedup:.2f} × 1 worker", "≥ 1.8" + _ok(speedup >= 1.8)))
        if "dask" in runs:
            n, differ = same_samples(work / "two", work / "dask")
            rel = runs["dask"]["throughput"] / runs["2"]["throughput"]
            same = f"; samples of {n} archives {'byte-identical' if not differ else 'DIFFER: ' + ', '.join(differ)}"
            rows.append(("batch, Dask LocalCluster, 2 workers", runs["dask"], f"{rel:.2f} × local 2 workers{same}",
                         "≥ 0.9" + _ok(rel >= 0.9 and not differ)))
        overhead = runs["1"]["wall_s"] / runs["inproc"]["wall_s"]
        rows.append(("same calls in one started process", runs["inproc"], f"batch 1 worker takes {overhead:.2f} ×",
                     "≤ 1.3" + _ok(overhead <= 1.3)))
        _print(rows, args.markdown)
        print(f"load average (1, 5, 15 min) at the end: {after}; "
              f"failures (same in every run): {sorted(set(runs['1']['failed']))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _ok(ok: bool) -> str:
    return " ✓" if ok else " ✗"


def _print(rows, markdown: bool) -> None:
    head = ("run", "files", "MB", "wall s", "MB/s", "comparison", "target")
    lines = [head] + [(name, str(r["files"]), f"{r['bytes'] / 1e6:.1f}", f"{r['wall_s']:.1f}",
                       f"{r['throughput'] / 1e6:.2f}", cmp, target) for name, r, cmp, target in rows]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


if __name__ == "__main__":
    sys.exit(main())
