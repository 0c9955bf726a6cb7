"""One BLAS thread in the hot paths.

The encoders' linear algebra works on small blocks (e.g. the covariance of 96 × 4096
samples). A multi-threaded BLAS gains nothing there and, with several processes on a few
cores, loses badly: measured under load, ``np.cov`` of such a block took 0.11 s with two
BLAS threads and 0.006 s with one. Worker processes set one thread for their whole life
(:func:`one_thread_per_process`); code that runs in the caller's process (compress,
verify) limits BLAS only while it runs (:func:`one_blas_thread`), leaving the caller's
setting as it was.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

_CACHED: dict = {}


def _controller():
    """A ThreadpoolController, made again when modules were imported since (a library
    imported later may bring its own BLAS); making one costs ~0.4 ms, using it ~10 µs."""
    seen = len(sys.modules)
    if _CACHED.get("seen") != seen:
        _CACHED.update(controller=_new_controller(), seen=seen)
    return _CACHED["controller"]


def _new_controller():
    """threadpoolctl finds the loaded libraries through a C callback into Python; a signal
    handled inside that callback (Ctrl-C, SIGTERM turned into KeyboardInterrupt) would be
    swallowed by ctypes. The signals wait until the libraries are found."""
    from threadpoolctl import ThreadpoolController

    if threading.current_thread() is not threading.main_thread():
        return ThreadpoolController()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        return ThreadpoolController()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def one_blas_thread():
    """Run the body with one BLAS thread; the previous setting is restored afterwards."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


def one_thread_per_process() -> None:
    """For worker processes: one BLAS and OpenMP thread from now on."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def reuse_freed_memory() -> bool:
    """Let glibc keep large freed blocks for reuse, as it does by default. Dask's nanny starts
    workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes the mmap threshold at
    128 KiB: every block's arrays are then mapped and unmapped afresh, and a compress takes
    twice as long (measured: 0.47 s against 0.23 s for a 21-channel minute). False where
    mallopt is unavailable (not glibc)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))
    except (OSError, AttributeError):
        return False
