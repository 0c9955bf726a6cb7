"""A killed or terminated ``compress`` leaves no process and, after the next run in its folder,
no temporary file.

Each test starts the real CLI on a recording large enough for worker processes (several
million samples), waits until workers and the temporary archive exist, then sends SIGKILL
or SIGTERM to the main process only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import concurrent.futures.process as cf_process

import pytest

from biocompress.system import interrupts
from biocompress.system.outputs import is_temporary
from biocompress.codecs.pool import default_workers
from conftest import REPO, SAMPLES_DIR
from synthetic_files import random_walk_codes, write_edf

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

SFREQ = 256
START_TIMEOUT_S = 120  # generous: a loaded CI machine starts Python, MNE and the workers slowly
GONE_WITHIN_S = 5


@pytest.fixture(scope="module")
def big_edf(tmp_path_factory) -> Path:
    """64 channels × 4 min at 256 Hz: 3.9 M samples, well above the in-process threshold."""
    folder = tmp_path_factory.mktemp("big")
    return write_edf(folder / "big.edf", random_walk_codes(64, SFREQ * 240), SFREQ)


def _stat(pid: int):
    """(state, ppid, start ticks) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every process below ``root``: pid → start ticks."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = st
    found, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for pid, (_, ppid, start) in parents.items():
            if ppid == p and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in ("Z", "X")


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temporary(p.name))


