"""Long-lived worker processes that run operations under a watchdog and a memory watch.

Each worker is pinned to one CPU (so biocompress reads in-process, without its read
pool), runs BLAS and torch on one thread, and caps its address space
(``RLIMIT_AS``: what it had after importing everything, plus ``as_limit_mb``) so that
a memory bomb fails with MemoryError instead of taking the machine. Per operation it
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) and reports the peak.
The parent waits ``timeout`` seconds for an answer; past that it kills the worker
(a HANG) and starts another. A worker that dies by a signal is a CRASH.
"""

from __future__ import annotations

import multiprocessing
import os
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _serve(conn, settings: dict) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    if settings.get("cpu") is not None:
        os.sched_setaffinity(0, {settings["cpu"]})
    import resource
    import tempfile
    import warnings

    import mne
    import torch

    import biocompress  # noqa: F401
    from biocompress.codecs.lossy import ae_codec, model_file, near_lossless

    from .operations import run_operation

    torch.set_num_threads(1)
    mne.set_log_level("ERROR")
    warnings.simplefilter("ignore")
    model_file.load()
    if settings.get("as_limit_mb"):
        limit = _status_kb("VmSize") * 1024 + int(settings["as_limit_mb"]) * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    scratch = tempfile.mkdtemp(prefix="worker-", dir=settings.get("scratch"))
    conn.send({"ready": os.getpid()})
    while True:
        job = conn.recv()
        if job is None:
            break
        if "build" in job:  # clean archives made here decode in the environment that judges them
            from .targets import build_targets

            conn.send([t.as_dict() for t in build_targets(job["build"], job["kinds"])])
            continue
        exact_peak = _reset_peak()
        before = _status_kb("VmRSS")
        t0 = time.perf_counter()
        facts = run_operation(job["op"], job["archive"], job["target"], scratch, job.get("subprocess_cli", False))
        facts["seconds"] = round(time.perf_counter() - t0, 3)
        peak = _status_kb("VmHWM")
        facts["peak_rss_mb"] = round(peak / 1024, 1)
        facts["delta_mb"] = round((peak - before) / 1024, 1) if exact_peak else None
        conn.send(facts)


class Worker:
    """One worker process; ``run`` never raises for what happens inside it."""

    def __init__(self, timeout: float = 60.0, as_limit_mb: int | None = 3072, cpu: int | None = None,
                 start_timeout: float = 180.0, scratch=None):
        """``scratch``: the folder under which each worker makes its own (default: the system's temp folder)."""
        self.timeout, self.start_timeout = timeout, start_timeout
        self.settings = {"as_limit_mb": as_limit_mb, "cpu": cpu, "scratch": str(scratch) if scratch else None}
        self.proc = None
        self.restarts = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.settings), daemon=True, name="fuzz-worker")
        self.proc.start()
        child.close()
        if not self.conn.poll(self.start_timeout):
            self._kill()
            raise RuntimeError("fuzz worker did not start")
        self.conn.recv()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.join(10)
        self.proc = None

    def run(self, op: str, archive, target: dict, subprocess_cli: bool = False) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        t0 = time.perf_counter()
        self.conn.send({"op": op, "archive": str(archive), "target": target, "subprocess_cli": subprocess_cli})
        try:
            if self.conn.poll(self.timeout):
                return self.conn.recv()
            self._kill()
            self.restarts += 1
            return {"status": "hang", "message": f"no answer after {self.timeout:g} s (worker killed)",
                    "seconds": round(time.perf_counter() - t0, 3)}
        except (EOFError, ConnectionError):
            self.proc.join(10)
            code = self.proc.exitcode
            self.proc = None
            self.restarts += 1
            what = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
            return {"status": "crashed", "message": f"worker {what}", "seconds": round(time.perf_counter() - t0, 3)}

    def build(self, workdir, kinds) -> list[dict]:
        """The clean archives (``targets.build_targets``), compressed in the worker itself: one
        CPU and one BLAS thread, as they are then decoded."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send({"build": str(workdir), "kinds": list(kinds)})
        if not self.conn.poll(self.start_timeout):
            self._kill()
            raise RuntimeError("fuzz worker did not build the clean archives in time")
        return self.conn.recv()

    def recycle(self) -> None:
        """Start afresh (bounds what a long run leaks: open files of failed opens, caches)."""
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, ValueError):
                pass
        self._kill()
