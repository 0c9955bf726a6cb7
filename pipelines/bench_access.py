"""Memory and random-access benchmark of the lossless archive.

    python pipelines/bench_access.py [--corpus ../shared/corpus] [--workdir DIR] [--big-gb 2]

Targets (issue "lossless coder"): compressing a 2 GB recording keeps peak RSS under
1 GB; reading 10 s of 8 channels from a 1 h, 64-channel archive takes at most 50 ms.

The recordings are real EEG: the 21 channels of eegmat subjects 0-3 (500 Hz,
16-bit EDF digital values) side by side up to 64 channels, repeated in time to
the wanted length, written as EDF (the repetition period, 182 s, is far longer
than a block, so it gives the coder nothing for free).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

RATE = 500
SOURCES = [f"eegmat/Subject0{i}_1.edf" for i in range(4)]
RSS_TARGET_MB = 1024
READ_TARGET_MS = 50.0


def real_channels(corpus: Path, n_channels: int) -> np.ndarray:
    """(n_channels, n) int16 EDF digital values of real EEG, subjects side by side."""
    from biocompress.io import read_codes

    rows = []
    for rel in SOURCES:
        codes = read_codes(corpus / rel).codes
        rows += list(codes)
        if len(rows) >= n_channels:
            break
    n = min(r.size for r in rows)
    return np.stack([r[:n] for r in rows[:n_channels]]).astype(np.int16)


def write_edf(path: Path, source: np.ndarray, seconds: int) -> Path:
    """An EDF of ``seconds`` 1-s records, ``source`` repeated in time; digital = physical µV."""
    import edfio

    n_ch = source.shape[0]
    signals = [edfio.EdfSignal(np.zeros(RATE), sampling_frequency=RATE, label=f"EEG{i:03d}",
                               physical_dimension="uV", physical_range=(-32768, 32767),
                               digital_range=(-32768, 32767)) for i in range(n_ch)]
    edfio.Edf(signals, data_record_duration=1).write(path)
    header = bytearray(path.read_bytes()[: 256 * (n_ch + 1)])
    header[236:244] = f"{seconds:<8d}".encode("ascii")
    period = source.shape[1]
    with open(path, "wb") as f:
        f.write(header)
        for s0 in range(0, seconds, 60):  # a minute of records at a time
            n_rec = min(60, seconds - s0)
            t = (np.arange(s0 * RATE, (s0 + n_rec) * RATE)) % period
            block = source[:, t].reshape(n_ch, n_rec, RATE).transpose(1, 0, 2)
            f.write(np.ascontiguousarray(block).astype("<i2").tobytes())
    return path


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def compress_peak_rss(src: Path, dst: Path) -> tuple[float, float, int]:
    """Run ``biocompress compress`` as its own process; (seconds, peak tree RSS MB, exit code)."""
    cmd = [sys.executable, "-m", "biocompress.cli", "compress", str(src), "-o", str(dst), "--force"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.05)
    return time.perf_counter() - t0, peak / 1024, proc.returncode


def random_reads(archive: Path, n_reads: int, seconds: float, n_picks: int, contiguous: bool, seed: int = 0):
    """Times (ms) of cold reads: each opens the archive afresh, so no block is cached.

    One untimed read of every channel first: it loads the JIT-compiled kernels and
    starts the read worker processes (both once per process).
    """
    import biocompress

    rng = np.random.default_rng(seed)
    with biocompress.open(archive) as arc:
        n, n_ch, sfreq = arc.n_samples, arc.n_channels, arc.sfreq
        arc.read(0, 100)
    width = int(seconds * sfreq)
    times = []
    for _ in range(n_reads):
        start = int(rng.integers(0, n - width))
        if contiguous:
            first = int(rng.integers(0, n_ch - n_picks + 1))
            picks = np.arange(first, first + n_picks)
        else:
            picks = np.sort(rng.choice(n_ch, n_picks, replace=False))
        t0 = time.perf_counter()
        with biocompress.open(archive) as arc:
            x = arc.read(start, start + width, picks=picks)
        times.append((time.perf_counter() - t0) * 1e3)
        assert x.shape == (n_picks, width)
    return np.array(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--workdir", type=Path, help="where the test recordings go (default: a temporary folder)")
    p.add_argument("--big-gb", type=float, default=2.0, help="size of the memory-test recording (GB)")
    p.add_argument("--reads", type=int, default=60, help="random 10 s reads to time")
    p.add_argument("--skip-memory", action="store_true")
    a = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not (a.corpus / SOURCES[0]).is_file():
        console.print(f"[red]corpus not found at {a.corpus} (need {SOURCES[0]}); nothing measured[/red]")
        return 2

    import biocompress

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bc_access_"))
    work.mkdir(parents=True, exist_ok=True)
    source = real_channels(a.corpus, 64)
    table = Table(title="Memory and random access (lossless archive)")
    for col in ("measure", "biocompress", "target", "met"):
        table.add_column(col)

    hour = write_edf(work / "hour64.edf", source, 3600)
    t0 = time.perf_counter()
    arc_path = biocompress.compress(hour, work / "hour64.bc.h5", overwrite=True)
    enc_s = time.perf_counter() - t0
    size = hour.stat().st_size
    console.print(f"1 h x 64 ch x {RATE} Hz: EDF {size / 1e6:.0f} MB -> archive "
                  f"{arc_path.stat().st_size / 1e6:.1f} MB in {enc_s:.1f} s (verify included)")
    for n_picks, contiguous in ((8, True), (8, False)):
        ms = random_reads(arc_path, a.reads, 10.0, n_picks, contiguous)
        kind = "adjacent" if contiguous else "random"
        table.add_row(f"read 10 s x {n_picks} {kind} channels at a random time, cold (median / max of {a.reads})",
                      f"{np.median(ms):.1f} / {ms.max():.1f} ms", f"<= {READ_TARGET_MS:.0f} ms",
                      "yes" if np.median(ms) <= READ_TARGET_MS else "NO")
    t0 = time.perf_counter()
    raw = biocompress.read_raw(arc_path)
    raw.get_data(picks=[0, 9, 17, 25, 33, 41, 49, 57], start=1_000_000, stop=1_005_000)
    table.add_row("read_raw(...).get_data(8 ch, 10 s), cold, once", f"{(time.perf_counter() - t0) * 1e3:.1f} ms",
                  f"<= {READ_TARGET_MS:.0f} ms", "")

    if not a.skip_memory:
        seconds = int(a.big_gb * 1e9 / (64 * RATE * 2))
        big = write_edf(work / "big64.edf", source, seconds)
        secs, peak_mb, rc = compress_peak_rss(big, work / "big64.bc.h5")
        gb = big.stat().st_size / 1e9
        table.add_row(f"compress {gb:.2f} GB EDF ({seconds / 3600:.1f} h x 64 ch): peak RSS, all processes",
                      f"{peak_mb:.0f} MB ({secs:.0f} s, exit {rc})", f"< {RSS_TARGET_MB} MB",
                      "yes" if peak_mb < RSS_TARGET_MB and rc == 0 else "NO")
        big.unlink()
        (work / "big64.bc.h5").unlink(missing_ok=True)
    console.print(table)
    console.print(f"Recordings in {work}. Cold read = a fresh biocompress.open() per read (no cached blocks); "
                  "page cache warm, as after any recent access.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
