"""Signals that ask a long run (a live recording, a replay) to stop cleanly."""

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