def _reads_temporary(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` holds a temporary archive of ``folder`` open read-only (the
    writer holds it read-write: this is the verification)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
            flags = next(line for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                         if line.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if target.parent == folder and is_temporary(target.name) and int(flags.split()[1], 8) & os.O_ACCMODE == 0:
            return True
    return False


def _script_launcher() -> list[str]:
    """What the installed ``biocompress`` script runs: the entry point pyproject.toml declares."""
    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["biocompress"]
    module, _, name = entry.partition(":")
    return ["-c", f"import sys; from {module} import {name}; sys.argv[0] = 'biocompress'; sys.exit({name}())"]


LAUNCHERS = {"python -m": ["-m", "biocompress.cli"], "script": None}


def _start_compress(src: Path, dst: Path, launcher: str = "python -m") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    how = LAUNCHERS[launcher] or _script_launcher()
    return subprocess.Popen([sys.executable, *how, "compress", str(src), "-o", str(dst)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # a terminal's Ctrl-C must not reach the test run


def _wait_for(proc: subprocess.Popen, folder: Path, phase: str) -> dict[int, int]:
    """Wait until the run has a temporary archive and the workers of ``phase``; return every
    process below it seen so far."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"compress ended (exit {proc.returncode}) before the moment wanted: {err[-2000:]}")
        now = _descendants(proc.pid)
        seen.update(now)
        cmds = {pid: _cmdline(pid) for pid in now}
        # BlockPool workers are forks: the same command line as the run
        ready = any("biocompress.cli" in c for c in cmds.values())
        if phase == "verifying":  # the same workers decode; the run reads its temporary archive
            ready = ready and _reads_temporary(proc.pid, folder)
        if ready and _temporaries(folder):
            return seen
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    pytest.fail(f"no {phase} workers within {START_TIMEOUT_S} s")


def _assert_all_gone(procs: dict[int, int]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline:
        alive = [pid for pid, start in procs.items() if _alive(pid, start)]
        if not alive:
            return
        time.sleep(0.1)
    details = {pid: _cmdline(pid)[:120] for pid in alive}
    for pid in alive:  # leave nothing behind even when failing
        os.kill(pid, signal.SIGKILL)
    pytest.fail(f"processes of the killed run still alive after {GONE_WITHIN_S} s: {details}")


def _needs_workers():
    if default_workers() < 2:
        pytest.skip("one core: compress runs in-process, no worker to orphan")


@pytest.mark.parametrize("phase", ["encoding", "verifying"])
def test_kill_9_leaves_no_process_and_next_run_removes_the_temporary(tmp_path, big_edf, phase):
    _needs_workers()
    out = tmp_path / "big.bc.h5"
    proc = _start_compress(big_edf, out)
    procs = _wait_for(proc, tmp_path, phase)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    procs.update({pid: start for pid, start in _descendants(proc.pid).items()})
    _assert_all_gone(procs)
    assert not out.exists()
    left = _temporaries(tmp_path)
    assert left, "a kill -9 cannot clean up: the temporary archive should still be there"

    # the next run writing into that folder removes it, and nothing else
    keep = tmp_path / ".keep.me.tmp"
    keep.write_bytes(b"not ours")
    small = tmp_path / "small.bc.h5"
    done = subprocess.run([sys.executable, "-m", "biocompress.cli", "compress", str(SAMPLES_DIR / "chtypes_edf.edf"),
                           "-o", str(small)], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".keep.me.tmp", "small.bc.h5"])
    assert keep.read_bytes() == b"not ours"


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, big_edf, sig, launcher):
    _needs_workers()
    out = tmp_path / "big.bc.h5"
    proc = _start_compress(big_edf, out, launcher)
    procs = _wait_for(proc, tmp_path, "encoding")
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    _assert_all_gone(procs)
    assert list(tmp_path.iterdir()) == []  # no temporary, no archive


def test_the_cli_takes_over_signals_before_the_heavy_imports():
    """Until main() has installed its handlers, SIGTERM kills the CLI outright and Ctrl-C prints
    a traceback: importing the package and the CLI must stay cheap (the heavy modules load
    when a command needs them), and the public API still finds them."""
    probe = ("import sys, biocompress.cli; heavy = ('mne', 'h5py', 'numba', 'scipy', 'torch'); "
             "print(sorted(m for m in heavy if m in sys.modules)); "
             "import biocompress; from biocompress import read_raw; "
             "print(biocompress.compress.__module__, read_raw.__module__, biocompress.Archive.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "[]"
    assert second.split() == ["biocompress.files.compress", "biocompress.files.read", "biocompress.container.reader"]


def test_a_signal_in_a_critical_section_interrupts_when_it_ends():
    old = signal.signal(signal.SIGUSR1, interrupts.handler)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                signal.raise_signal(signal.SIGUSR1)
                reached.append("the end of the section")
        assert reached == ["the end of the section"]
        with pytest.raises(KeyboardInterrupt):  # outside a section: at once
            signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, old)


# The CLI's handler, and a signal arriving exactly while the block pool starts its workers:
# in an at-fork callback (where a KeyboardInterrupt is swallowed: the run went on) or while
# the pool's manager thread is made (workers left waiting for work: the process hung at exit).
_POOL_START = """
import concurrent.futures.process as cfp, os, signal, sys
import numpy as np
from biocompress.codecs.pool import BlockPool
from biocompress.codecs.lossless import LPCX3Codec
from biocompress.system import interrupts

signal.signal(signal.SIGUSR1, interrupts.handler)
fire = lambda: signal.raise_signal(signal.SIGUSR1)
if sys.argv[1] == "at-fork":
    os.register_at_fork(after_in_parent=fire)
else:
    made = cfp._ExecutorManagerThread.__init__
    def init(self, executor):
        fire()
        made(self, executor)
    cfp._ExecutorManagerThread.__init__ = init
config = LPCX3Codec().get_config()
codes = np.cumsum(np.random.default_rng(0).integers(-9, 10, (4, 4096)), axis=1)
try:
    with BlockPool(2) as pool:
        done = list(pool.encode_stream([(i, config, codes) for i in range(8)]))
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("moment", ["at-fork", "manager-thread"])
def test_a_signal_while_workers_start_interrupts_the_run_once_they_are_started(moment):
    if not hasattr(os, "register_at_fork") or not hasattr(cf_process, "_ExecutorManagerThread"):
        pytest.skip("no at-fork callbacks or another concurrent.futures")
    try:
        done = subprocess.run([sys.executable, "-c", _POOL_START, moment], env={**os.environ, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung: workers left waiting after the interrupt")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "interrupted", done.stderr



def test_an_interrupt_swallowed_by_a_callback_is_delivered_again():
    """Python can only report an exception raised in a destructor or a weakref callback (the
    import system has some): a SIGTERM whose KeyboardInterrupt was raised there was lost and
    the run went on. The CLI's report hook sends the interrupt again."""
    probe = """
import signal, sys, time
from biocompress import cli
sys.unraisablehook = cli._unraisable
signal.signal(signal.SIGINT, signal.default_int_handler)  # as main() installs one (a nohup'd parent ignores SIGINT)

class Closing:
    def __del__(self):
        raise KeyboardInterrupt

try:
    Closing()
    time.sleep(60)  # a real signal also ends a blocking wait
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "delivered", done.stderr
    assert done.stderr == ""


def test_an_interrupt_inside_exec_code_still_exits_130(tmp_path):
    """Run as ``python -m``, CPython ends a process by SIGINT (exit -2, not 130) once a
    KeyboardInterrupt has escaped code run by ``exec`` of a string (some imports do that),
    even when the CLI handled it."""
    (tmp_path / "interrupted_cli.py").write_text(
        "import sys\nfrom biocompress import cli\n\n"
        "def interrupted(path):\n    exec('raise KeyboardInterrupt')\n\n"
        "cli.archive_summary = interrupted\nsys.exit(cli.main())\n")
    done = subprocess.run([sys.executable, "-m", "interrupted_cli", "info", str(tmp_path / "x.bc.h5")],
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr
