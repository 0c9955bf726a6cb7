"""Encode and decode blocks on worker processes, keeping their order.

The coders' Python parts hold the GIL, so threads do not scale; independent
blocks in separate processes do. Results come back in submission order, with
at most ``window`` blocks in flight so memory stays bounded.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from contextlib import contextmanager
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from . import get_codec
from .base import _LAZY, _REGISTRY, WAVELET_IDS
from ..system.interrupts import deferred


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _encode(config: dict, codes: np.ndarray) -> bytes:
    return get_codec(config).encode(codes)


def _decode(config: dict, payload: bytes) -> np.ndarray:
    return get_codec(config).decode(payload)


class Narrowed:
    """int64 codes held in int16 or int32 (every value fits) to cross a pipe to or from a
    worker: a quarter of the bytes for 16-bit recordings."""

    __slots__ = ("codes",)

    def __init__(self, codes: np.ndarray):
        self.codes = codes

    def __reduce__(self):
        return Narrowed, (self.codes,)


def narrow(codes):
    """int64 codes as :class:`Narrowed` when int16 or int32 holds them all; anything else as it is."""
    if not isinstance(codes, np.ndarray) or codes.dtype != np.int64 or not codes.size:
        return codes
    lo, hi = int(codes.min()), int(codes.max())
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return Narrowed(codes.astype(dtype))
    return codes


def widen(data):
    """What :func:`narrow` was given."""
    return data.codes.astype(np.int64) if isinstance(data, Narrowed) else data


def _encode_narrowed(config: dict, data) -> bytes:
    return get_codec(config).encode(widen(data))


def _decode_narrowed(config: dict, payload: bytes):
    return narrow(get_codec(config).decode(payload))


def _context():
    return multiprocessing.get_context("fork" if os.name == "posix" else "spawn")


def _decode_part(config: dict, part):
    return get_codec(config).decode_part(part)


def _start_worker(through_server: bool = False, warm: bool = False) -> None:
    from ..system.processes import start_worker
    from ..system.threads import one_thread_per_process

    start_worker(through_server)
    # one BLAS thread per worker: two workers each spinning two BLAS threads on two cores run 5× slower
    one_thread_per_process()
    if warm:
        _load_decoder_kernels()


def _load_decoder_kernels() -> None:
    """The default integer codec's JIT kernels, loaded now rather than in a reader's first
    request (read pool workers live as long as the process). Encode workers skip this:
    their first block loads what it needs, and loading more costs each of them CPU time
    that the other worker and the reading process need."""
    codes = np.cumsum(np.random.default_rng(0).integers(-9, 10, (2, 600)), axis=1)
    from .lossless import LPCV4Codec

    codec = LPCV4Codec()
    codec.decode(codec.encode(codes))


def _ready(value) -> Future:
    fut: Future = Future()
    fut.set_result(value)
    return fut


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
            with deferred():
                self._ex = ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=_start_worker)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(cancel=exc[0] is not None)

    def close(self, cancel: bool = False) -> None:
        self._ex.shutdown(wait=True, cancel_futures=cancel)

    def _stream(self, fn, jobs):
        pending: deque = deque()
        for tag, config, data in jobs:
            if config is None:
                pending.append((tag, _ready(data)))
            else:
                with deferred():  # the first submit starts the workers
                    pending.append((tag, self._ex.submit(fn, config, data)))
            while len(pending) > self.window:
                tag0, fut = pending.popleft()
                yield tag0, fut.result()
        while pending:
            tag0, fut = pending.popleft()
            yield tag0, fut.result()

    def encode_stream(self, jobs):
        """(tag, config, codes) jobs → (tag, payload), in job order. A job whose config is None
        carries its payload already: it keeps its place in the order and goes to no worker."""
        if self.workers == 1:
            return self._stream(_encode, jobs)
        return self._stream(_encode_narrowed, ((tag, config, data if config is None else narrow(data))
                                               for tag, config, data in jobs))

    def decode_stream(self, jobs):
        """(tag, config, payload) jobs → (tag, codes), in job order."""
        if self.workers == 1:
            return self._stream(_decode, jobs)
        return ((tag, widen(data)) for tag, data in self._stream(_decode_narrowed, jobs))


_READ_POOL: list = []


def no_read_pool() -> None:
    """Decode reads in this process from now on (no read pool): for worker processes that
    each handle one file, where the cores are already busy with the other workers."""
    _READ_POOL[:] = [None]


def close_read_pool() -> None:
    """Stop the read pool's workers, if it was started; a later read starts a new one."""
    pool = _READ_POOL[0] if _READ_POOL else None
    _READ_POOL.clear()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def reads_here():
    """Decode reads in this process while inside, without starting a read pool; the read
    pool is as it was afterwards (for a process that must start no other, e.g. a fork server)."""
    saved = list(_READ_POOL)
    _READ_POOL[:] = [None]
    try:
        yield
    finally:
        _READ_POOL[:] = saved


