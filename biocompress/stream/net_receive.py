"""Receiving a live stream from the network (``biocompress receive``).

A :class:`Receiver` listens (127.0.0.1 unless told otherwise), takes one stream from a
:class:`~.net.NetSink` and writes it, as it arrives, into a live archive (a journal,
finalized when the stream ends: blocks copied, never re-encoded) and/or decodes it and
publishes it again as an LSL outlet. Frames are checked before anything is done with
them; a frame number the receiver already holds (resent after a reconnection) is dropped;
it acknowledges what it holds once it is durable in the journal. Whatever a peer sends, a
bad frame closes that peer's connection and nothing else.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..container import frames
from ..container.description import StreamDescription
from ..container.frames import FrameError, FrameType
from ..container.journal import JournalSink
from ..errors import BadInputError, BiocompressError
from ..system.outputs import check_output
from . import net_protocol as proto
from .incoming import IncomingStream
from .net_protocol import NetType
from .relay import Deliver, SampleRelay
from .tee import TeeSink

MAX_CONNECTIONS = 8  # peers at once (handshaking or streaming); more are refused
END_LINGER_S = 5.0  # after END, how long the sender has to say BYE, or to come back for its last ACK
READ_BUFFER = 1 << 20
FrameHook = Callable[[int, int, int, float], None]


class Receiver:
    """One stream, from whichever sender connects first with the right secret, until its END,
    :meth:`stop`, or an error.

    ``output``: the archive to write (a journal while the stream runs, finalized at the end);
    ``lsl_out``: publish the decoded stream as this LSL outlet; ``on_samples(chunk,
    decoded_at)``: decoded samples for a program (a benchmark); ``on_frame(seq, kind, nbytes,
    received_at)``: each stream frame as it arrives (``time.monotonic()`` seconds).
    ``secret``: bytes both sides must prove they know; listening anywhere but loopback needs
    it, unless ``allow_unauthenticated``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, output=None, overwrite: bool = False,
                 lsl_out: str | None = None, secret: bytes | None = None, allow_unauthenticated: bool = False,
                 max_payload: int = proto.MAX_PAYLOAD, max_connections: int = MAX_CONNECTIONS,
                 handshake_timeout: float = proto.HANDSHAKE_TIMEOUT, on_frame: FrameHook | None = None, on_samples: Deliver | None = None):
        if output is None and lsl_out is None and on_samples is None:
            raise BadInputError(None, "nothing to do with the stream: give an output archive (-o) and/or "
                                "an LSL outlet name (--lsl-out)")
        if not proto.is_loopback(host) and secret is None and not allow_unauthenticated:
            raise BadInputError(None, f"listening on {host}, reachable from other machines, needs a shared secret "
                                "(--secret-file) or, knowingly, --allow-unauthenticated")
        self.host, self.port = host, int(port)
        self.output = check_output(output, force=overwrite, kind="archive") if output is not None else None
        self.overwrite, self.lsl_out, self.secret = overwrite, lsl_out, secret
        self.max_payload, self.max_connections = int(max_payload), int(max_connections)
        self.handshake_timeout = float(handshake_timeout)
        self.on_frame, self.on_samples = on_frame, on_samples
        self.address: tuple[str, int] | None = None
        self.description: StreamDescription | None = None
        self.stream: IncomingStream | None = None
        self.journal: JournalSink | None = None
        self.relay: SampleRelay | None = None
        self.outlet = None
        self.sink: TeeSink | None = None
        self.session: str | None = None
        self.next = 0  # frames held, contiguous from 0
        self.counts = {"frames": 0, "bytes": 0, "duplicates": 0, "connections": 0, "refused": 0}
        self.peer: str | None = None
        self.stopped_because: str | None = None
        self.error: BaseException | None = None
        self.result: dict | None = None
        self._out = ThreadPoolExecutor(1, thread_name_prefix="receive-output")  # fsync, close, finalize
        self._handlers: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.relay_error: BaseException | None = None
        self._end_settled = False  # the stream ended and its sender said BYE (or went quiet)
        self._current: asyncio.Task | None = None
        self._session_lock: asyncio.Lock | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._done = threading.Event()

    # --- the caller's side --------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Listen; return the address (the port chosen when 0 was asked). The live codecs are
        loaded first, so that decoding the first frames does not stall the stream."""
        from .warm import warm_up_live_codecs

        warm_up_live_codecs()
        self._thread = threading.Thread(target=self._run, name="net-receive", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self.address is None:
            self._thread.join()
            raise self.error if self.error is not None else BiocompressError("the receiver did not start")
        return self.address

    def stop(self, reason: str = "stopped") -> None:
        """End the reception (the archive is finalized with what was received)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop, reason)
            except RuntimeError:
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the reception has ended (and its outputs are finalized)."""
        return self._done.wait(timeout)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop("the program stopped")
        self.wait()
        return False

    @property
    def stats(self) -> dict:
        return {**self.counts, "reconnects": max(0, self.counts["connections"] - 1), "frames_held": self.next,
                "samples": self.stream.samples if self.stream is not None else 0,
                "published": self.relay.samples if self.relay is not None else 0,
                "connected": self._current is not None, "peer": self.peer}

    def status_line(self) -> str:
        s = self.stats
        state = f"from {s['peer']}" if s["connected"] else "waiting for a sender" if not s["frames_held"] \
            else "sender disconnected"
        return (f"{state}: {s['frames']} frames, {s['samples']} samples, {s['bytes']:,} bytes, "
                f"{s['duplicates']} duplicates dropped, {s['reconnects']} reconnects")

    # --- the event loop -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            if self.error is None:
                self.error = exc
        finally:
            self._out.shutdown(wait=True)
            self._bound.set()
            self._done.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event, self._session_lock = asyncio.Event(), asyncio.Lock()
        try:
            server = await asyncio.start_server(self._connection, self.host, self.port, limit=READ_BUFFER)
        except OSError as exc:
            self.error = BadInputError(None, f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}")
            return
        self.address = tuple(server.sockets[0].getsockname()[:2])
        self._bound.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            current = self._current
            if current is not None and not self._ended_cleanly:
                self._say_bye(current, f"the receiver stopped ({self.stopped_because})")
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._finish()

    @property
    def _ended_cleanly(self) -> bool:
        return self.stream is not None and self.stream.end is not None

    def _request_stop(self, reason: str) -> None:
        if self.stopped_because is None:
            self.stopped_because = reason
        self._stop_event.set()

    def _fatal(self, exc: BaseException) -> None:
        """An error of the receiver's own (its output cannot be written): stop, keep what is durable."""
        if self.error is None:
            self.error = exc
        self._request_stop(f"error: {exc}")

    def _say_bye(self, task: asyncio.Task, reason: str) -> None:
        writer = self._handlers.get(task)
        if writer is not None and not writer.is_closing():
            writer.write(proto.control(NetType.BYE, {"reason": reason}))

    async def _in_output_thread(self, fn, *args, **kwargs):
        return await self._loop.run_in_executor(self._out, lambda: fn(*args, **kwargs))

    # --- one connection -----------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        acker = None
        try:
            if self._stop_event.is_set() or len(self._handlers) >= self.max_connections:
                await self._refuse(writer, "the receiver is busy or stopping")
                return
            self._handlers[task] = writer
            if not await self._handshake(reader, writer, task, peer):
                return
            wake = asyncio.Event()
            acker = asyncio.create_task(self._acknowledge(writer, wake))
            await self._receive(reader, writer, wake, acker)
        except asyncio.CancelledError:
            pass
        except FrameError as exc:  # the peer broke the protocol: it goes, the stream stays
            await _stopped(acker)  # REFUSE is the last frame the peer gets: no ACK after it
            await self._refuse(writer, str(exc))
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # noqa: BLE001 - the receiver's own failure (its output)
            await _stopped(acker)
            await self._refuse(writer, f"the receiver cannot go on: {exc}")
            self._fatal(exc)
        finally:
            await _stopped(acker)
            writer.close()
            self._handlers.pop(task, None)
            if self._current is task:
                self._current = None
                if self.next == 0:
                    self.session = None  # nothing was accepted: another sender may try
                elif self._ended_cleanly:  # done, unless the sender missed the last ACK: it comes back then
                    delay = 0.0 if self._end_settled else END_LINGER_S
                    self._loop.call_later(delay, self._request_stop, "end of stream")

    async def _refuse(self, writer, reason: str) -> None:
        self.counts["refused"] += 1
        try:
            writer.write(proto.control(NetType.REFUSE, {"reason": reason}))
            await asyncio.wait_for(writer.drain(), 1.0)
        except (OSError, TimeoutError):
            pass

    async def _read(self, reader, limit: int, kinds, timeout: float | None) -> frames.Frame:
        frame = await asyncio.wait_for(proto.read_frame(reader, limit, kinds), timeout)
        self.counts["bytes"] += frames.HEAD.size + len(frame.payload)
        return frame

    async def _handshake(self, reader, writer, task, peer: str) -> bool:
        nonce = proto.new_nonce()
        writer.write(proto.control(NetType.CHALLENGE, {"protocol": proto.PROTOCOL, "nonce": nonce.hex(),
                                                       "auth": self.secret is not None,
                                                       "max_payload": self.max_payload}))
        await writer.drain()
        hello = proto.parse_hello(await self._read(reader, proto.CONTROL_PAYLOAD, {NetType.HELLO},
                                                   self.handshake_timeout))
        if hello["protocol"] != proto.PROTOCOL:
            await self._refuse(writer, f"protocol {hello['protocol']!r} is not {proto.PROTOCOL}, the receiver's")
            return False
        session = hello["session"]
        if self.secret is not None and not proto.same_mac(
                hello["mac"], proto.hello_mac(self.secret, nonce, hello["nonce"], session)):
            await self._refuse(writer, "authentication failed (wrong or missing shared secret)")
            return False
        async with self._session_lock:
            if self.session is not None and session != self.session and self.next > 0:
                await self._refuse(writer, "the receiver is taking another stream")
                return False  # (a session that has sent nothing yet holds no one up: it is replaced)
            if self._stop_event.is_set():
                await self._refuse(writer, "the receiver is stopping")
                return False
            old, self._current = self._current, task
            if old is not None and old is not task:  # the sender came back: its old connection goes
                old.cancel()
                await asyncio.gather(old, return_exceptions=True)
            self.session = session
            self.peer = peer
            self.counts["connections"] += 1
            mac = None if self.secret is None else \
                proto.welcome_mac(self.secret, nonce, hello["nonce"], session, self.next).hex()
            writer.write(proto.control(NetType.WELCOME, {"next": self.next, "mac": mac}))
            await writer.drain()
        return True

    async def _receive(self, reader, writer, wake: asyncio.Event, acker: asyncio.Task) -> None:
        kinds = proto.FROM_SENDER - {NetType.HELLO}
        while True:
            if acker.done():  # the output failed while making frames durable
                acker.result()
            linger = END_LINGER_S if self._ended_cleanly else None
            try:
                frame = await self._read(reader, self.max_payload, kinds, linger)
            except TimeoutError:
                if self._ended_cleanly:  # the sender holds its END's ACK and said nothing more
                    self._end_settled = True
                    return
                raise
            if frame.kind == NetType.BYE:
                self._end_settled = self._ended_cleanly
                return
            received_at = time.monotonic()
            if frame.seq < self.next:
                self.counts["duplicates"] += 1
                wake.set()
                continue
            if frame.seq > self.next:
                raise FrameError(f"frame {frame.seq} skips frames {self.next}–{frame.seq - 1}")
            end = self._apply(frame)  # synchronous: a frame is applied and counted, or not at all
            self.next += 1
            self.counts["frames"] += 1
            if self.on_frame is not None:
                self.on_frame(frame.seq, frame.kind, frames.HEAD.size + len(frame.payload), received_at)
            if end is not None and self.journal is not None:  # END durable before it is acknowledged
                await self._in_output_thread(self.journal.close, finalize=False, **_digests(end))
            wake.set()

    def _apply(self, frame: frames.Frame) -> dict | None:
        if frame.seq == 0:
            if frame.kind != FrameType.HEADER:
                raise FrameError("the stream does not start with its description (HEADER)")
            try:
                description = StreamDescription.from_dict(frames.parse_json(frame, "HEADER"), "stream")
            except BiocompressError as exc:
                raise FrameError(str(exc)) from None
            self._open_outputs(description)
            return None
        return self.stream.apply(frame, self.sink)

    def _open_outputs(self, description: StreamDescription) -> None:
        deliver = []
        if self.lsl_out is not None:
            from .lsl_outlet import LslOutlet

            self.outlet = LslOutlet(self.lsl_out, description)
            deliver.append(lambda chunk, _: self.outlet.push(chunk))
        if self.on_samples is not None:
            deliver.append(self.on_samples)
        if self.output is not None:  # the last step that can fail: nothing is left open before it
            self.journal = JournalSink(self.output, description, overwrite=self.overwrite)
        self.relay = SampleRelay(description, deliver) if deliver else None
        if self.relay is not None and description.mode != "lossless":
            from .warm import warm_up_live_codecs

            warm_up_live_codecs(lossy=True)  # the autoencoder's first decode, before the first block (≥ 2 s away)
        self.description = description
        self.stream = IncomingStream(description)
        sinks = [s for s in (self.journal, self.relay) if s is not None]
        # Publishing is a copy: if it fails, the archive goes on (a note in it says why).
        self.sink = TeeSink(*sinks, optional=[self.relay] if self.journal is not None and self.relay else [])

    async def _acknowledge(self, writer, wake: asyncio.Event) -> None:
        """ACK what is held, once durable: one journal sync at a time, covering every frame
        that arrived before it began."""
        while True:
            await wake.wait()
            wake.clear()
            held = self.next
            if self.journal is not None and not self.journal.writer.closed:
                try:
                    await self._in_output_thread(self.journal.flush)
                except Exception as exc:  # noqa: BLE001 - the archive cannot be written: the receiver stops
                    self._fatal(exc)
                    return
            writer.write(proto.control(NetType.ACK, seq=held))
            await writer.drain()

    # --- the end ------------------------------------------------------------------------
    async def _finish(self) -> None:
        """Close the outputs: the journal finalized with everything received."""
        try:
            if self.sink is not None:
                if not self._ended_cleanly and self.stream is not None:
                    self.sink.note(f"the network stream did not end: the receiver {self.stopped_because}")
                if self.relay is not None:
                    await self._in_output_thread(self._close_relay)
                if self.journal is not None:
                    await self._in_output_thread(self.journal.close)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            if self.error is None:
                self.error = exc
        finally:
            if self.outlet is not None:
                self.outlet.close()
        self.result = self._summary()

    def _close_relay(self) -> None:
        try:
            self.relay.close()
        except BiocompressError as exc:
            if self.journal is None:
                raise
            self.relay_error = exc

    def _summary(self) -> dict:
        d = self.description
        n = self.stream.samples if self.stream is not None else 0
        return {"path": self.journal.path if self.journal is not None and self.journal.finalized else None,
                "relay_error": None if self.relay_error is None else str(self.relay_error),
                "received": self.description is not None, "complete": self._ended_cleanly,
                "n_samples": n, "seconds": n / d.sfreq if d is not None else 0.0,
                "stopped": self.stopped_because, **self.stats}


def _digests(end: dict) -> dict:
    """What END says that the journal's own END keeps: digests, a lossy stream's fidelity figures."""
    return {k: end.get(k) for k in ("samples_sha256", "times_sha256", "fidelity")}


def receive(listen: str, *, output: Path | None = None, secret_file=None, **options) -> Receiver:
    """A receiver for a command line's ``--listen HOST:PORT [--secret-file F]`` (not yet started)."""
    host, port = proto.parse_address(listen, what="--listen")
    secret = proto.read_secret(secret_file) if secret_file is not None else None
    return Receiver(host, port, output=output, secret=secret, **options)


async def _stopped(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)
