"""Wrappers for external lossless codecs, run under the rules of the project's anchor figures.

Every wrapper sees the same integer sample codes (int64, shape (n_channels, n_samples)) and
their native width (16, 24 or 32 bits), decodes what it encoded and raises
:class:`RoundTripError` unless the result equals the input exactly. A codec that cannot handle a
given input raises :class:`CodecSkipped` with the reason.

Timings are wall-clock of the whole encode / decode, single thread. For the command-line
tools the input files are written to a tmpfs before the clock starts, and the timings are the
sum of the per-channel subprocess calls (run sequentially).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEF3_TDAT_HEADER_BYTES = 1024


@dataclass
class Result:
    compressed_bytes: int
    encode_s: float
    decode_s: float
    peak_mem_bytes: int | None = None  # None where not measured
    mem_method: str = ""


class CodecSkipped(Exception):
    """The codec cannot handle this input (e.g. a sample width it does not support)."""


class RoundTripError(AssertionError):
    """The decoded samples differ from the input."""


# --------------------------------------------------------------------------- sample packing


def _check_range(codes: np.ndarray, bits: int) -> None:
    if bits not in (16, 24, 32):
        raise ValueError(f"unsupported native width {bits} bits")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"codes in [{codes.min()}, {codes.max()}] do not fit {bits}-bit signed")


def pack(a: np.ndarray, bits: int) -> bytes:
    """Little-endian signed samples at native width, in the order of ``a`` (C order)."""
    if bits == 16:
        return np.ascontiguousarray(a, dtype="<i2").tobytes()
    if bits == 32:
        return np.ascontiguousarray(a, dtype="<i4").tobytes()
    b = np.ascontiguousarray(a, dtype="<i4").view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(b[:, :3]).tobytes()


def unpack(buf: bytes, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    if bits == 16:
        out = np.frombuffer(buf, dtype="<i2")
    elif bits == 32:
        out = np.frombuffer(buf, dtype="<i4")
    else:
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3)
        wide = np.empty((b.shape[0], 4), dtype=np.uint8)
        wide[:, :3] = b
        wide[:, 3] = np.where(b[:, 2] & 0x80, 0xFF, 0)  # sign extension
        out = wide.view("<i4").ravel()
    return out.astype(np.int64).reshape(shape)


def check_equal(name: str, expected: np.ndarray, got: np.ndarray) -> None:
    if expected.shape != got.shape or not np.array_equal(expected, got):
        raise RoundTripError(f"{name}: decoded samples differ from the input")


def _tmp_root() -> str | None:
    """A tmpfs if there is one, so file I/O does not pollute the timings."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


# --------------------------------------------------------------------------- base classes


class Codec:
    name = ""

    def available(self) -> tuple[bool, str]:
        return True, ""

    def run(self, codes: np.ndarray, bits: int, *, sfreq: float | None = None) -> Result:
        raise NotImplementedError


class _InterleavedCodec(Codec):
    """A general-purpose byte compressor on the time-interleaved samples at native width."""

    def compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decompress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def run(self, codes, bits, *, sfreq=None):
        _check_range(codes, bits)
        interleaved = codes.T  # (n_samples, n_channels): sample-major
        t0 = time.perf_counter()
        payload = self.compress(pack(interleaved, bits))
        t1 = time.perf_counter()
        back = unpack(self.decompress(payload), bits, interleaved.shape)
        t2 = time.perf_counter()
        check_equal(self.name, interleaved, back)
        return Result(len(payload), t1 - t0, t2 - t1)


class Gzip9(_InterleavedCodec):
    name = "gzip9"

    def compress(self, data):
        return gzip.compress(data, compresslevel=9, mtime=0)

    def decompress(self, data):
        return gzip.decompress(data)


class Bzip2(_InterleavedCodec):
    name = "bzip2"

    def compress(self, data):
        return bz2.compress(data, 9)

    def decompress(self, data):
        return bz2.decompress(data)


class Xz9e(_InterleavedCodec):
    name = "xz9e"

    def compress(self, data):
        return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)

    def decompress(self, data):
        return lzma.decompress(data)