def read_pool():
    """A process pool shared by every archive a process reads, or None on one core or
    where child processes cannot be made (e.g. inside a daemonic worker).

    Started once and kept: decoding is GIL-bound (the range decoder holds the GIL), so
    only processes decode two blocks at once. Workers come from a fork server, so they
    hold none of the caller's open files (a forked reader would keep its HDF5 file locks),
    and they are started with the caller's ``__main__`` hidden: the jobs need only
    biocompress, and re-importing a user's script (what spawned workers do) would re-run
    one that lacks a ``__main__`` guard.
    """
    if not _READ_POOL:
        pool = None
        if default_workers() > 1 and not multiprocessing.current_process().daemon:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["biocompress.codecs.pool"])
                with deferred():
                    pool = ProcessPoolExecutor(default_workers() - 1, mp_context=ctx, initializer=_start_worker,
                                               initargs=(True, True))
                    with _main_hidden():
                        started = pool.submit(int)  # starts the worker now; fails here, not in a read
                started.result()
            except (OSError, RuntimeError, AssertionError, ValueError):
                pool = None
        _READ_POOL.append(pool)
    return _READ_POOL[0]


@contextmanager
def _main_hidden():
    """Without ``__main__.__file__``/``__spec__``, multiprocessing tells a new process not to
    import the caller's main module."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__.pop(k) for k in ("__file__", "__spec__") if main and k in main.__dict__}
    if main is not None and "__spec__" in saved:
        main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def workers_know(config: dict) -> bool:
    """Whether a fresh worker decodes ``config`` as this process does: biocompress's own
    codecs (not one registered by the caller), and for the lossy ones a shipped model
    (not one loaded from an archive here)."""
    cid = config.get("id")
    if cid in _LAZY:
        from .lossy import model_file

        inner = config.get("inner", config)  # grid-v1 wraps nl-v1
        model = inner.get("model") or inner.get("sketch", {}).get("model")
        return cid in WAVELET_IDS or model_file.is_shipped(model)
    cls = _REGISTRY.get(cid)
    return cls is not None and cls.__module__.startswith("biocompress.")


def _decode_parts(jobs) -> list:
    return [_decode_part(config, part) for config, part in jobs]


def decode_parts(jobs, cost=None):
    """(codec config, part of a ``split_decode``) jobs → their results, in job order,
    on the read pool (or here, without one).

    Jobs go out as one batch per worker, balanced by ``cost`` (default: equal), since
    a round trip to a worker costs about as much as a small part's decode.
    """
    pool = read_pool() if len(jobs) > 1 else None
    if pool is None or not all(workers_know(config) for config, _ in jobs):
        return _decode_parts(jobs)
    cost = np.ones(len(jobs)) if cost is None else np.asarray(cost, np.float64)
    n = min(len(jobs), default_workers())
    load, batches = np.zeros(n), [[] for _ in range(n)]
    for j in np.argsort(-cost, kind="stable"):  # largest first, each to the least loaded
        w = int(np.argmin(load))
        batches[w].append(int(j))
        load[w] += cost[j]
    out = [None] * len(jobs)
    # the calling process decodes the first batch itself while the workers do the rest
    with deferred():  # a submit may start a worker
        futures = [pool.submit(_decode_parts, [jobs[j] for j in b]) for b in batches[1:]]
    done = [_decode_parts([jobs[j] for j in batches[0]])] + [f.result() for f in futures]
    for batch, results in zip(batches, done):
        for j, r in zip(batch, results):
            out[j] = r
    return out
