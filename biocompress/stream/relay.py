"""Decoding a received stream as it arrives, on its own thread, for whoever wants its samples
(an LSL outlet, a benchmark measuring latency): a sink like the journal's."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from ..container.description import StreamDescription
from ..errors import BiocompressError
from .assemble import SampleAssembler
from .blocks import Chunk

QUEUE_BLOCKS = 256  # blocks waiting to be decoded, at most (the receiver waits when it is full)
PUT_STEP_S = 0.1

Deliver = Callable[[Chunk, float], None]


class SampleRelay:
    """Blocks in (``add``), complete chunks out: each is handed to every ``deliver(chunk,
    decoded_at)`` (``time.monotonic()`` seconds) on the relay's thread, in order. An error
    there stops the relay; the next call raises it (a BiocompressError)."""

    def __init__(self, description: StreamDescription, deliver: list[Deliver], *, queue_blocks: int = QUEUE_BLOCKS):
        self.assembler = SampleAssembler(description)
        self.deliver = list(deliver)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_blocks)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stream-relay", daemon=True)
        self._thread.start()

    @property
    def samples(self) -> int:
        """Samples decoded and handed out so far."""
        return self.assembler.done

    def add(self, block) -> None:
        while True:
            self._check()
            try:
                self._queue.put(block, timeout=PUT_STEP_S)
                return
            except queue.Full:
                continue

    add_times = add

    def add_markers(self, *args, **kwargs) -> None:
        """Markers are kept in the archive; the relay publishes samples only."""

    def add_clock(self, time_s: float, offset_s: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def flush(self) -> None:
        self._check()

    def close(self, **_) -> None:
        """Decode what is queued, then stop; raises the relay's error, if it had one."""
        self._stop()
        self._check()

    def abort(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=PUT_STEP_S)
                    break
                except queue.Full:
                    continue
            self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            exc = self._error
            raise exc if isinstance(exc, BiocompressError) else \
                BiocompressError(f"re-publishing stopped: {type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while True:
            block = self._queue.get()
            if block is None:
                return
            if self._error is not None:
                continue  # drain: whoever waits to put must not wait forever
            try:
                for chunk in self.assembler.add(block):
                    decoded_at = time.monotonic()
                    for deliver in self.deliver:
                        deliver(chunk, decoded_at)
            except BaseException as exc:  # noqa: BLE001 - raised on the pipeline's next call
                self._error = exc
