"""Codec-level lossless benchmark: lpc-v3 and lpc-v4 (each level) against FLAC -8 and WavPack -hhx6.

    python pipelines/bench_codec.py [CORPUS] [--codecs lpc-v3,lpc-v4:fast,lpc-v4,lpc-v4:max]
        [--speed-set eegmat] [--csv F] [--limit N] [--no-wavpack]

Ratios are payload-level: native bytes (channels × samples × bits/8) ÷ the codec payloads of
the blocks the archive writer makes (16384 samples × up to 32 channels), no HDF5 container;
FLAC and WavPack code one mono raw file per channel of the same integer codes (file headers
counted), as in ../shared/anchors/lossless.tsv, whose figures are shown side by side. Every
output is decoded and compared with the input. Recordings are reported in three groups:
real, tiny (< 50 000 samples) and synthetic (the corpus README's test generators and the KIT
artificial signal); the targets concern the real ones.

Speeds are per core, single process (numba and BLAS on one thread), as wall-clock and as CPU
time (this process's, or the children's for the command-line tools: on a busy machine CPU
time is the steadier measure). FLAC and WavPack are timed on one stream per channel, each the
concatenation of that channel over the recordings of ``--speed-set`` (a corpus sub-folder),
less their process start-up (measured on a 64-sample stream); ours on the same recordings'
blocks. The load average is printed: on a shared machine only speeds measured in one run,
relative to each other, mean much.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/numba load

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from biocompress.bench import write_rows_csv  # noqa: E402
from biocompress.bench.external import Flac8, WavPackHHx6, _call, _tmp_root, pack, unpack  # noqa: E402
from biocompress.bench.lossless import find_anchors, find_recordings, geomean, load_anchors  # noqa: E402
from biocompress.codecs.lossless import LPCV4Codec, LPCX3Codec  # noqa: E402
from biocompress.files.compress import BLOCK_SAMPLES, GROUP_CHANNELS  # noqa: E402
from biocompress.io import read_codes  # noqa: E402

SYNTHETIC = {"test_generator_2.edf", "test_generator_2.bdf", "ArtificalSignalData_Yokogawa_1khz.con"}
TINY_SAMPLES = 50_000
DEFAULT_CODECS = ("lpc-v3", "lpc-v4:fast", "lpc-v4", "lpc-v4:max")


def make_codec(spec: str):
    name, _, level = spec.partition(":")
    if name == "lpc-v3":
        return LPCX3Codec()
    if name == "lpc-v4":
        return LPCV4Codec(level or "default")
    raise SystemExit(f"unknown codec {spec!r}: lpc-v3, lpc-v4[:fast|default|max]")


def group_of(path: Path, n_samples: int) -> str:
    if path.name in SYNTHETIC:
        return "synthetic"
    return "tiny" if n_samples < TINY_SAMPLES else "real"


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


class Clock:
    """Wall-clock and CPU seconds of what runs between start() and stop() (this process, or
    its children for the command-line tools)."""

    def __init__(self, children: bool = False):
        self.cpu_of = _children_cpu if children else time.process_time
        self.wall = self.cpu = 0.0

    def start(self):
        self._w, self._c = time.perf_counter(), self.cpu_of()

    def stop(self):
        self.wall += time.perf_counter() - self._w
        self.cpu += self.cpu_of() - self._c


def blockwise(codec, parts, enc: Clock, dec: Clock) -> int:
    """Payload bytes over the writer's blocks, timing encode and decode; raises if a block differs."""
    size = 0
    for codes in parts:
        for c0 in range(0, codes.shape[0], GROUP_CHANNELS):
            for t0 in range(0, max(codes.shape[1], 1), BLOCK_SAMPLES):
                block = np.ascontiguousarray(codes[c0 : c0 + GROUP_CHANNELS, t0 : t0 + BLOCK_SAMPLES])
                enc.start()
                payload = codec.encode(block)
                enc.stop()
                dec.start()
                back = codec.decode(payload)
                dec.stop()
                if not np.array_equal(back, block):
                    raise AssertionError(f"{codec!r} does not round-trip")
                size += len(payload)
    return size


def _timed(clock: Clock, cmd) -> None:
    clock.start()
    _call(cmd)
    clock.stop()


