"""A batch killed with SIGKILL (its whole process group: the batch, its fork server and its
workers at once) and run again finishes the job: every archive verifies, none is there
twice, no temporary is left, and the unreadable file is named on the terminal and in the
report."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biocompress.files.verify import verify_archive
from conftest import REPO, SAMPLES_DIR

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

START_TIMEOUT_S = 180  # a loaded machine starts Python, MNE and the workers slowly
RUN_TIMEOUT_S = 600
N_RECORDINGS = 10


def _batch(src: Path, dst: Path, report: Path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "biocompress.cli", "batch", str(src), str(dst), "--workers", "2",
           "--report", str(report)]
    return cmd, env


def _done_rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM files WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return -1


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            alive.append(int(entry))
    return alive


@pytest.fixture
def dataset(tmp_path) -> Path:
    src = tmp_path / "src"
    for i in range(N_RECORDINGS):
        folder = src / f"sub-{i % 3:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLES_DIR / ("Subject00_2.edf" if i % 2 else "MB0400FU.EDF"), folder / f"rec{i:02d}.edf")
    (src / "sub-00" / "notes.tsv").write_text("a\tb\n1\t2\n")
    (src / "sub-01" / "unreadable.edf").write_bytes(b"0       " + os.urandom(600))
    return src


@pytest.mark.parametrize("after_done", [0, 4], ids=["while-starting", "mid-run"])
def test_killed_batch_resumes_to_a_complete_verified_tree(dataset, tmp_path, after_done):
    dst, report = tmp_path / "dst", tmp_path / "report.csv"
    cmd, env = _batch(dataset, dst, report)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group
    db = dst / ".biocompress" / "batch.sqlite"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (after_done == 0 and _done_rows(db) >= 0 and any(dst.rglob("*.bctmp"))) \
                    or (after_done and _done_rows(db) >= after_done):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the batch ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    gone_by = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert _group_alive(proc.pid) == []

    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    said = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 2, said[-3000:]  # the unreadable file: bad input
    assert "unreadable.edf" in said.replace(" ", "") and "FAILED" in said

    recordings = sorted(p.relative_to(dataset) for p in dataset.rglob("rec*.edf"))
    archives = sorted(p.relative_to(dst) for p in dst.rglob("*.bc.h5"))
    assert archives == sorted(r.with_suffix(".bc.h5") for r in recordings)  # each once, nothing else
    for rec in recordings:
        assert verify_archive(dst / rec.with_suffix(".bc.h5"), dataset / rec)["ok"]
    assert (dst / "sub-00" / "notes.tsv").read_bytes() == (dataset / "sub-00" / "notes.tsv").read_bytes()
    assert sorted(p.name for p in dst.rglob("*") if p.name.endswith(".bctmp")) == []
    with open(report, newline="") as f:
        rows = {r["source"]: r for r in csv.DictReader(f)}
    assert rows["sub-01/unreadable.edf"]["status"] == "failed"
    assert "unreadable.edf" in rows["sub-01/unreadable.edf"]["error"]
    assert {s for s, r in rows.items() if r["status"] == "done"} == {str(r) for r in recordings} | {"sub-00/notes.tsv"}
