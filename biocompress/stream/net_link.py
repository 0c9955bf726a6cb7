"""The sender's connection to a receiver, run by asyncio on a thread of its own.

Frames come in from the pipeline's thread (:meth:`Link.write`) and wait in a bounded buffer
until the receiver acknowledges them; the connection thread sends them, reads the
acknowledgements, and after a dropped connection reconnects with exponential backoff and
resends from where the receiver stands (:mod:`.net_protocol`). The first failure that no
reconnection can mend (a refusal, a full buffer, a protocol error) stops it and is raised
on the pipeline's next call.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..container import frames
from ..container.frames import FrameError, FrameType
from ..errors import BackpressureError, NetworkError
from . import net_protocol as proto
from .net_protocol import NetType

WRITE_BYTES = 1 << 20  # frames handed to the socket between two waits for it to drain

SentHook = Callable[[int, int, int, float, float], None]


@dataclass
class _Queued:
    seq: int
    kind: int
    data: bytes  # the whole frame
    queued_at: float


class _Fatal(Exception):
    """Wraps an error after which no reconnection is tried."""


class Link:
    """The connection to the receiver, run by asyncio on its own thread; frames come in from
    any thread through :meth:`write`."""

    def __init__(self, host: str, port: int, *, secret, buffer_bytes, buffer_frames, full_timeout, ack_timeout,
                 backoff, on_sent):
        self.host, self.port, self.secret = host, port, secret
        self.where = f"{host}:{port}"
        self.buffer_bytes, self.buffer_frames = int(buffer_bytes), int(buffer_frames)
        self.full_timeout, self.ack_timeout = float(full_timeout), float(ack_timeout)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.on_sent = on_sent
        self.session = proto.new_session()
        self._cond = threading.Condition()
        self._queue: deque[_Queued] = deque()
        self._queued_bytes = 0
        self._next_seq = 0
        self._acked = 0
        self._failure: BaseException | None = None
        self._closing = False  # no more frames: say BYE once everything is acknowledged
        self._max_payload = proto.MAX_PAYLOAD  # the receiver's limit, once known
        self._welcomed = threading.Event()
        self._finished = threading.Event()  # everything acknowledged and BYE said
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._counts = {"frames_sent": 0, "frames_resent": 0, "bytes_sent": 0, "bytes_received": 0,
                        "connections": 0}
        self._oldest_unacked_sent: float | None = None
        self._session_began = False
        self.connected = False
        self.last_error: str | None = None
        self.closed = False

    # --- the caller's side ------------------------------------------------------------
    def start(self, connect_timeout: float) -> None:
        self._thread = threading.Thread(target=self._run, name=f"net-send {self.where}", daemon=True)
        self._thread.start()
        self._ready.wait()
        deadline = time.monotonic() + float(connect_timeout)
        while not self._welcomed.wait(0.05):
            if self._failure is not None or time.monotonic() > deadline:
                failure = self._failure
                self.abort()
                if isinstance(failure, NetworkError):
                    raise failure
                raise NetworkError(f"{self.where}: no receiver answered within {connect_timeout:g} s"
                                   f"{f' ({self.last_error})' if self.last_error else ''}")
        self.check()

    def write(self, kind: int, payload: bytes) -> None:
        """Queue one frame, waiting up to ``full_timeout`` for room in the buffer."""
        now = time.monotonic()
        with self._cond:
            self._raise_failure()
            if self._closing or self.closed:
                raise ValueError(f"{self.where}: the network sink is closed")
            if len(payload) > self._max_payload:
                self._fail(NetworkError(f"{self.where}: a {FrameType(kind).name} frame of {len(payload)} bytes "
                                        f"exceeds the receiver's limit of {self._max_payload}"))
                self._raise_failure()
            size = len(payload) + frames.HEAD.size
            deadline = now + self.full_timeout
            while self._queue and (len(self._queue) >= self.buffer_frames
                                   or self._queued_bytes + size > self.buffer_bytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail(BackpressureError(
                        f"{self.where}: the network buffer is full ({len(self._queue)} frames, "
                        f"{self._queued_bytes} bytes not acknowledged; "
                        f"{'connected' if self.connected else 'not connected'}"
                        f"{f': {self.last_error}' if self.last_error and not self.connected else ''}); "
                        "the stream to this receiver stops here"))
                    self._raise_failure()
                self._cond.wait(left)
                self._raise_failure()
            seq = self._next_seq
            self._queue.append(_Queued(seq, int(kind), frames.encode(kind, seq, payload), now))
            self._queued_bytes += size
            self._next_seq += 1
        self._poke()

    def check(self) -> None:
        with self._cond:
            self._raise_failure()

    def wait_acknowledged(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < self._next_seq and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._acked >= self._next_seq

    def finish(self, timeout: float) -> None:
        """No more frames: wait until all are acknowledged and BYE is said, then stop."""
        with self._cond:
            self._closing = True
        self._poke()
        try:
            deadline = time.monotonic() + timeout
            while not self._finished.wait(0.05):
                if self._failure is not None:
                    break
                if time.monotonic() > deadline:
                    with self._cond:
                        missing = self._next_seq - self._acked
                    self._fail(NetworkError(
                        f"{self.where}: the receiver did not acknowledge the end of the stream within {timeout:g} s "
                        f"({missing} frame(s) unacknowledged{f'; {self.last_error}' if self.last_error else ''})"))
                    break
        finally:
            self._shut()
        self.check()

    def abort(self) -> None:
        with self._cond:
            self._closing = True
        self._shut()

    def _shut(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop ended meanwhile
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.closed = True

    def stats(self) -> dict:
        with self._cond:
            fill = max(len(self._queue) / self.buffer_frames, self._queued_bytes / self.buffer_bytes)
            return {**self._counts, "reconnects": max(0, self._counts["connections"] - 1),
                    "frames_queued": self._next_seq, "frames_acknowledged": self._acked,
                    "buffered_frames": len(self._queue), "buffered_bytes": self._queued_bytes,
                    "buffer_fill": round(min(1.0, fill), 4), "connected": self.connected,
                    "last_error": self.last_error}

    def _fail(self, exc: BaseException) -> None:
        """Record the error that stops the sender (the first one wins) and stop its thread; the
        caller may hold the lock."""
        with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop is closed: the thread has ended
                pass

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: the sender has stopped
                pass

    # --- the connection thread -----------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - kept for the caller's next call
            self._fail(NetworkError(f"{self.where}: the sender stopped: {type(exc).__name__}: {exc}"))
        finally:
            self.connected = False
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._ready.set()
        failures = 0
        while not self._stop.is_set() and self._failure is None and not self._finished.is_set():
            self._session_began = False
            try:
                if not await _unless_stopped(self._connection(), self._stop):
                    return
            except _Fatal as exc:
                self._fail(exc.args[0])
                return
            except (OSError, TimeoutError, FrameError, EOFError) as exc:
                self.last_error = _describe(exc)
            finally:
                self.connected = False
            if self._finished.is_set() or self._failure is not None:
                return
            failures = 1 if self._session_began else failures + 1  # a dropped session: retry at once
            first, longest = self.backoff
            delay = 0.0 if failures == 1 and self._session_began else \
                min(longest, first * 2 ** min(failures - 1, 30)) * random.uniform(0.5, 1.0)
            await _unless_stopped(asyncio.sleep(delay), self._stop)

    async def _connection(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, limit=1 << 20),
                                                proto.HANDSHAKE_TIMEOUT)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            start = await self._handshake(reader, writer)
            self.connected = self._session_began = True
            self._counts["connections"] += 1
            self._welcomed.set()
            tasks = [asyncio.create_task(self._pump(writer, start)), asyncio.create_task(self._listen(reader))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                pass

    async def _read(self, reader, kinds, timeout: float | None) -> frames.Frame:
        frame = await asyncio.wait_for(proto.read_frame(reader, proto.CONTROL_PAYLOAD, kinds), timeout)
        self._counts["bytes_received"] += frames.HEAD.size + len(frame.payload)
        if frame.kind == NetType.REFUSE:
            raise _Fatal(NetworkError(f"{self.where}: the receiver refused the stream: {proto.reason_of(frame)}"))
        return frame

    async def _handshake(self, reader, writer) -> int:
        """CHALLENGE, HELLO, WELCOME; returns the frame number to send from."""
        t = proto.HANDSHAKE_TIMEOUT
        challenge = proto.parse_challenge(await self._read(reader, {NetType.CHALLENGE, NetType.REFUSE}, t))
        if challenge["auth"] and self.secret is None:
            raise _Fatal(NetworkError(f"{self.where}: the receiver requires a shared secret (--secret-file)"))
        if self.secret is not None and not challenge["auth"]:
            raise _Fatal(NetworkError(f"{self.where}: the receiver has no shared secret and cannot prove who it "
                                      "is; not sending the stream to it"))
        nonce = proto.new_nonce()
        mac = None if self.secret is None else proto.hello_mac(self.secret, challenge["nonce"], nonce, self.session)
        await self._send(writer, proto.control(NetType.HELLO, {
            "protocol": proto.PROTOCOL, "session": self.session, "nonce": nonce.hex(),
            "mac": None if mac is None else mac.hex()}))
        welcome = proto.parse_welcome(await self._read(reader, {NetType.WELCOME, NetType.REFUSE}, t))
        start = welcome["next"]
        if self.secret is not None and not proto.same_mac(
                welcome["mac"], proto.welcome_mac(self.secret, challenge["nonce"], nonce, self.session, start)):
            raise _Fatal(NetworkError(f"{self.where}: the receiver does not know the shared secret"))
        with self._cond:
            self._max_payload = min(proto.MAX_PAYLOAD, challenge["max_payload"])
            if start > self._next_seq:
                raise _Fatal(NetworkError(f"{self.where}: the receiver claims {start} frames; only "
                                          f"{self._next_seq} were sent"))
            if start < self._acked:
                raise _Fatal(NetworkError(f"{self.where}: the receiver lost frames {start}–{self._acked - 1} it "
                                          "had acknowledged (was it restarted?); they are no longer held"))
            self._release(start)
            if any(len(q.data) - frames.HEAD.size > self._max_payload for q in self._queue):
                raise _Fatal(NetworkError(f"{self.where}: a queued frame exceeds the receiver's limit of "
                                          f"{self._max_payload} bytes"))
            self._oldest_unacked_sent = None
        return start

    async def _send(self, writer, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self._counts["bytes_sent"] += len(data)

    def _pending(self, position: int) -> tuple[list[_Queued], bool]:
        """Frames from ``position`` on, and whether the session is over (closing, all acknowledged)."""
        with self._cond:
            if self._queue:
                first = self._queue[0].seq
                batch = [self._queue[i] for i in range(max(0, position - first), len(self._queue))]
            else:
                batch = []
            over = self._closing and self._acked == self._next_seq
            return batch, over

    async def _pump(self, writer, position: int) -> None:
        highest_sent = self._counts["frames_sent"]  # frames below this were sent on an earlier connection
        while True:
            self._wake.clear()
            batch, over = self._pending(position)
            if batch:
                batch = _first_bytes(batch, WRITE_BYTES)
                for q in batch:
                    writer.write(q.data)
                await writer.drain()
                sent_at = time.monotonic()
                for q in batch:
                    self._counts["bytes_sent"] += len(q.data)
                    if q.seq < highest_sent:
                        self._counts["frames_resent"] += 1
                    else:
                        self._counts["frames_sent"] += 1
                        highest_sent = q.seq + 1
                    if self.on_sent is not None:
                        self.on_sent(q.seq, q.kind, len(q.data), q.queued_at, sent_at)
                if self._oldest_unacked_sent is None:
                    self._oldest_unacked_sent = sent_at
                position = batch[-1].seq + 1
                continue
            if over:
                await self._send(writer, proto.control(NetType.BYE, {"reason": "end of stream"}))
                self._finished.set()
                return
            await self._wake.wait()

    async def _listen(self, reader) -> None:
        kinds = proto.FROM_RECEIVER - {NetType.CHALLENGE, NetType.WELCOME}
        while True:
            try:
                frame = await self._read(reader, kinds, self.ack_timeout / 4)
            except TimeoutError:
                waiting = self._oldest_unacked_sent
                if waiting is not None and time.monotonic() - waiting > self.ack_timeout:
                    raise TimeoutError(f"no acknowledgement for {self.ack_timeout:g} s") from None
                continue
            if frame.kind == NetType.BYE:
                with self._cond:
                    done = self._closing and self._acked == self._next_seq
                if done:
                    self._finished.set()
                    return
                raise _Fatal(NetworkError(f"{self.where}: the receiver ended the session: {proto.reason_of(frame)}"))
            with self._cond:  # ACK
                if frame.seq > self._next_seq:
                    raise _Fatal(NetworkError(f"{self.where}: the receiver acknowledged {frame.seq} frames; "
                                              f"only {self._next_seq} were sent"))
                self._release(frame.seq)
                self._oldest_unacked_sent = None if self._acked == self._next_seq else time.monotonic()
            self._wake.set()

    def _release(self, count: int) -> None:
        """Drop the frames the receiver holds (below ``count``); the lock is held."""
        while self._queue and self._queue[0].seq < count:
            q = self._queue.popleft()
            self._queued_bytes -= len(q.data)
        self._acked = max(self._acked, count)
        self._cond.notify_all()



def _first_bytes(batch: list[_Queued], limit: int) -> list[_Queued]:
    """The first frames of ``batch`` up to ``limit`` bytes (at least one)."""
    total = 0
    for i, q in enumerate(batch):
        total += len(q.data)
        if total > limit and i:
            return batch[:i]
    return batch


async def _unless_stopped(work, stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it); whether it ran to the end."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # its error, if any
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
