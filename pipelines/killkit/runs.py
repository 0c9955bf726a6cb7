"""One ``compress`` run watched through /proc and, at a chosen moment, sent a signal.

While it runs, every process below it is recorded and its phase is told from what can
be seen from outside:

- ``starting``: Python is importing; the CLI's SIGTERM handler is not installed yet;
- ``reading``: handler installed, no temporary archive yet (opening and reading the source);
- ``encoding``: block-pool workers (forks of the CLI) exist;
- ``writing``: a temporary archive exists and no worker (metadata, sealing, between pools);
- ``verifying``: the read pool's fork server exists (the archive is decoded and compared);
- ``published``: the temporary is gone and the final path is this run's archive (the
  process is exiting: joining its workers, then Python's own shutdown, during which a
  SIGTERM has its default action again).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import proctree

POLL_S = 0.05
_TEMP_PID = re.compile(r"\.(\d+)@[A-Za-z0-9-]*\.[a-z0-9_]+\.bctmp$")


def temporaries(folder: Path, pid: int | None = None) -> list[str]:
    """Names of the temporaries in ``folder`` (those of writer ``pid`` only, if given)."""
    from biocompress.system.outputs import is_temporary

    names = []
    for entry in os.scandir(folder):
        if is_temporary(entry.name):
            found = _TEMP_PID.search(entry.name)
            if pid is None or found is not None and int(found.group(1)) == pid:
                names.append(entry.name)
    return sorted(names)


def cli(*args, via: str = "module") -> list[str]:
    """The command line of ``biocompress ARGS``: ``python -m biocompress.cli`` ("module"), or
    what the installed ``biocompress`` script runs, the entry point pyproject.toml declares
    ("script")."""
    if via == "module":
        return [sys.executable, "-m", "biocompress.cli", *map(str, args)]
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    entry = tomllib.loads(pyproject.read_text())["project"]["scripts"]["biocompress"]
    module, _, name = entry.partition(":")
    launcher = f"import sys; from {module} import {name}; sys.argv[0] = 'biocompress'; sys.exit({name}())"
    return [sys.executable, "-c", launcher, *map(str, args)]


def cli_env(repo: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(repo)}


@dataclass
class Watched:
    """What was seen of one run."""
    pid: int
    returncode: int | None = None
    signalled_at: float | None = None   # seconds after start; None: it ended first
    phase: str = ""                      # at the signal (or the last seen)
    phases: dict = field(default_factory=dict)  # phase → (first, last) seconds it was seen
    seen: dict = field(default_factory=dict)    # pid → Proc, every process ever seen below it
    duration: float = 0.0
    stderr: str = ""


def _phase(pid: int, below: dict, folder: Path, dst: Path, started_wall: float) -> str:
    own_temporaries = temporaries(folder, pid)
    try:
        if not own_temporaries and dst.stat().st_mtime >= started_wall:
            return "published"
    except FileNotFoundError:
        pass
    commands = [proctree.command_line(p) for p in below]
    if any("forkserver" in c for c in commands):
        return "verifying"
    if any("biocompress.cli" in c for c in commands):
        return "encoding"
    if own_temporaries:
        return "writing"
    if not proctree.catches(pid, signal.SIGTERM):
        return "starting"
    return "reading"


def run_and_signal(command: list[str], env: dict, folder: Path, dst: Path, at: float | None,
                   sig: int = signal.SIGKILL, *, anchor: str | None = None, term_timeout: float = 120.0) -> Watched:
    """Start ``command`` in its own session; ``at`` seconds after the start (or after phase
    ``anchor`` is first seen) send ``sig`` to its main process only (None: let it finish).
    Returns once the main process has ended."""
    started_wall = time.time()
    t0 = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # a Ctrl-C of the campaign must not reach it
    w = Watched(proc.pid)
    try:
        while proc.poll() is None:
            below = proctree.descendants(proc.pid)
            w.seen.update(below)
            now = time.monotonic() - t0
            w.phase = _phase(proc.pid, below, folder, dst, started_wall)
            first, _ = w.phases.get(w.phase, (now, now))
            w.phases[w.phase] = (first, now)
            origin = 0.0 if anchor is None else w.phases.get(anchor, (None,))[0]
            if at is not None and origin is not None and now >= origin + at:
                os.kill(proc.pid, sig)
                w.signalled_at = now
                break
            time.sleep(POLL_S)
        try:
            _, w.stderr = proc.communicate(timeout=term_timeout)
        except subprocess.TimeoutExpired:  # a SIGTERM that did not end it: a hang, end it now
            os.killpg(proc.pid, signal.SIGKILL)
            _, w.stderr = proc.communicate()
    except BaseException:
        proctree.kill_all(list(w.seen.values()) + list(proctree.session_members(proc.pid).values()))
        proc.kill()
        raise
    w.returncode = proc.returncode
    w.duration = time.monotonic() - t0
    # processes forked between the last walk and the signal: still in the run's session
    w.seen.update(proctree.session_members(proc.pid))
    return w


def alive_after(procs, seconds: float, since: float) -> list[proctree.Proc]:
    """The processes of ``procs`` still alive ``seconds`` after the monotonic time ``since``."""
    time.sleep(max(0.0, since + seconds - time.monotonic()))
    return [p for p in procs if proctree.is_alive(p)]
