"""Signals that ask a run to stop: a long run (a live recording, a replay) stops cleanly at its
next safe point; a file operation is interrupted and leaves nothing.

An interrupt is raised as KeyboardInterrupt in the main thread, wherever it happens to be;
if it lands in code that cannot pass it on (a finalizer, a callback whose errors are only
reported), it would be lost and the run would go on. So the request is also remembered,
and writers check it at the point of no return (:func:`check_interrupted`, before an
output is renamed into place).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def stop_on_signals(stop: threading.Event):
    """While inside: Ctrl-C, SIGTERM and SIGHUP set ``stop`` (the run ends at its next safe
    point and finalizes); a second one raises KeyboardInterrupt. Off the main thread, where
    Python delivers no signal, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    before = {s: signal.signal(s, ask) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


_INTERRUPTED = threading.Event()


def request_interrupt() -> None:
    """Remember that the user asked the run to stop (SIGINT/SIGTERM/SIGHUP of the CLI)."""
    _INTERRUPTED.set()


def clear_interrupt() -> None:
    """The interrupt was handled (the CLI reported it)."""
    _INTERRUPTED.clear()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if an interrupt was asked for (and perhaps swallowed on its way)."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt
