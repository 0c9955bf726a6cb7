"""Sending a live stream over the network: :class:`NetSink`, a sink like the journal's, and
:class:`NetworkSink`, the same for the live pipeline.

The pipeline calls the sink from its own (synchronous) loop; the connection runs on
asyncio in a background thread (:mod:`.net_link`). Every frame gets the next sequence
number and stays in a bounded buffer until the receiver acknowledges it; after a dropped
connection the sender reconnects with exponential backoff and resends from the receiver's
count, and the receiver drops what it already holds, so nothing is lost or duplicated.
When the buffer is full (the receiver gone for too long, or slower than the stream) the
sink raises :class:`~biocompress.errors.BackpressureError` instead of dropping anything
silently. See :mod:`.net_protocol` for the wire protocol.
"""

from __future__ import annotations

import weakref

from ..container import frames
from ..container.description import StreamDescription
from ..container.frame_sink import FrameSink
from ..container.frames import FrameType
from ..errors import NetworkError
from . import net_protocol as proto
from .net_link import Link, SentHook
from .sinks import FramesSink

BUFFER_BYTES = 64 << 20  # default bound of the resend buffer: about a minute of 256 ch at 2 kHz
BUFFER_FRAMES = 65536
FULL_TIMEOUT = 1.0  # seconds add() waits for room in a full buffer before raising
CONNECT_TIMEOUT = 10.0  # seconds the constructor waits for the first connection
CLOSE_TIMEOUT = 10.0  # seconds close() waits for the receiver to acknowledge the end
ACK_TIMEOUT = 10.0  # a connection whose sent frames stay unacknowledged this long is dropped and remade
BACKOFF = (0.05, 2.0)  # first and longest wait between connection attempts, in seconds


class NetSink(FrameSink):
    """A live stream's frames sent to a receiver (``biocompress receive``) at ``host:port``.

    Same calls as :class:`~biocompress.container.journal.JournalSink`: ``add(block)``,
    ``add_times``, ``add_markers``, ``add_clock``, ``note``, ``flush``, ``close``. The
    constructor connects (waiting up to ``connect_timeout`` seconds) and sends the stream
    description; a receiver that cannot be reached or refuses raises NetworkError there.

    ``secret``: the shared secret both sides must prove they know (bytes, see
    :func:`~.net_protocol.read_secret`). ``buffer_bytes`` / ``buffer_frames`` bound the
    frames kept until acknowledged; ``full_timeout``: how long ``add`` waits for room.
    ``on_sent(seq, kind, nbytes, queued_at, sent_at)`` (``time.monotonic()`` seconds) is
    called on the sender's thread as each frame is handed to the socket (resends too):
    what a benchmark needs for the time frames spend on the wire. ``stats`` counts bytes
    on the wire, resends, reconnections and what the buffer holds.
    """

    def __init__(self, host: str, port: int, description: StreamDescription, *, secret: bytes | None = None,
                 buffer_bytes: int = BUFFER_BYTES, buffer_frames: int = BUFFER_FRAMES,
                 full_timeout: float = FULL_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 close_timeout: float = CLOSE_TIMEOUT, ack_timeout: float = ACK_TIMEOUT,
                 backoff: tuple[float, float] = BACKOFF, on_sent: SentHook | None = None):
        link = Link(host, int(port), secret=secret, buffer_bytes=buffer_bytes, buffer_frames=buffer_frames,
                    full_timeout=full_timeout, ack_timeout=ack_timeout, backoff=backoff, on_sent=on_sent)
        super().__init__(description, link)
        self.close_timeout = float(close_timeout)
        self.address = f"{host}:{port}"
        link.write(FrameType.HEADER, frames.json_payload(description.to_dict()))  # frame 0
        weakref.finalize(self, link.abort)  # a sink dropped without close() stops reconnecting
        link.start(connect_timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.writer.closed:
            return False
        if isinstance(exc, NetworkError):  # the network failed: nothing more can be sent
            self.writer.abort()
            return False
        try:
            if exc is not None and not isinstance(exc, KeyboardInterrupt):
                self.note(f"recording stopped by an error: {type(exc).__name__}: {exc}")
            self.close()  # the receiver finalizes what was recorded
        except NetworkError:
            if exc is None:
                raise
        finally:
            self.writer.abort()
        return False

    @property
    def stats(self) -> dict:
        return self.writer.stats()

    def flush(self) -> None:
        """Frames go out as they are added; this only raises the error that stopped the sender,
        if any (a full buffer, a refusal)."""
        self.writer.check()

    def wait_acknowledged(self, timeout: float) -> bool:
        """Wait until the receiver holds every frame added so far; whether it does."""
        return self.writer.wait_acknowledged(timeout)

    def close(self, *, samples_sha256: str | None = None, times_sha256: str | None = None,
              fidelity: dict | None = None) -> None:
        """Send END (counts, digests when the caller has them, a lossy stream's fidelity figures),
        wait until the receiver holds everything (``close_timeout``), say BYE and stop. Raises
        NetworkError if it does not."""
        if self.writer.closed:
            return
        try:
            self.end(samples_sha256=samples_sha256, times_sha256=times_sha256, fidelity=fidelity)
        except BaseException:
            self.writer.abort()
            raise
        self.writer.finish(self.close_timeout)

    def abort(self) -> None:
        """Stop at once without ending the stream (the receiver finalizes what it holds when it stops)."""
        self.writer.abort()


def send_stream(address: str, description: StreamDescription, *, secret_file=None, **options) -> NetSink:
    """A connected :class:`NetSink` to ``HOST:PORT`` (``secret_file``: the shared secret)."""
    host, port = proto.parse_address(address, what="--send")
    secret = proto.read_secret(secret_file) if secret_file is not None else None
    return NetSink(host, port, description, secret=secret, **options)


class NetworkSink(FramesSink):
    """The live pipeline's sink (:class:`~.sinks.Sink`) that sends the stream to a receiver:
    the frames an :class:`~.sinks.ArchiveSink` writes to its journal go through a
    :class:`NetSink` instead, which connects when the stream starts (a receiver that cannot be
    reached or refuses stops the recording there). ``options``: NetSink's (buffer, timeouts,
    ``on_sent``). Beside an archive: ``TeeSink(archive, network, optional=[network])`` keeps
    recording if the network copy fails later (a note in the archive says so)."""

    def __init__(self, host: str, port: int, *, secret: bytes | None = None, **options):
        super().__init__()
        self.host, self.port, self.secret, self.options = host, int(port), secret, options

    def _open(self, description: StreamDescription) -> NetSink:
        return NetSink(self.host, self.port, description, secret=self.secret, **self.options)

    @property
    def stats(self) -> dict:
        return self.frames.stats if self.frames is not None else {}

    def close(self, end: dict) -> None:
        if self.frames is not None:
            self.frames.close(**self._end(end))

    def discard(self) -> None:
        if self.frames is not None:
            self.frames.abort()


def network_sink(address: str, *, secret_file=None, **options) -> NetworkSink:
    """The sink ``stream --send HOST:PORT [--secret-file F]`` asks for: the address and the
    secret are checked now, the connection made when the stream starts."""
    host, port = proto.parse_address(address, what="--send")
    secret = proto.read_secret(secret_file) if secret_file is not None else None
    return NetworkSink(host, port, secret=secret, **options)
