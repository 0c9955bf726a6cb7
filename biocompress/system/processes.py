"""Process lifetimes: when a process started, and worker processes that end with their parent.

A worker must not outlive the run that started it, however that run ends (``kill -9``
included). On Linux the kernel sends a forked worker SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``). A worker made by a fork server has the fork server as
its parent, so it also watches the process that asked for it and exits when that
process is gone; the fork server then exits by itself, its last client gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when there is no such
    live process (zombies count as gone); -inf where that cannot be told."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return _exists_elsewhere(pid)
    if fields[0] in (b"Z", b"X"):
        return None
    ticks = int(fields[19])  # field 22 of proc(5), counted from after the command name
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _exists_elsewhere(pid: int) -> float | None:
    """Without /proc: whether ``pid`` exists at all (start time unknown)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        pass
    return float("-inf")


def _boot_time() -> float:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()


def start_worker(through_server: bool) -> None:
    """Call first in a worker process: default handling of SIGTERM/SIGHUP (the CLI turns
    them into KeyboardInterrupt, which a pool worker would survive), and an end with the
    parent. ``through_server``: the worker was made by a fork server."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    die_with_parent()
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if through_server:
        threading.Thread(target=_exit_when_gone, args=(parent.sentinel,), name="parent-watch", daemon=True).start()
    elif os.getppid() != parent.pid:  # the parent died before the kernel was told
        os._exit(1)


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_gone(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])  # ready once the parent's end of the pipe is closed: the parent is gone
    os._exit(1)