def external_speed(codec, streams: list[np.ndarray], bits: int, rate: int) -> tuple[Clock, Clock]:
    """Encode and decode clocks of each stream with one process per stream, less the process
    start-up (the median of 5 runs on a 64-sample stream, per process)."""
    enc, dec = Clock(children=True), Clock(children=True)
    with tempfile.TemporaryDirectory(dir=_tmp_root()) as tmp:
        raw, comp, out = (Path(tmp) / f"tiny{ext}" for ext in (".raw", codec.suffix, ".out"))
        raw.write_bytes(pack(np.zeros(64, np.int64), bits))
        for clock, cmd in ((enc, codec.encode_cmd(raw, comp, bits, rate)), (dec, codec.decode_cmd(comp, out))):
            runs = []
            for _ in range(5):
                tiny = Clock(children=True)
                _timed(tiny, cmd)
                runs.append((tiny.wall, tiny.cpu))
            clock.wall -= float(np.median([w for w, _ in runs])) * len(streams)
            clock.cpu -= float(np.median([c for _, c in runs])) * len(streams)
        for i, x in enumerate(streams):
            raw, comp, out = (Path(tmp) / f"s{i}{ext}" for ext in (".raw", codec.suffix, ".out"))
            raw.write_bytes(pack(x, bits))
            _timed(enc, codec.encode_cmd(raw, comp, bits, rate))
            _timed(dec, codec.decode_cmd(comp, out))
            if not np.array_equal(unpack(out.read_bytes(), bits, x.shape), x):
                raise AssertionError(f"{codec.name} does not round-trip")
            for p in (raw, comp, out):
                p.unlink()
    return enc, dec


def warm_up(codecs) -> None:
    x = np.cumsum(np.random.default_rng(0).integers(-50, 51, (3, 5000)), axis=1)
    for c in codecs.values():
        c.decode(c.encode(x))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--codecs", default=",".join(DEFAULT_CODECS), help="comma list (default: %(default)s)")
    p.add_argument("--speed-set", default="eegmat", help="corpus sub-folder timed for speeds (default: eegmat)")
    p.add_argument("--csv", type=Path, help="write one row per recording here")
    p.add_argument("--limit", type=int, help="only the first N recordings found")
    p.add_argument("--no-wavpack", action="store_true", help="skip WavPack -hhx6 (slow: ~0.5 M samples/s)")
    a = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not a.corpus.exists():
        console.print(f"[red]{a.corpus}: not found; nothing measured[/red]")
        return 2
    ours = {spec: make_codec(spec) for spec in a.codecs.split(",") if spec}
    externals = [c for c in (Flac8(), None if a.no_wavpack else WavPackHHx6()) if c is not None]
    for c in externals:
        ok, why = c.available()
        if not ok:
            console.print(f"[red]{c.name}: {why}[/red]")
            return 2
    load_before = os.getloadavg()
    rows, speed = [], {name: [0, Clock(), Clock()] for name in ours}
    speed_streams: dict[tuple[int, int], list[np.ndarray]] = {}  # (bits, channel) -> arrays
    with threadpool_limits(1):
        warm_up(ours)
        for path in find_recordings(a.corpus)[: a.limit]:
            try:
                src = read_codes(path)
            except Exception as exc:  # noqa: BLE001 - report and go on
                console.print(f"[dim]skip {path.name}: {exc}[/dim]")
                continue
            if not src.integer:
                continue
            parts = [np.ascontiguousarray(x, np.int64) for x in src.parts]
            native = src.n_stored * src.bits // 8
            rel = path.relative_to(a.corpus) if a.corpus.is_dir() else Path(path.name)
            timed = a.corpus.is_dir() and rel.parts[0] == a.speed_set
            row = {"recording": str(rel), "group": group_of(path, src.n_stored), "channels": src.n_channels,
                   "samples": src.n_stored, "bits": src.bits, "native_bytes": native}
            for c in externals:
                size = sum(c.run(x, src.bits, sfreq=src.sfreq).compressed_bytes for x in parts)
                row[c.name] = native / size
            for name, codec in ours.items():
                enc, dec = (speed[name][1], speed[name][2]) if timed else (Clock(), Clock())
                row[name] = native / blockwise(codec, parts, enc, dec)
                if timed:
                    speed[name][0] += src.n_stored
            if timed and len(parts) == 1:
                for ch, x in enumerate(parts[0]):
                    speed_streams.setdefault((src.bits, ch), []).append(x)
            best = max(row[c.name] for c in externals)
            for name in ours:
                row[f"{name} / best"] = row[name] / best
            rows.append(row)
            console.print(f"{rel}: " + ", ".join(f"{k} {row[k]:.3f}" for k in [c.name for c in externals] + list(ours)))
        ext_speed = {}
        if speed_streams:
            streams = {bits: [np.concatenate(v) for (b, _), v in speed_streams.items() if b == bits]
                       for bits in {b for b, _ in speed_streams}}
            for c in externals:
                n, enc, dec = 0, Clock(children=True), Clock(children=True)
                for bits, group in streams.items():
                    e, d = external_speed(c, group, bits, 500)
                    n += sum(x.size for x in group)
                    for total, part in ((enc, e), (dec, d)):
                        total.wall += part.wall
                        total.cpu += part.cpu
                ext_speed[c.name] = (n, enc, dec)
    load_after = os.getloadavg()
    if not rows:
        console.print("no integer recordings found")
        return 2
    report(console, rows, ours, externals, speed, ext_speed, a, load_before, load_after)
    if a.csv:
        write_rows_csv(a.csv, rows)
        console.print(f"CSV written to {a.csv}")
    return 0