class Zstd19(_InterleavedCodec):
    """``zstandard`` package if installed, else the ``zstd`` CLI through pipes."""

    name = "zstd19"

    def __init__(self):
        try:
            import zstandard
        except ImportError:
            zstandard = None
        self._zstd = zstandard
        self._cli = shutil.which("zstd")

    def available(self):
        if self._zstd is None and self._cli is None:
            return False, "neither the zstandard package nor the zstd CLI found: pip install zstandard"
        return True, ""

    def compress(self, data):
        if self._zstd is not None:
            return self._zstd.ZstdCompressor(level=19, threads=0).compress(data)
        return subprocess.run([self._cli, "-19", "-q", "-c", "--single-thread"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout

    def decompress(self, data):
        if self._zstd is not None:
            return self._zstd.ZstdDecompressor().decompress(data)
        return subprocess.run([self._cli, "-d", "-q", "-c"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout


# --------------------------------------------------------------------------- Python packages


class Mtscomp(Codec):
    """mtscomp defaults (1 s chunks, first differences along time, zlib).

    Only the ``.cbin`` is counted, not the ``.ch`` JSON (chunk offsets etc., ~1-6 kB), as in the
    anchors. 24-bit codes have no numpy dtype, so they are handed over in int32 containers (the
    ratio is still against the 3-byte native size; this too reproduces the anchors).
    """

    name = "mtscomp"

    def available(self):
        try:
            import mtscomp  # noqa: F401
        except ImportError:
            return False, "mtscomp package not installed: pip install mtscomp"
        return True, ""

    def run(self, codes, bits, *, sfreq=None):
        import mtscomp

        if not sfreq:
            raise CodecSkipped("mtscomp needs the sample rate")
        _check_range(codes, bits)
        dtype = np.int16 if bits == 16 else np.int32
        with tempfile.TemporaryDirectory(dir=_tmp_root()) as tmp:
            raw, cbin, ch = (Path(tmp) / n for n in ("x.bin", "x.cbin", "x.ch"))
            np.ascontiguousarray(codes.T, dtype=dtype).tofile(raw)
            t0 = time.perf_counter()
            # Integrity checks off: we check the result ourselves, outside the clock.
            mtscomp.compress(raw, cbin, ch, sample_rate=float(sfreq), n_channels=codes.shape[0],
                             dtype=dtype, n_threads=1, check_after_compress=False, quiet=True)
            t1 = time.perf_counter()
            reader = mtscomp.decompress(cbin, ch, n_threads=1, check_after_decompress=False,
                                        quiet=True)
            back = np.asarray(reader[:]).T.astype(np.int64)
            reader.close()
            t2 = time.perf_counter()
            size = cbin.stat().st_size
        check_equal(self.name, codes, back)
        return Result(size, t1 - t0, t2 - t1)


class Mef3Red(Codec):
    """MEF 3.0 RED via mef3io ``Writer.write_int32``; ``.tdat`` bytes less their header."""

    name = "mef3_red"

    def available(self):
        try:
            import mef3io  # noqa: F401
        except ImportError:
            return False, "mef3io package not installed: pip install mef3io"
        return True, ""

    def run(self, codes, bits, *, sfreq=None):
        import mef3io

        if not sfreq:
            raise CodecSkipped("MEF 3 needs the sample rate")
        _check_range(codes, bits)  # <= 32 bits, so int32 counts are exact
        start_uutc = 946_684_800_000_000  # 2000-01-01; any fixed start will do
        names = [f"ch{i:04d}" for i in range(codes.shape[0])]
        counts = np.ascontiguousarray(codes, dtype=np.int32)
        with tempfile.TemporaryDirectory(dir=_tmp_root()) as tmp:
            session = Path(tmp) / "bench.mefd"
            t0 = time.perf_counter()
            with mef3io.Writer(str(session), overwrite=True, n_threads=1) as w:
                for name, x in zip(names, counts):
                    w.write_int32(name, x, 1.0, start_uutc, float(sfreq))
            t1 = time.perf_counter()
            with mef3io.Reader(str(session), n_threads=1, warn_declarations=False) as r:
                back = np.stack([r.read_raw(name)["samples"] for name in names]).astype(np.int64)
            t2 = time.perf_counter()
            size = sum(p.stat().st_size - MEF3_TDAT_HEADER_BYTES for p in session.rglob("*.tdat"))
        check_equal(self.name, codes, back)
        return Result(size, t1 - t0, t2 - t1)


# --------------------------------------------------------------------------- command-line tools


GNU_TIME = "/usr/bin/time"


def _call(cmd: list[str]) -> float:
    """Run ``cmd``; return its wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise subprocess.CalledProcessError(proc.returncode, cmd, stderr="\n".join(msg[-5:]))
    return elapsed


def _peak_rss(cmd: list[str]) -> int | None:
    """Peak resident memory of ``cmd`` in bytes, through GNU time.

    Not from our own wait4: Linux carries the parent's peak RSS over fork+exec, so a child of
    this (large) Python process would report our peak, not its own.
    """
    if not os.access(GNU_TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r", dir=_tmp_root()) as f:
        _call([GNU_TIME, "-o", f.name, "-f", "%M", *cmd])
        return int(f.read().split()[-1]) * 1024


class _PerChannelCLI(Codec):
    """One mono raw stream per channel, one process per channel, run sequentially."""

    tools: tuple[str, ...] = ()
    install_hint = ""
    suffix = ""

    def available(self):
        missing = [t for t in self.tools if shutil.which(t) is None]
        if missing:
            return False, f"{', '.join(missing)} CLI not found: {self.install_hint}"
        return True, ""

    def encode_cmd(self, raw: Path, out: Path, bits: int, rate: int) -> list[str]:
        raise NotImplementedError

    def decode_cmd(self, comp: Path, out: Path) -> list[str]:
        raise NotImplementedError

    def run(self, codes, bits, *, sfreq=None):
        _check_range(codes, bits)
        rate = max(1, int(round(sfreq))) if sfreq else 1000  # only stored in the header
        enc_s = dec_s = 0.0
        size, peak = 0, None
        back = np.empty_like(codes)
        with tempfile.TemporaryDirectory(dir=_tmp_root()) as tmp:
            tmp = Path(tmp)
            raws = [tmp / f"c{i}.raw" for i in range(codes.shape[0])]
            for raw, x in zip(raws, codes):
                raw.write_bytes(pack(x, bits))
            for i, raw in enumerate(raws):
                comp, out = tmp / f"c{i}{self.suffix}", tmp / f"c{i}.out"
                try:
                    enc_s += _call(self.encode_cmd(raw, comp, bits, rate))
                except subprocess.CalledProcessError as e:
                    raise CodecSkipped(f"{self.tools[0]} refused {bits}-bit input: {e.stderr}") from e
                size += comp.stat().st_size
                dec_s += _call(self.decode_cmd(comp, out))
                back[i] = unpack(out.read_bytes(), bits, (codes.shape[1],))
                if i == 0:  # memory from one extra, untimed pass over the first channel
                    peak = max(_peak_rss(self.encode_cmd(raw, comp, bits, rate)) or 0,
                               _peak_rss(self.decode_cmd(comp, out)) or 0) or None
                for p in (raw, comp, out):
                    p.unlink()
        check_equal(self.name, codes, back)
        return Result(size, enc_s, dec_s, peak, "peak RSS of one process (GNU time)" if peak else "")


class Flac8(_PerChannelCLI):
    name = "flac8"
    tools = ("flac",)
    install_hint = "apt-get install flac"
    suffix = ".flac"

    def encode_cmd(self, raw, out, bits, rate):
        return ["flac", "-8", "--no-padding", "--no-seektable", "-s", "-f",
                "--force-raw-format", "--endian=little", "--sign=signed", "--channels=1",
                f"--bps={bits}", f"--sample-rate={rate}", "-o", str(out), str(raw)]

    def decode_cmd(self, comp, out):
        return ["flac", "-d", "-s", "-f", "--force-raw-format", "--endian=little",
                "--sign=signed", "-o", str(out), str(comp)]


class _WavPack(_PerChannelCLI):
    tools = ("wavpack", "wvunpack")
    install_hint = "apt-get install wavpack"
    suffix = ".wv"
    mode: tuple[str, ...] = ()

    def encode_cmd(self, raw, out, bits, rate):
        return ["wavpack", *self.mode, "-q", "-y", f"--raw-pcm={rate},{bits}s,1,le",
                str(raw), "-o", str(out)]

    def decode_cmd(self, comp, out):
        return ["wvunpack", "-q", "-y", "--raw", str(comp), "-o", str(out)]


class WavPackHHx6(_WavPack):
    name = "wavpack_hhx6"
    mode = ("-hh", "-x6")


class WavPackHH(_WavPack):
    name = "wavpack_hh"
    mode = ("-hh",)


ALL_CODECS: dict[str, type[Codec]] = {
    c.name: c for c in (Gzip9, Bzip2, Xz9e, Zstd19, Mtscomp, Mef3Red, Flac8, WavPackHHx6, WavPackHH)
}


def make_codecs(names=None) -> list[Codec]:
    """Instances of the named codecs (all of them by default), in the order given."""
    names = list(ALL_CODECS) if names is None else list(names)
    unknown = [n for n in names if n not in ALL_CODECS]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; known: {list(ALL_CODECS)}")
    return [ALL_CODECS[n]() for n in names]
