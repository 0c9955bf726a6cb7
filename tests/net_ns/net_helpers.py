"""What the socket tests of tests/net_ns share: the namespace check, a link that fails on demand,
a hand-driven sender (not a test file). The streams themselves come from tests/net_streams.py."""

from __future__ import annotations

from net_streams import COUNTER, REPO, Recording, frame_bytes, stream_frames  # noqa: F401 - re-exported


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
