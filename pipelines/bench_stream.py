"""Benchmark of the live pipeline (issue 11, item 8): LSL outlet → ``stream`` → network → ``receive``.

For each configuration (64 ch @ 1 kHz, 256 ch @ 2 kHz, float32 µV plus a ``counter`` channel)
and mode (lossless, lossy), a real recording of the corpus, channels tiled (each copy shifted
in time, so that no two channels are equal) and resampled to the rate, is published as an
LSL outlet in real time in chunks of ``--chunk-ms`` (biocompress's Replay); the recorder of
``biocompress stream`` (LSL source → stream encoder → NetworkSink) sends it through a TCP
proxy to an in-process Receiver that writes the archive and decodes every sample. Measured:

- latency from the push of a sample at the outlet to its decoded value at the receiver
  (p50 / p99 over every sample; both clocks are this process's ``time.monotonic``);
- the encoder's real-time factor: seconds of signal per CPU second the stream encoder
  spends (``StreamEncoder.push/flush/finish``, thread CPU time, one core), and the same for
  the recorder's whole thread (LSL pulls, framing, the sink);
- bytes on the wire (everything the sender wrote, handshakes and resends included) against
  the raw float32 samples;
- lost and duplicated samples, from the counter channel of the decoded stream, across one
  forced reconnection: the proxy resets the TCP connection half-way through each run (the
  sender reconnects and resends from its buffer);
- the archive the receiver wrote, against the XDF file LabRecorder would have written for
  the same samples and timestamps (every sample's 8-byte timestamp, chunks of 0.5 s; written
  with biocompress.io.xdf_write), that XDF gzip-compressed (.xdfz), and ``compress`` of that
  XDF file (lossless runs).

It opens sockets and LSL streams, so it runs only inside a network namespace holding
nothing but loopback, with the LSL configuration the tests use (it refuses anything else).
From the repository root::

    printf '[ports]\\nIPv6 = disable\\n[lab]\\nKnownPeers = {127.0.0.1}\\n[log]\\nlevel = -2\\n' > /tmp/lsl_api.cfg
    LSLAPICFG=/tmp/lsl_api.cfg PYTHONPATH=$PWD unshare -n sh -c \\
      'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo \\
       && exec python pipelines/bench_stream.py --duration 60'

(``unshare -n`` needs root or user namespaces.) Not a test: nothing is asserted; the table
says which target each figure meets.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS = Path("/work/shared/corpus")
SOURCES = {  # (channels, rate) → the recording its signal comes from
    (64, 1000.0): CORPUS / "ieeg" / "sample_seeg.edf",
    (256, 2000.0): CORPUS / "highrate" / "test_eximia.nxe",
}
LOSSY_QUALITY = 3
TARGETS = {"lossless": {"p99_ms": 100.0, "rtf": 50.0}, "lossy": {"p99_ms": 300.0, "rtf": 10.0}}
SHIFT_S = 1.7  # each copy of the recording's channels is shifted in time by this much more
REQUIRED_CONFIG = ("KnownPeers = {127.0.0.1}", "IPv6 = disable")


def refusal() -> str | None:
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        return f"network interfaces besides loopback: {interfaces}"
    config = os.environ.get("LSLAPICFG")
    if not config or not Path(config).is_file():
        return "LSLAPICFG does not name an LSL configuration file"
    text = Path(config).read_text()
    missing = [line for line in REQUIRED_CONFIG if line not in text]
    return f"the LSL configuration lacks {missing}" if missing else None


# --- the signal ----------------------------------------------------------------------------------
def signal(n_ch: int, sfreq: float):
    """(RawArray in volts, where it came from): the recording's EEG channels resampled to
    ``sfreq``, tiled to ``n_ch`` channels, each copy shifted in time by SHIFT_S more."""
    import mne

    path = SOURCES[(n_ch, sfreq)]
    raw = mne.io.read_raw(path, preload=True, verbose="error").pick("eeg")
    native = raw.info["sfreq"]
    if native != sfreq:
        raw.resample(sfreq, verbose="error")
    x = raw.get_data()
    shift = int(SHIFT_S * sfreq)
    rows = [np.roll(x[k % len(x)], (k // len(x)) * shift) for k in range(n_ch)]
    data = np.stack(rows).astype(np.float32).astype(np.float64)  # what a float32 amplifier could send
    info = mne.create_info([f"EEG{k:03d}" for k in range(n_ch)], sfreq, "eeg")
    where = (f"{path.relative_to(CORPUS)} ({len(x)} EEG ch @ {native:g} Hz, {x.shape[1] / sfreq:.1f} s"
             f"{f', resampled to {sfreq:g} Hz' if native != sfreq else ''}; tiled to {n_ch} ch, looped)")
    return mne.io.RawArray(data, info, verbose="error"), where


# --- a TCP proxy that can reset its connections -------------------------------------------------
class DroppingProxy:
    """127.0.0.1:<port> → the receiver; ``drop()`` resets every connection it carries."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port: int | None = None
        self.drops = 0
        self._transports: list = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxy", daemon=True)

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self.port

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        for w in (writer, up_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transports += [writer.transport, up_writer.transport]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    def drop(self) -> None:
        def reset():
            for t in self._transports:
                t.abort()
            self._transports.clear()

        self.drops += 1
        self._loop.call_soon_threadsafe(reset)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# --- one run ---------------------------------------------------------------------------------------
@dataclass
class Result:
    config: str
    mode: str
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    rtf_encoder: float
    rtf_thread: float
    wire_bytes: int
    raw_bytes: int
    lost: int
    duplicated: int
    reconnects: int
    resent: int
    archive_bytes: int
    xdf_bytes: int
    xdfz_bytes: int
    compress_bytes: int | None


class TimedEncoder:
    """Thread CPU time the stream encoder's calls take, summed over every instance."""

    cpu = 0.0

    @classmethod
    def wrap(cls, base):
        class Timed(base):
            def push(self, chunk):
                return cls._timed(super().push, chunk)

            def flush(self):
                return cls._timed(super().flush)

            def finish(self):
                return cls._timed(super().finish)

        return Timed

    @classmethod
    def _timed(cls, call, *args):
        t = time.thread_time()
        try:
            return call(*args)
        finally:
            cls.cpu += time.thread_time() - t


def run_one(n_ch: int, sfreq: float, mode: str, duration: float, chunk_ms: float, work: Path, drop: bool,
            compress_xdf_too: bool) -> tuple[Result, str]:
    from biocompress.stream import live
    from biocompress.stream.live import COUNTER_MODULUS
    from biocompress.stream.net import NetworkSink
    from biocompress.stream.net_receive import Receiver
    from biocompress.stream.record import record
    from biocompress.stream.replay import Replay

    raw, where = signal(n_ch, sfreq)
    name = f"bench-{n_ch}x{sfreq:g}-{mode}"
    chunk = max(1, round(chunk_ms * sfreq / 1000))
    pushes = np.zeros(int((duration + 30) * sfreq / chunk) + 16, np.int64)  # samples pushed after each push
    push_at = np.zeros(pushes.size)
    n_pushes = [0]

    def on_chunk(pushed: int) -> None:
        i = n_pushes[0]
        if i < pushes.size:
            pushes[i], push_at[i] = pushed, time.monotonic()
            n_pushes[0] = i + 1

    received: list[tuple[np.ndarray, float]] = []  # (counter values, decoded_at)
    stamps: list[np.ndarray] = []

    def on_samples(got, decoded_at: float) -> None:
        received.append((np.rint(got.values[-1]).astype(np.int64), decoded_at))
        if got.timestamps is not None:
            stamps.append(np.asarray(got.timestamps, np.float64))

    archive = work / f"{name}.bc.h5"
    receiver = Receiver(output=archive, on_samples=on_samples)
    receiver.start()
    proxy = DroppingProxy(receiver.address[1])
    port = proxy.start()
    sent_frames = {"n": 0}
    sink = NetworkSink("127.0.0.1", port, on_sent=lambda *a: sent_frames.__setitem__("n", sent_frames["n"] + 1))

    replay = Replay(raw, name, chunk_size=chunk, loop=True, counter=True, markers=False)
    stop_replay = threading.Event()
    publisher = threading.Thread(target=replay.run, args=(stop_replay,),
                                 kwargs={"wait_for_consumer": 30, "on_chunk": on_chunk}, daemon=True)
    publisher.start()
    dropper = None
    if drop:
        dropper = threading.Timer(duration / 2, proxy.drop)
        dropper.start()

    TimedEncoder.cpu = 0.0
    plain = live.StreamEncoder
    live.StreamEncoder = TimedEncoder.wrap(plain)
    cpu0 = time.thread_time()
    try:
        end = record(name, sink=sink, mode=mode, quality=LOSSY_QUALITY if mode == "lossy" else None,
                         duration=duration, timeout=30)
    finally:
        live.StreamEncoder = plain
        thread_cpu = time.thread_time() - cpu0
        stop_replay.set()
        if dropper is not None:
            dropper.cancel()
    if not receiver.wait(120 + duration):  # finalizing codes the whole stream again: about its length at most
        print(f"warning: the receiver had not finalized {archive.name} after {120 + duration:g} s", flush=True)
    receiver.stop()
    publisher.join(10)
    proxy.stop()
    wire = sink.stats

    n = int(end["n_samples"])
    counters = np.concatenate([c for c, _ in received]) if received else np.zeros(0, np.int64)
    decoded_at = np.concatenate([np.full(len(c), t) for c, t in received]) if received else np.zeros(0)
    expected = np.arange(n) % COUNTER_MODULUS
    unique = np.unique(counters)
    duplicated = int(len(counters) - len(unique))
    lost = int(n - np.isin(expected, unique).sum())
    in_order = len(counters) == n and np.array_equal(counters, expected)
    # Latency: sample n was pushed by the first push after which more than n samples were out.
    k = np.searchsorted(pushes[: n_pushes[0]], np.arange(len(counters)), side="right")
    valid = k < n_pushes[0]
    latency = (decoded_at[valid] - push_at[k[valid]]) * 1000
    p50, p99, worst = (np.percentile(latency, [50, 99]).tolist() + [float(latency.max())]) if latency.size \
        else (float("nan"),) * 3
    seconds = n / sfreq
    if drop and latency.size:  # the same before the forced reconnection (samples pushed 0.5 s before it, or earlier)
        early = push_at[k[valid]] < push_at[0] + duration / 2 - 0.5
        p99_before = float(np.percentile(latency[early], 99)) if early.any() else float("nan")
    else:
        p99_before = p99
    pushed = push_at[k[valid]] - push_at[0] if latency.size else np.zeros(0)
    by_second = {}  # the slowest sample pushed in each of the first seconds: where a p99 comes from
    for s0 in range(3):
        window = (pushed >= s0) & (pushed < s0 + 1)
        by_second[s0] = float(latency[window].max()) if window.any() else float("nan")
    later = pushed >= 3.0
    p99_after_3s = float(np.percentile(latency[later], 99)) if later.any() else float("nan")

    raw_bytes = n * (n_ch + 1) * 4
    xdf = work / f"{name}.xdf"
    t = np.concatenate(stamps)[:n] if stamps else replay.stamp(np.arange(n))
    write_labrecorder_xdf(xdf, raw, n, sfreq, t, name)
    xdfz = gzip_size(xdf)
    compressed = None
    if compress_xdf_too and mode == "lossless":
        from biocompress.files.compress_xdf import compress_xdf

        compressed = compress_xdf(xdf, work / f"{name}.xdf.bc.h5", overwrite=True).stat().st_size
    xdf_bytes = xdf.stat().st_size
    xdf.unlink()

    notes = (f"{n_ch} ch @ {sfreq:g} Hz {mode}: signal from {where}; chunks of {chunk} samples; "
             f"{n} samples recorded (stop: {end['stop']}), delivered in order: {in_order}; "
             f"sender frames handed to the socket: {sent_frames['n']}; receiver: "
             f"{ {k: receiver.result.get(k) for k in ('complete', 'frames', 'duplicates', 'reconnects')} }; "
             f"recorder's own counter check: lost {end['lost']} dup {end['duplicated']}; "
             f"p99 latency of the samples pushed before the forced reconnection: {p99_before:.1f} ms; "
             f"slowest sample pushed in second 0, 1, 2: "
             f"{', '.join(f'{v:.0f}' for v in by_second.values())} ms; p99 from second 3 on: {p99_after_3s:.1f} ms")
    result = Result(f"{n_ch} ch @ {sfreq / 1000:g} kHz", mode, seconds, p50, p99, worst,
                    seconds / TimedEncoder.cpu if TimedEncoder.cpu else float("inf"),
                    seconds / thread_cpu if thread_cpu else float("inf"),
                    int(wire.get("bytes_sent", 0)), raw_bytes, lost, duplicated, int(wire.get("reconnects", 0)),
                    int(wire.get("frames_resent", 0)), archive.stat().st_size if archive.exists() else 0,
                    xdf_bytes, xdfz, compressed)
    return result, notes


def write_labrecorder_xdf(path: Path, raw, n: int, sfreq: float, timestamps: np.ndarray, name: str) -> None:
    """The XDF file LabRecorder would write for the samples pushed (µV float32 + the counter)
    and their timestamps: every timestamp written, chunks of half a second."""
    from biocompress.io import xdf_write as w
    from biocompress.stream.live import COUNTER_MODULUS

    x = raw.get_data()
    idx = np.arange(n) % x.shape[1]
    values = np.empty((n, x.shape[0] + 1), np.float32)
    values[:, :-1] = (x[:, idx] * 1e6).T
    values[:, -1] = np.arange(n) % COUNTER_MODULUS
    channels = [{"label": c, "type": "EEG", "unit": "microvolts"} for c in raw.ch_names]
    channels.append({"label": "counter", "type": "stim", "unit": "none"})
    header = w.stream_header_xml(name, "EEG", values.shape[1], sfreq, "float32", f"biocompress-replay-{name}",
                                 channels)
    stream = w.StreamToWrite(1, header, "float32", sfreq, values.shape[1], values, timestamps,
                             np.zeros(0), np.zeros(0), w.stream_footer_xml(timestamps))
    with open(path, "wb") as f:
        w.write_xdf(f, w.file_header_xml(time.strftime("%Y-%m-%dT%H:%M:%S%z")), [stream],
                    chunk_samples=max(1, int(sfreq // 2)), omit_deducible=False)


def gzip_size(path: Path) -> int:
    out = path.with_suffix(".xdfz")
    with open(path, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
        while data := src.read(1 << 22):
            dst.write(data)
    size = out.stat().st_size
    out.unlink()
    return size


# --- the table -------------------------------------------------------------------------------------
def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(results: list[Result]) -> str:
    head = ("| config | mode | s | p50 ms | p99 ms (target) | max ms | encoder RTF (target) | recorder-thread RTF "
            "| wire / raw | lost | dup (target 0) | reconnects, frames resent | archive | XDF | .xdfz | compress(XDF) "
            "| archive/XDF | archive/.xdfz |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        t = TARGETS[r.mode]
        mb = lambda b: f"{b / 1e6:.2f} MB" if b is not None else "–"
        lines.append(
            f"| {r.config} | {r.mode} | {r.seconds:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} (≤ {t['p99_ms']:g}: "
            f"{mark(r.p99_ms <= t['p99_ms'])}) | {r.max_ms:.1f} | {r.rtf_encoder:.1f}× (≥ {t['rtf']:g}×: "
            f"{mark(r.rtf_encoder >= t['rtf'])}) | {r.rtf_thread:.1f}× | {r.wire_bytes / r.raw_bytes:.3f} "
            f"({mb(r.wire_bytes)} / {mb(r.raw_bytes)}) | {r.lost} | {r.duplicated} ({mark(r.lost == r.duplicated == 0)}) "
            f"| {r.reconnects}, {r.resent} | {mb(r.archive_bytes)} | {mb(r.xdf_bytes)} | {mb(r.xdfz_bytes)} "
            f"| {mb(r.compress_bytes)} | {r.archive_bytes / r.xdf_bytes:.3f} | {r.archive_bytes / r.xdfz_bytes:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of stream per run (default 60)")
    parser.add_argument("--configs", default="64x1000,256x2000", help="CHANNELSxRATE, comma-separated")
    parser.add_argument("--modes", default="lossless,lossy", help="lossless and/or lossy (quality 3)")
    parser.add_argument("--chunk-ms", type=float, default=10.0, help="the outlet pushes chunks this long (10 ms)")
    parser.add_argument("--no-drop", action="store_true", help="no forced reconnection half-way")
    parser.add_argument("--no-compress-xdf", action="store_true", help="skip compress of the XDF file")
    args = parser.parse_args(argv)
    problem = refusal()
    if problem:
        print(f"bench_stream runs only in a loopback-only network namespace (see its docstring): {problem}",
              file=sys.stderr)
        return 2
    configs = [(int(c.split("x")[0]), float(c.split("x")[1])) for c in args.configs.split(",")]
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        for n_ch, sfreq in configs:
            for mode in args.modes.split(","):
                print(f"running {n_ch} ch @ {sfreq:g} Hz, {mode}, {args.duration:g} s …", flush=True)
                result, note = run_one(n_ch, sfreq, mode, args.duration, args.chunk_ms, Path(tmp), not args.no_drop,
                                       not args.no_compress_xdf)
                results.append(result)
                notes.append(note)
                print(note, flush=True)
                print(table([result]), flush=True)  # each row as soon as it is measured
    print()
    print(table(results))
    print(f"\nlatency: push at the LSL outlet → decoded sample at the receiver, every sample; encoder RTF: "
          f"signal seconds per CPU second of StreamEncoder (one core, {os.cpu_count()} cores on the machine, "
          f"shared); wire: every byte the sender wrote vs raw float32 samples (counter channel included, "
          f"timestamps not); lost/dup: the decoded counter channel, across "
          f"{'one forced TCP reset half-way' if not args.no_drop else 'no forced reconnection'}; XDF: every "
          "sample's timestamp written, as LabRecorder does; .xdfz: gzip level 6 of it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
