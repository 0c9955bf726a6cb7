"""Where a batch's tasks run: a local process pool (default) or a Dask cluster.

Both take tasks and yield ``(task, outcome)`` as tasks finish, so that progress and
failures are reported as they happen. Neither schedules anything itself: the pool runs
at most ``workers`` tasks at once, Dask does its own placement.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .task import Task, run_task, run_task_on_dask, start_local_worker

# what the fork server imports before it forks a worker: the task's modules, and the codecs'
# numba kernels loaded (see biocompress.batch.worker_preload)
WORKER_PRELOAD = ("biocompress.batch.worker_preload",)

WORKER_DIED = ("the worker process converting it died (killed by the system, out of memory, or a crash); "
               "the file was tried alone and failed again")


def _died(task: Task) -> dict:
    return {"status": "failed", "error": f"{task.source}: {WORKER_DIED}", "code": 1, "seconds": 0.0,
            "source_bytes": 0, "output_rel": task.output_rel, "output_bytes": None, "output_mtime_ns": None,
            "ratio": None, "sha256": None, "worker": None}


class LocalExecutor:
    """Tasks on ``workers`` processes of this machine, made by a fork server (so that they hold
    none of this process's open files or locks) and ending with this process.

    A worker that dies (out of memory, killed) breaks the pool: the pool is made again and the
    tasks that were running are run again one at a time, so that the one that kills its worker
    is named, and only it fails.
    """

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None
        self._started = False  # start() was called: the first pool is not waited for

    def start(self) -> None:
        """Start the fork server now, without waiting for it: it imports biocompress and loads
        the codecs' kernels (~1 s) while the caller walks and plans the work; the workers are
        forked from it when the first tasks come."""
        from multiprocessing import forkserver

        _forkserver()
        forkserver.ensure_running()
        self._started = True

    def _new_pool(self, wait: bool = True) -> ProcessPoolExecutor:
        from ..codecs.pool import _main_hidden

        pool = ProcessPoolExecutor(self.workers, mp_context=_forkserver(), initializer=start_local_worker)
        with _main_hidden():  # workers need biocompress only, not the caller's script
            started = [pool.submit(os.getpid) for _ in range(self.workers)]
            if wait:
                for f in started:
                    f.result()
        return pool

    def run(self, tasks, *, window: int | None = None):
        """Yield (task, outcome) as tasks finish; at most ``window`` (default: workers) at once.
        The tasks that take the finished ones' places are given out before the outcomes are
        yielded, so that no worker waits while the caller records them."""
        window = window or self.workers
        todo = deque(tasks)
        alone: deque = deque()  # tasks that were running when a worker died
        running: dict = {}

        def fill():
            limit = 1 if alone else window
            source = alone if alone else todo
            while source and len(running) < limit:
                task = source.popleft()
                running[self._pool.submit(run_task, task)] = (task, source is alone)

        while todo or alone or running:
            if self._pool is None:
                self._pool = self._new_pool(wait=not self._started)
                self._started = False  # a pool made again after a worker died is waited for
            fill()
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            finished = []
            for fut in done:
                task, was_alone = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if was_alone:
                        finished.append((task, _died(task)))
                    else:
                        alone.append(task)
                    continue
                finished.append((task, outcome))
            if broken:
                alone.extend(task for task, _ in running.values())  # they fail with the pool: try each alone
                running.clear()
                self.close(abort=True)
            else:
                fill()
            yield from finished

    def close(self, abort: bool = False) -> None:
        """Stop the workers; ``abort``: now, without waiting for the tasks they run (their
        temporaries are left for :func:`~biocompress.system.outputs.remove_stale_temporaries`)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:
            for proc in list(getattr(pool, "_processes", {}).values()):
                if proc.is_alive():
                    proc.terminate()
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.join(timeout=10)
        pool.shutdown(wait=not abort, cancel_futures=True)


def _forkserver():
    """The fork server context of the local pool's workers, with what it imports first."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))
    return ctx


class DaskExecutor:
    """Tasks as futures on a Dask distributed cluster: the scheduler at ``scheduler``
    (``tcp://host:port``), or a LocalCluster of ``workers`` processes on 127.0.0.1.
    Workers must see the source and destination at the same paths (a shared file system)
    and have biocompress installed."""

    def __init__(self, workers: int, scheduler: str | None = None):
        import dask
        from distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="60s")
            return
        # Dask's sampling profiler takes the GIL every 10 ms from coders that hold it: off
        # (measured: a 0.3 s compress took up to 3 × longer with it on). Workers fork from a
        # server that has imported biocompress once, as the local pool's do: spawned, each
        # spent ~2 s importing MNE, SciPy and numba before its first task.
        with dask.config.set({"distributed.worker.profile.enabled": False,
                              "distributed.worker.multiprocessing-method": "forkserver"}):
            from distributed.utils import get_mp_context

            get_mp_context().set_forkserver_preload(["distributed", *WORKER_PRELOAD])
            self._cluster = LocalCluster(n_workers=max(1, int(workers)), threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None, worker_dashboard_address=None,
                                         silence_logs=50, memory_limit=0)  # a task's memory is bounded: no monitor
        self.client = Client(self._cluster)

    def start(self) -> None:
        """The cluster's workers run already."""

    def run(self, tasks, *, window: int | None = None):
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:12]
        futures = {}
        for i, task in enumerate(tasks):  # in the order given: earlier tasks first
            fut = self.client.submit(run_task_on_dask, task, pure=False, priority=-i, key=f"biocompress-{run_id}-{i}")
            futures[fut.key] = (fut, task)
        for fut in as_completed([f for f, _ in futures.values()]):
            task = futures[fut.key][1]
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker and the like: the task's worker died
                outcome = _died(task)
                outcome["error"] = f"{task.source}: the Dask worker running it failed ({type(exc).__name__}: {exc})"
            fut.release()
            yield task, outcome

    def sweep(self, folders) -> None:
        """Remove stale temporaries in ``folders`` on every worker's machine (a temporary's
        writer can only be judged gone on the machine it ran on)."""
        from ..system.outputs import remove_stale_temporaries

        def sweep_here(folders=tuple(folders)):
            for folder in folders:
                remove_stale_temporaries(folder)

        try:
            self.client.run(sweep_here)
        except Exception:  # noqa: BLE001 - best effort: a worker may be gone
            pass

    def close(self, abort: bool = False) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