def report(console, rows, ours, externals, speed, ext_speed, a, load_before, load_after) -> None:
    ext_names = [c.name for c in externals]
    table = Table(title="Payload-level ratio (native bytes / compressed bytes); ÷ best = ÷ best(FLAC -8, WavPack -hhx6)")
    for col in ["recording", "group", "ch", *ext_names, *ours, *(f"{n} ÷ best" for n in ours)]:
        table.add_column(col, justify="left" if col in ("recording", "group") else "right")
    for group in ("real", "tiny", "synthetic"):
        for r in (r for r in rows if r["group"] == group):
            table.add_row(r["recording"], group, str(r["channels"]), *(f"{r[n]:.3f}" for n in ext_names),
                          *(f"{r[n]:.3f}" for n in ours),
                          *(("[red]" if r[f"{n} / best"] < 1 else "") + f"{r[f'{n} / best']:.3f}" for n in ours))
        table.add_section()
    console.print(table)

    summary = Table(title="Geometric mean of ÷ best(FLAC -8, WavPack -hhx6) per recording (lowest in brackets)")
    summary.add_column("recordings")
    summary.add_column("n", justify="right")
    for n in ours:
        summary.add_column(n, justify="right")
    subsets = {
        "real (all)": [r for r in rows if r["group"] == "real"],
        "real: eegmat/ (21 ch)": [r for r in rows if r["group"] == "real" and r["recording"].startswith("eegmat/")],
        "real: others": [r for r in rows if r["group"] == "real" and not r["recording"].startswith("eegmat/")],
        "tiny": [r for r in rows if r["group"] == "tiny"],
        "synthetic": [r for r in rows if r["group"] == "synthetic"],
    }
    for label, sub in subsets.items():
        if sub:
            summary.add_row(label, str(len(sub)), *(f"{geomean(r[f'{n} / best'] for r in sub):.4f} "
                                                    f"({min(r[f'{n} / best'] for r in sub):.3f})" for n in ours))
    console.print(summary)

    speeds = Table(title=f"Per-core speed on {a.speed_set}/ (M samples/s, one process, one thread; "
                         "wall-clock | CPU time)")
    for col in ("codec", "samples", "encode", "decode", "encode ÷ flac -8", "decode ÷ flac -d"):
        speeds.add_column(col, justify="left" if col == "codec" else "right")
    flac = ext_speed.get("flac8")
    rate = lambda n, s: n / s / 1e6 if s > 0 else math.nan  # noqa: E731
    for name, (n, enc, dec) in list(ext_speed.items()) + list((k, tuple(v)) for k, v in speed.items()):
        cells = [f"{rate(n, enc.wall):.2f} | {rate(n, enc.cpu):.2f}", f"{rate(n, dec.wall):.2f} | {rate(n, dec.cpu):.2f}"]
        if flac:
            fn, fe, fd = flac
            cells += [f"{rate(n, enc.wall) / rate(fn, fe.wall):.3f} | {rate(n, enc.cpu) / rate(fn, fe.cpu):.3f}",
                      f"{rate(n, dec.wall) / rate(fn, fd.wall):.3f} | {rate(n, dec.cpu) / rate(fn, fd.cpu):.3f}"]
        else:
            cells += ["-", "-"]
        speeds.add_row(name, f"{n:,}", *cells)
    console.print(speeds)
    console.print(f"load average (1, 5, 15 min): before {tuple(round(v, 2) for v in load_before)}, "
                  f"after {tuple(round(v, 2) for v in load_after)} on {os.cpu_count()} cores")

    anchor_file = find_anchors(a.corpus)
    if anchor_file is None:
        console.print("anchor figures (lossless.tsv) not found")
        return
    anchors = load_anchors(anchor_file)
    t = Table(title=f"Anchor figures ({anchor_file}) beside this run's")
    cols = [c for c in ("flac8", "wavpack_hhx6", "ar_proto")]
    for col in ["recording", *(f"{c} anchor" for c in cols), *(f"{c} here" for c in ext_names), *ours]:
        t.add_column(col, justify="left" if col == "recording" else "right")
    for r in rows:
        name = Path(r["recording"]).name
        if name in anchors:
            t.add_row(name, *(f"{anchors[name].get(c, math.nan):.3f}" for c in cols),
                      *(f"{r[c]:.3f}" for c in ext_names), *(f"{r[n]:.3f}" for n in ours))
    console.print(t)


if __name__ == "__main__":
    sys.exit(main())
