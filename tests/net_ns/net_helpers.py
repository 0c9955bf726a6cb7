"""Streams for the network tests: a data_samples recording with a counter channel, pushed
through the live pipeline into any sink (not a test file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import journal_child  # tests/ (on the path, as the folder of the suite's conftest)
import mne
import numpy as np

from biocompress.container.description import StreamDescription
from biocompress.container.reader import sample_bytes, times_bytes
from biocompress.io import scaling
from biocompress.stream.blocks import Chunk
from biocompress.stream.encoder import StreamEncoder

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "data_samples" / "Subject00_2.edf"  # 21 channels, 500 Hz, 62 s
BLOCK = 1024
COUNTER = "counter"


class Recording:
    """The recording plus a last channel ``counter`` = 0, 1, 2, … (samples), its timestamps,
    recipe, value kinds and stream description."""

    def __init__(self, seconds: float | None = None, timestamps: bool = True):
        raw = mne.io.read_raw_edf(RECORDING, preload=True, verbose="ERROR")
        if seconds is not None:
            raw.crop(0, seconds, include_tmax=False)
        n = raw.n_times
        recipe = scaling.recipe_for(raw)
        counter = mne.io.RawArray(np.arange(n, dtype=np.float64)[np.newaxis],
                                  mne.create_info([COUNTER], raw.info["sfreq"], "misc"), verbose="ERROR")
        raw.add_channels([counter], force_update_info=True)
        self.raw = raw
        self.x = raw.get_data()
        identity = {name: 1.0 if f"mul:{name}" in recipe.steps else 0.0 for name in recipe.params}
        self.recipe = scaling.Recipe(recipe.steps, {name: np.append(v, identity[name]) for name, v in recipe.params.items()})
        self.kinds = scaling.detect_kinds(self.recipe, self.x)
        self.stamps = journal_child.stream_timestamps(n, raw.info["sfreq"], 100) if timestamps else None
        self.description = StreamDescription(
            info=raw.info, recipe=self.recipe, kinds=self.kinds, block_samples=BLOCK, source={"test": "net"},
            annotations=raw.annotations, clock="lsl" if timestamps else None,
            stream={"name": "net-test", "type": "EEG", "source_id": "net-test"})

    @property
    def n(self) -> int:
        return self.x.shape[1]

    def encoder(self) -> StreamEncoder:
        from biocompress.stream.plans import lossless_lanes, times_lane

        lanes = lossless_lanes(self.kinds, self.recipe, BLOCK, 32)
        if self.stamps is not None:
            lanes.append(times_lane(BLOCK, self.raw.info["sfreq"]))
        return StreamEncoder(lanes)

    def digests(self, n: int | None = None) -> dict:
        n = self.n if n is None else n
        return {"samples_sha256": hashlib.sha256(sample_bytes(self.x[:, :n])).hexdigest(),
                "times_sha256": None if self.stamps is None else hashlib.sha256(times_bytes(self.stamps[:n])).hexdigest()}

    def push(self, sink, *, chunk: int = 25, flush_every: int = 2, stop: int | None = None, between=None,
             markers: bool = True) -> int:
        """Push samples [0, stop) in chunks of ``chunk`` samples (50 ms at 500 Hz), flushing the
        encoder every ``flush_every`` chunks, as a live pipeline does; ``between(s)`` runs after
        each chunk (a test's hook). Returns the samples pushed."""
        stop = self.n if stop is None else stop
        encoder = self.encoder()
        for k, s in enumerate(range(0, stop, chunk)):
            e = min(stop, s + chunk)
            stamps = None if self.stamps is None else self.stamps[s:e]
            for block in encoder.push(Chunk(s, self.x[:, s:e], stamps)):
                sink.add(block)
            if k % flush_every == flush_every - 1:
                for block in encoder.flush():
                    sink.add(block)
                sink.flush()
            if markers and s // 5000 != e // 5000:
                sink.add_markers([e / self.raw.info["sfreq"]], [0.0], [f"marker {e}"],
                                 timestamps=None if stamps is None else [stamps[-1]])
                if stamps is not None:
                    sink.add_clock(stamps[-1], -0.001 * k)
            if between is not None:
                between(e)
        for block in encoder.finish():
            sink.add(block)
        return stop


# --- the namespace --------------------------------------------------------------------
def require_namespace() -> None:
    """Refuse to run anywhere but a network namespace that has nothing but loopback."""
    import socket

    import pytest

    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        pytest.exit(f"tests/net_ns open sockets and run only inside a network namespace with nothing but "
                    f"loopback (tests/test_net_namespace.py starts them there); this one has {interfaces}",
                    returncode=4)


def wait_until(predicate, timeout: float = 30.0, what: str = "a condition") -> None:
    """Poll ``predicate`` every 10 ms; AssertionError after ``timeout`` seconds (a hang guard, not
    a timing assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


# --- a link that fails on demand ------------------------------------------------------
class FlakyLink:
    """A TCP relay on 127.0.0.1 in front of a receiver, run on its own thread: ``hold("replies")``
    drops what the receiver says (acknowledgements) on its way to the sender, ``hold("frames")``
    drops what the sender sends; ``cut()`` closes every connection through it (and ends the
    hold), ``close()`` stops it."""

    def __init__(self, target_port: int):
        import asyncio
        import threading

        self.target_port = target_port
        self.holding: str | None = None
        self.cuts = 0
        self._pairs: list = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.port = self._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.append(pair)
        await asyncio.gather(self._copy(reader, up_writer, False), self._copy(up_reader, writer, True),
                             return_exceptions=True)
        for w in pair:
            w.close()

    async def _copy(self, reader, writer, replies: bool) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            if self.holding == ("replies" if replies else "frames"):
                continue  # lost on the way
            writer.write(data)
            await writer.drain()

    def hold(self, what: str) -> None:
        assert what in ("replies", "frames")
        self.holding = what

    def cut(self) -> None:
        import asyncio

        def cut_all():
            for pair in self._pairs:
                for w in pair:
                    w.transport.abort()
            self._pairs.clear()
            self.holding = None

        asyncio.run_coroutine_threadsafe(_call(cut_all), self._loop).result(10)
        self.cuts += 1

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _call(fn):
    fn()


# --- raw protocol clients -------------------------------------------------------------
class RawClient:
    """A hand-driven sender: blocking socket, frames written and read by hand."""

    def __init__(self, port: int, timeout: float = 10.0):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self):
        """The next frame from the receiver, or None when it closed the connection."""
        from biocompress.container import frames

        head = self._exactly(frames.HEAD.size)
        if head is None:
            return None
        h = frames.parse_header(head, 1 << 20)
        payload = self._exactly(h.length) if h.length else b""
        return h.check(payload)

    def _exactly(self, n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            try:
                got = self.sock.recv(n - len(out))
            except ConnectionResetError:
                return None
            if not got:
                return None
            out += got
        return out

    def handshake(self, secret: bytes | None = None, session: str | None = None) -> dict:
        """CHALLENGE, HELLO, WELCOME; returns WELCOME's fields."""
        from biocompress.stream import net_protocol as proto
        from biocompress.stream.net_protocol import NetType

        challenge = proto.parse_challenge(self.read_frame())
        session = session or proto.new_session()
        nonce = proto.new_nonce()
        mac = None if secret is None else proto.hello_mac(secret, challenge["nonce"], nonce, session).hex()
        self.send(proto.control(NetType.HELLO, {"protocol": proto.PROTOCOL, "session": session,
                                                "nonce": nonce.hex(), "mac": mac}))
        frame = self.read_frame()
        assert frame is not None and frame.kind == NetType.WELCOME, frame
        return proto.parse_welcome(frame)

    def close(self) -> None:
        self.sock.close()


# --- a stream's frames, for hand-driven senders -----------------------------------------
class _Frames:
    def __init__(self):
        self.frames: list[tuple[int, bytes]] = []

    def write(self, kind, payload: bytes) -> None:
        self.frames.append((int(kind), payload))


def stream_frames(rec: Recording) -> list[tuple[int, bytes]]:
    """(type, payload) of every frame a sender sends for ``rec``: HEADER first, END last."""
    from biocompress.container import frames
    from biocompress.container.frame_sink import FrameSink
    from biocompress.container.frames import FrameType

    out = _Frames()
    out.write(FrameType.HEADER, frames.json_payload(rec.description.to_dict()))
    sink = FrameSink(rec.description, out)
    sink.flush = lambda: None
    rec.push(sink)
    sink.end(**rec.digests())
    return out.frames


def frame_bytes(frames_list, start: int, stop: int) -> bytes:
    from biocompress.container import frames

    return b"".join(frames.encode(kind, seq, payload) for seq, (kind, payload) in
                    enumerate(frames_list[:stop]) if seq >= start)
