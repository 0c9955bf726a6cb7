"""Encode and decode blocks on worker processes, keeping their order.

The coders' Python parts hold the GIL, so threads do not scale; independent
blocks in separate processes do. Results come back in submission order, with
at most ``window`` blocks in flight so memory stays bounded.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from .codecs import get_codec


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _encode(config: dict, codes: np.ndarray) -> bytes:
    return get_codec(config).encode(codes)


def _decode(config: dict, payload: bytes) -> np.ndarray:
    return get_codec(config).decode(payload)


def _warm_up() -> None:
    """One BLAS thread per worker (two workers each spinning two BLAS threads on two
    cores run 5× slower than one), and JIT kernels loaded once per worker."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    codes = np.cumsum(np.random.default_rng(0).integers(-9, 10, (2, 600)), axis=1)
    from .codecs.lossless import LosslessCodec

    codec = LosslessCodec(frame=256)
    codec.decode(codec.encode(codes))


class _Inline:
    """Runs jobs in the calling process (one worker, or no pool wanted)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def shutdown(self, **kwargs) -> None:
        pass


class BlockPool:
    """Ordered block encoding/decoding on ``workers`` processes (1 = in-process).

    >>> with BlockPool(2) as pool:                                  # doctest: +SKIP
    ...     for tag, payload in pool.encode_stream(jobs):  # jobs: (tag, config, codes)
    ...         ...
    """

    def __init__(self, workers: int | None = None, *, window: int | None = None):
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.window = window or 4 * self.workers
        if self.workers == 1:
            self._ex = _Inline()
        else:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            self._ex = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_warm_up)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(cancel=exc[0] is not None)

    def close(self, cancel: bool = False) -> None:
        self._ex.shutdown(wait=True, cancel_futures=cancel)

    def _stream(self, fn, jobs):
        pending: deque = deque()
        for tag, config, data in jobs:
            pending.append((tag, self._ex.submit(fn, config, data)))
            while len(pending) > self.window:
                tag0, fut = pending.popleft()
                yield tag0, fut.result()
        while pending:
            tag0, fut = pending.popleft()
            yield tag0, fut.result()

    def encode_stream(self, jobs):
        """(tag, config, codes) jobs → (tag, payload), in job order."""
        return self._stream(_encode, jobs)

    def decode_stream(self, jobs):
        """(tag, config, payload) jobs → (tag, codes), in job order."""
        return self._stream(_decode, jobs)
