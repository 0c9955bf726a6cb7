"""Interrupts that wait for the end of a critical section.

A KeyboardInterrupt raised while the standard library starts worker processes can break
the pool it was starting: raised in an at-fork callback it is swallowed (the run goes on
as if no signal had come), raised before the pool's manager thread exists it leaves
workers that never receive the order to stop, which the interpreter then waits for at
exit (a hang). The CLI installs :func:`handler` for SIGINT, SIGTERM and SIGHUP: inside
:func:`deferred` it notes the signal, and the KeyboardInterrupt is raised on leaving the
section. Elsewhere (and where no such handler is installed) nothing changes.

A KeyboardInterrupt raised where Python can only report it (a destructor, a weakref
callback such as the import system's, an at-fork callback) is lost with it; the CLI's
report hook calls :func:`deliver_again`.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_state = {"depth": 0, "pending": False}


def handler(signum=None, frame=None) -> None:
    """Raise KeyboardInterrupt now, or when the current critical section ends."""
    if _state["depth"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt


@contextmanager
def deferred():
    """A critical section of the main thread (signal handlers run only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if _state["depth"] == 0 and _state["pending"]:
        _state["pending"] = False
        raise KeyboardInterrupt


def deliver_again(delay_s: float = 0.01) -> None:
    """Send SIGINT to the main thread again, shortly and from another thread, for an interrupt
    Python swallowed. (Sent from the hook that reports it, it would be raised inside the hook,
    and swallowed again; a real signal, unlike ``_thread.interrupt_main``, also ends a
    blocking wait.)"""
    main = threading.main_thread().ident

    def send() -> None:
        try:
            signal.pthread_kill(main, signal.SIGINT)
        except (OSError, ValueError, AttributeError):  # the main thread is gone; no pthread_kill here
            pass

    try:
        timer = threading.Timer(delay_s, send)
        timer.daemon = True
        timer.start()
    except RuntimeError:  # at interpreter shutdown: nothing is left to interrupt
        pass
