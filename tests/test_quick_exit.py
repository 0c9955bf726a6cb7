"""A finished command ends without the interpreter's teardown, and without losing what a
normal exit does: atexit handlers, flushed output, no worker process left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_exit_now_runs_atexit_handlers_and_flushes_output():
    done = _run("""
        import atexit, sys
        from biocompress.system.quick_exit import exit_now
        atexit.register(lambda: print("handler ran"))
        print("buffered", end="")
        sys.stderr.write("err")
        exit_now(3)
        print("not reached")
    """)
    assert done.returncode == 3
    assert done.stdout == "bufferedhandler ran\n"
    assert done.stderr == "err"


@pytest.mark.parametrize("setup, code", [
    ("import threading, time; threading.Thread(target=time.sleep, args=(0.5,)).start()", "0"),
    ("", "'a message'"),
])
def test_exit_now_leaves_the_ordinary_exit_where_it_is_not_safe(setup, code):
    done = _run(f"""
        {setup}
        from biocompress.system.quick_exit import exit_now
        exit_now({code})
        print("returned")
    """)
    assert done.returncode == 0 and done.stdout == "returned\n"


def test_exit_now_stops_the_read_pool_workers():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: no read pool")
    done = _run("""
        import os
        from biocompress.codecs import pool
        p = pool.read_pool()
        print(*[w.pid for w in p._processes.values()])
        from biocompress.system.quick_exit import exit_now
        exit_now(0)
    """)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]


def test_cli_compress_ends_with_its_exit_code_and_a_complete_archive(tmp_path):
    dst = tmp_path / "s.bc.h5"
    run = [sys.executable, "-m", "biocompress.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(run + ["compress", str(SAMPLES / "chtypes_edf.edf"), "-o", str(dst)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.bc.h5"]
    checked = subprocess.run(run + ["verify", str(dst)], capture_output=True, text=True, timeout=300, env=env)
    assert checked.returncode == 0 and "OK" in checked.stdout
    missing = subprocess.run(run + ["info", str(tmp_path / "absent.bc.h5")], capture_output=True, text=True,
                             timeout=300, env=env)
    assert missing.returncode == 2 and "absent.bc.h5" in missing.stderr
