"""Helpers of the LSL tests: a replay on a thread, the LSL test configuration."""

from __future__ import annotations

import threading
from contextlib import contextmanager

class Player:
    """A Replay running on a thread; ``result`` holds its count of pushed samples, or the error."""

    def __init__(self, replay, wait_for_consumer: float | None = 20.0, **run):
        self.replay, self.stop, self.result = replay, threading.Event(), {}
        self.pushed = 0

        def target():
            try:
                self.result["pushed"] = replay.run(self.stop, wait_for_consumer=wait_for_consumer,
                                                   on_chunk=self._count, **run)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.result["error"] = exc

        self.thread = threading.Thread(target=target, daemon=True)

    def _count(self, n: int) -> None:
        self.pushed = n

    def join(self, timeout: float = 30.0) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the replay did not end"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["pushed"]


@contextmanager
def playing(replay, **kw):
    player = Player(replay, **kw)
    player.thread.start()
    try:
        yield player
    finally:
        player.stop.set()
        player.thread.join(30.0)
