"""Interrupts that wait for the end of a critical section.

A KeyboardInterrupt raised while the standard library starts worker processes can break
the pool it was starting: raised in an at-fork callback it is swallowed (the run goes on
as if no signal had come), raised before the pool's manager thread exists it leaves
workers that never receive the order to stop, which the interpreter then waits for at
exit (a hang). The CLI installs :func:`handler` for SIGINT, SIGTERM and SIGHUP: inside
:func:`deferred` it notes the signal, and the KeyboardInterrupt is raised on leaving the
section. Elsewhere (and where no such handler is installed) nothing changes.
"""

from __future__ import annotations

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
