"""Lossy and near-lossless benchmark on held-out subjects: rate–distortion side by side.

    python pipelines/bench_lossy.py [--corpus ../shared/corpus] [--csv F] [--plot F.png] [--files N]

On the eegmat subjects held out from training (15-17; see train_autoencoder.py),
every method codes the same recordings and is decoded and compared with them:

* biocompress lossy (autoencoder) at qualities 1-5, and near-lossless at
  δ ∈ {0.5, 1, 2, 5, 10} µV, both through ``biocompress.files.compress`` as a user runs it;
* DWT: db4, 5 levels, per channel, uniform quantization of every sub-band of the
  digital codes (steps 256 … 16384 codes, as in the anchors), coefficients range-coded
  with the same segment-adaptive coder biocompress uses for residuals;
* near-lossless DPCM: closed-loop integer LPC (fitted with the quantizer noise),
  uniform quantizer of step 2δ+1 codes, same entropy coder, at the same δ;
* WavPack hybrid (lossy) -b2 … -b6, one mono stream per channel (skipped with a note
  if the CLI is absent).

CR = 16 bits / (compressed bits per sample), against the 16-bit source. Bytes
counted: the coded blocks plus, for biocompress, each recording's stream header
(the spatial transform and scales as float32); the HDF5 container is not counted
(`biocompress info` shows archive-level ratios). PRDN = 100·‖x−x̂‖/‖x−mean(x)‖
over all channels and recordings; max error and RMSE in µV.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import biocompress  # noqa: E402
from biocompress.bench import write_rows_csv
from biocompress.bench.external import pack, unpack
from biocompress.codecs.lossless import residual_coder
from biocompress.codecs.lossy import model_file
from biocompress.codecs.lossy.ae_codec import QUALITY_STEPS, AECodec
from biocompress.codecs.lossy.near_lossless import dpcm_decode, dpcm_encode
from biocompress.files.compress import BLOCK_SAMPLES
from biocompress.io.scaling import value_per_code
from biocompress.io import scaling
from biocompress.io.source import open_raw
from train_autoencoder import TEST, split_files  # noqa: E402

DELTAS_UV = (0.5, 1.0, 2.0, 5.0, 10.0)
DWT_STEPS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
PRDN_GRID = (2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0)  # where the RD curves are compared
WAVPACK_BITS = (2, 3, 4, 5, 6)
DWT_ANCHORS = [(0.75, 6.5), (2.75, 10.5), (8.5, 19.5), (26.5, 50.0)]  # (PRDN %, CR), anchors README


class Recording:
    def __init__(self, path: Path):
        raw = open_raw(path)
        self.path = path
        self.name = path.name
        self.sfreq = float(raw.info["sfreq"])
        self.recipe = scaling.recipe_for(raw)
        self.values = raw.get_data()
        n_ch = self.values.shape[0]
        self.codes = scaling.to_codes(self.recipe, self.values, np.arange(n_ch), 0)
        self.uv_per_code = value_per_code(self.recipe, n_ch) * 1e6
        self.uv = self.values * 1e6

    def values_from_codes(self, codes: np.ndarray) -> np.ndarray:
        return self.recipe.forward(codes, np.arange(codes.shape[0])) * 1e6


class Tally:
    """Bits and errors summed over recordings for one method and setting."""

    def __init__(self, method: str, setting: str):
        self.method, self.setting = method, setting
        self.bits = self.samples = self.err2 = self.centred2 = self.max_err = 0.0
        self.seconds = 0.0

    def add(self, rec: Recording, n_bytes: int, x_hat_uv: np.ndarray, seconds: float = 0.0):
        e = x_hat_uv - rec.uv
        self.bits += 8 * n_bytes
        self.samples += rec.uv.size
        self.err2 += float((e**2).sum())
        self.centred2 += float(((rec.uv - rec.uv.mean(axis=1, keepdims=True)) ** 2).sum())
        self.max_err = max(self.max_err, float(np.abs(e).max()))
        self.seconds += seconds

    def row(self) -> dict:
        bps = self.bits / self.samples
        return {"method": self.method, "setting": self.setting, "bits_per_sample": bps, "cr": 16 / bps,
                "prdn": 100 * math.sqrt(self.err2 / self.centred2), "rmse_uv": math.sqrt(self.err2 / self.samples),
                "max_abs_error_uv": self.max_err,
                "msps": self.samples / self.seconds / 1e6 if self.seconds else None}


def header_bytes(n_ch: int) -> int:
    return 4 * (n_ch * n_ch + 3 * n_ch)  # transform, sigmas, offsets, scales as float32


def stream_blocks(codec, x: np.ndarray) -> list[tuple[int, int, bytes]]:
    enc = codec.stream(BLOCK_SAMPLES)
    return enc.push(x) + enc.finish()


def _through_archive(rec: Recording, tally: Tally, **kwargs):
    """biocompress.compress() as a user runs it; bytes = the coded blocks + a stream header."""
    import warnings

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = time.perf_counter()
        dst = biocompress.compress(rec.path, Path(tmp) / "a.bc.h5", **kwargs)
        x_hat = biocompress.read_raw(dst).get_data() * 1e6
        seconds = time.perf_counter() - t
        with biocompress.open(dst) as arc:
            size = int(arc.index["length"].sum())
    tally.add(rec, size + header_bytes(rec.uv.shape[0]), x_hat, seconds)


def run_ae(rec: Recording, quality: int, tally: Tally):
    _through_archive(rec, tally, mode="lossy", quality=quality)


def run_near_lossless(rec: Recording, delta_uv: float, tally: Tally):
    _through_archive(rec, tally, mode="near-lossless", max_error_uv=delta_uv)


def run_dpcm(rec: Recording, delta_uv: float, tally: Tally):
    deltas = np.floor(delta_uv / rec.uv_per_code + 1e-9).astype(np.int64)
    size, codes = 0, []
    for t0 in range(0, rec.codes.shape[1], BLOCK_SAMPLES):
        payload, _ = dpcm_encode(rec.codes[:, t0 : t0 + BLOCK_SAMPLES], deltas)
        size += len(payload)
        codes.append(dpcm_decode(payload))
    tally.add(rec, size, rec.values_from_codes(np.concatenate(codes, axis=1)))


def run_dwt(rec: Recording, step: int, tally: Tally):
    import pywt

    size, rows = 0, []
    for x in rec.codes.astype(np.float64):
        coeffs = pywt.wavedec(x, "db4", level=5)
        q = [np.rint(c / step).astype(np.int64) for c in coeffs]
        size += len(residual_coder.encode_rows(q, 256, shaped=True)) + 2  # + the step
        rows.append(pywt.waverec([c * step for c in q], "db4")[: x.size])
    tally.add(rec, size, rec.values_from_codes(np.array(rows)))


def run_wavpack(rec: Recording, bits: int, tally: Tally):
    with tempfile.TemporaryDirectory() as tmp:
        tmp, size, out = Path(tmp), 0, []
        for i, x in enumerate(rec.codes):
            raw, wv, back = tmp / f"{i}.raw", tmp / f"{i}.wv", tmp / f"{i}.out"
            raw.write_bytes(pack(x, 16))
            subprocess.run(["wavpack", f"-b{bits}", "-q", "-y", f"--raw-pcm={int(rec.sfreq)},16s,1,le",
                            str(raw), "-o", str(wv)], check=True, capture_output=True)
            subprocess.run(["wvunpack", "-q", "-y", "--raw", str(wv), "-o", str(back)], check=True,
                           capture_output=True)
            size += wv.stat().st_size
            out.append(unpack(back.read_bytes(), 16, (x.size,)))
    tally.add(rec, size, rec.values_from_codes(np.array(out)))


def interpolate_cr(points: list[tuple[float, float]], prdn: float) -> float | None:
    """log CR linear in log PRDN between measured points (None outside them)."""
    pts = sorted(points)
    for (p0, c0), (p1, c1) in zip(pts, pts[1:]):
        if p0 <= prdn <= p1:
            w = (math.log(prdn) - math.log(p0)) / (math.log(p1) - math.log(p0))
            return math.exp(math.log(c0) + w * (math.log(c1) - math.log(c0)))
    return None


def speed_64ch_1khz(rec: Recording) -> float:
    """Encode + decode throughput (M samples/s) on one thread, of 64 channels at quality 3."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = np.tile(rec.uv, (4, 1))[:64, : 60 * 1000]  # 64 channels, 60 s at "1 kHz"
        codec = AECodec.for_stream(x[:, :BLOCK_SAMPLES], quality=3)
        t = time.perf_counter()
        blocks = stream_blocks(codec, x)
        for _, _, p in blocks:
            codec.decode(p)
        return x.size / (time.perf_counter() - t) / 1e6
    finally:
        torch.set_num_threads(threads)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    for method in dict.fromkeys(r["method"] for r in rows):
        for ax, key in ((a, "prdn"), (b, "max_abs_error_uv")):
            rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r[key])
            ax.plot([r[key] for r in rs], [r["cr"] for r in rs], "o-", label=method)
    a.plot(*zip(*DWT_ANCHORS), "k:", label="DWT anchors (other subjects)")
    for ax, xlabel in ((a, "PRDN (%)"), (b, "max |error| (µV)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("compression ratio vs 16-bit")
        ax.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=8)
    a.set_title("Rate-distortion, held-out eegmat subjects")
    b.set_title("Compression vs maximum error")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    p.add_argument("--csv", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--files", type=int, help="only the first N held-out recordings")
    p.add_argument("--quick", action="store_true", help="fewer settings (smoke test)")
    a = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    files = split_files(a.corpus, TEST)[: a.files]
    if not files:
        console.print(f"[red]held-out eegmat recordings not found under {a.corpus}; nothing measured[/red]")
        return 2
    _, _, meta = model_file.load()
    console.print(f"model {meta['model_id']}; held-out recordings: {', '.join(f.name for f in files)}")
    recs = [Recording(f) for f in files]
    qualities = (1, 3, 5) if a.quick else tuple(QUALITY_STEPS)
    deltas = (1.0,) if a.quick else DELTAS_UV
    plan = [("biocompress lossy", f"Q{q}", run_ae, q) for q in qualities]
    plan += [("biocompress near-lossless", f"δ={d:g} µV", run_near_lossless, d) for d in deltas]
    plan += [("DPCM near-lossless", f"δ={d:g} µV", run_dpcm, d) for d in deltas]
    plan += [("DWT db4 L5", f"step {s}", run_dwt, s) for s in (DWT_STEPS[2::2] if a.quick else DWT_STEPS)]
    if shutil.which("wavpack") and shutil.which("wvunpack"):
        plan += [("WavPack hybrid", f"-b{b}", run_wavpack, b) for b in (WAVPACK_BITS[:1] if a.quick else WAVPACK_BITS)]
    else:
        console.print("[yellow]wavpack/wvunpack not found (apt-get install wavpack): WavPack hybrid skipped[/yellow]")
    rows = []
    for method, setting, fn, arg in plan:
        tally = Tally(method, setting)
        for rec in recs:
            fn(rec, arg, tally)
        rows.append(tally.row())
    table = Table(title="Rate-distortion on held-out eegmat subjects (CR against the 16-bit source)")
    for col in ("method", "setting", "bits/sample", "CR", "PRDN %", "RMSE µV", "max |err| µV"):
        table.add_column(col, justify="left" if col in ("method", "setting") else "right")
    for r in rows:
        table.add_row(r["method"], r["setting"], f"{r['bits_per_sample']:.3f}", f"{r['cr']:.1f}", f"{r['prdn']:.2f}",
                      f"{r['rmse_uv']:.3f}", f"{r['max_abs_error_uv']:.3f}")
    console.print(table)
    console.print("DWT anchors (README, subjects 00 and 05): " +
                  ", ".join(f"CR {c:g} at PRDN {p:g} %" for p, c in DWT_ANCHORS))

    ae = [(r["prdn"], r["cr"]) for r in rows if r["method"] == "biocompress lossy"]
    dwt = [(r["prdn"], r["cr"]) for r in rows if r["method"] == "DWT db4 L5"]
    at10 = interpolate_cr(ae, 10.0)
    console.print(f"target: CR ≥ 40 at PRDN 10 %: autoencoder {'%.1f' % at10 if at10 else 'outside its range'}")
    anchors = [(p, c) for p, c in DWT_ANCHORS]
    for prdn in PRDN_GRID:  # both curves interpolated (log-log) at the same PRDN
        cr, ref, anchor = interpolate_cr(ae, prdn), interpolate_cr(dwt, prdn), interpolate_cr(anchors, prdn)
        fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
        ratio = f"{cr / ref:.2f}×" if cr and ref else "n/a"
        console.print(f"target: CR ≥ 1.5× DWT at PRDN {prdn:g} %: autoencoder {fmt(cr)} vs DWT (this run) {fmt(ref)} "
                      f"= {ratio}; vs the anchors' DWT {fmt(anchor)}")
    for d in deltas:
        nl = next(r for r in rows if r["method"] == "biocompress near-lossless" and r["setting"] == f"δ={d:g} µV")
        dp = next(r for r in rows if r["method"] == "DPCM near-lossless" and r["setting"] == f"δ={d:g} µV")
        console.print(f"near-lossless δ = {d:g} µV: CR {nl['cr']:.2f} vs DPCM {dp['cr']:.2f} = "
                      f"{nl['cr'] / dp['cr']:.2f}× (target ≥ 1.3× at 1 µV); max error {nl['max_abs_error_uv']:.3f} µV")
    speed = speed_64ch_1khz(recs[0])
    console.print(f"speed: encoder + decoder, 64 channels, one thread: {speed:.2f} M samples/s = "
                  f"{speed * 1e6 / 64000:.1f}× real time at 1 kHz (target ≥ 20×)")
    if a.csv:
        write_rows_csv(a.csv, rows)
        console.print(f"CSV written to {a.csv}")
    if a.plot:
        plot(rows, a.plot)
        console.print(f"plot written to {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
