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

import sys
from contextlib import contextmanager

_CACHED: dict = {}


def _controller():
    """A ThreadpoolController, made again when modules were imported since (a library
    imported later may bring its own BLAS); making one costs ~0.4 ms, using it ~10 µs."""
    from threadpoolctl import ThreadpoolController

    seen = len(sys.modules)
    if _CACHED.get("seen") != seen:
        _CACHED.update(controller=ThreadpoolController(), seen=seen)
    return _CACHED["controller"]


@contextmanager
def one_blas_thread():
    """Run the body with one BLAS thread; the previous setting is restored afterwards."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


def one_thread_per_process() -> None:
    """For worker processes: one BLAS and OpenMP thread from now on."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
