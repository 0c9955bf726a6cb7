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
from pathlib import Path

import pytest

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


def _start_compress(src: Path, dst: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "biocompress.cli", "compress", str(src), "-o", str(dst)],
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
        if phase == "encoding":  # BlockPool workers are forks: the same command line as the run
            ready = any("biocompress.cli" in c for c in cmds.values())
        else:  # verification decodes on workers made by the fork server
            ready = any("forkserver" in c for c in cmds.values()) and len(now) >= 3
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, big_edf, sig):
    _needs_workers()
    out = tmp_path / "big.bc.h5"
    proc = _start_compress(big_edf, out)
    procs = _wait_for(proc, tmp_path, "encoding")
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    _assert_all_gone(procs)
    assert list(tmp_path.iterdir()) == []  # no temporary, no archive
