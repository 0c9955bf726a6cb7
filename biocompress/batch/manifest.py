"""A batch's record of its work: an SQLite database in the destination, and the lock that
keeps a second batch out of the same destination.

One row per source (a recording, an archive or a plain file, by its path relative to the
source root): what it was (its files' sizes and modification times, their SHA-256), what
was made of it and how (output, recipe), and how that went (status, error, timings,
sizes, ratio). Only the process that runs the batch writes here; workers report to it.
SQLite's transactions make each update all-or-nothing, so a batch killed at any moment
leaves a manifest the next run can trust: rows marked ``running`` are done again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path

from ..errors import BadInputError, WriteError
from ..system import os_errors
from .discover import STATE_FOLDER

DATABASE = "batch.sqlite"
LOCK = "batch.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY,      -- path relative to the source root (POSIX)
    action TEXT NOT NULL,         -- compress, copy, restore, export
    members TEXT NOT NULL,        -- JSON [[relative path, size, mtime_ns], ...] of every file it reads
    source_bytes INTEGER NOT NULL,
    sha256 TEXT,                  -- SHA-256 over its files' SHA-256, in member order
    output TEXT,                  -- path relative to the destination root
    recipe TEXT NOT NULL,         -- JSON of the options the output depends on
    status TEXT NOT NULL,         -- running, done, failed
    owned INTEGER NOT NULL DEFAULT 0,  -- the output path was free when this batch first wrote there
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL, seconds REAL,
    output_bytes INTEGER, output_mtime_ns INTEGER, ratio REAL
);
"""
COLUMNS = ("source", "action", "members", "source_bytes", "sha256", "output", "recipe", "status", "owned", "error",
           "attempts", "started", "finished", "seconds", "output_bytes", "output_mtime_ns", "ratio")


class Manifest:
    """The manifest of the batch writing to ``dst`` (use as a context manager: the lock is
    held from ``__enter__`` to ``__exit__``, and released by the kernel if the process dies)."""

    def __init__(self, dst):
        self.dst = Path(dst)
        self.folder = self.dst / STATE_FOLDER
        self._lock_fd: int | None = None
        self.db: sqlite3.Connection | None = None

    def __enter__(self):
        try:
            self.folder.mkdir(exist_ok=True)
            self._lock()
            self.db = sqlite3.connect(self.folder / DATABASE, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise BadInputError(self.folder / DATABASE, f"the batch manifest cannot be used ({exc}); "
                                "move it away to start this destination's batch afresh") from None
        except OSError as exc:
            self.close()
            raise WriteError(self.folder, f"cannot keep the batch manifest here: "
                             f"{os_errors.problem(exc) or exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _lock(self) -> None:
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise BadInputError(self.dst, "another batch is writing to this destination"
                                    + (f" ({holder})" if holder else "")
                                    + "; wait for it to finish or choose another destination") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        self._lock_fd = fd

    # --- settings ------------------------------------------------------------------
    def claim(self, **settings) -> None:
        """Record what this destination is for (source root, direction); refuse a batch
        that would mix another source or direction into it."""
        known = dict(self.db.execute("SELECT key, value FROM settings"))
        for key, value in settings.items():
            if key in known and known[key] != str(value):
                raise BadInputError(self.dst, f"this destination holds a batch with {key} {known[key]}, not "
                                    f"{value}; choose another destination")
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO settings VALUES (?, ?)",
                                [(k, str(v)) for k, v in settings.items()])

    # --- rows ----------------------------------------------------------------------
    def rows(self) -> dict[str, dict]:
        cur = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM files ORDER BY source")
        return {r[0]: dict(zip(COLUMNS, r)) for r in cur}

    def start(self, entries: list[dict]) -> None:
        """Mark work as begun: each entry has source, action, members, source_bytes, output, recipe
        and owned (whether the output's path was free before this batch wrote there; once owned,
        an output stays owned while its name stays the same)."""
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT INTO files (source, action, members, source_bytes, output, recipe, status, owned, attempts, "
                "started) VALUES (:source, :action, :members, :source_bytes, :output, :recipe, 'running', :owned, 1, "
                ":now) ON CONFLICT(source) DO UPDATE SET action=excluded.action, members=excluded.members, "
                "source_bytes=excluded.source_bytes, recipe=excluded.recipe, status='running', error=NULL, "
                "owned=CASE WHEN files.output = excluded.output THEN MAX(files.owned, excluded.owned) "
                "ELSE excluded.owned END, output=excluded.output, attempts=files.attempts + 1, "
                "started=excluded.started",
                [dict(e, members=json.dumps(e["members"]), now=now) for e in entries])

    def finish(self, source: str, result: dict) -> None:
        """Record a task's outcome (see :func:`biocompress.batch.task.run_task`)."""
        with self.db:
            self.db.execute(
                "UPDATE files SET status=:status, error=:error, finished=:finished, seconds=:seconds, "
                "sha256=COALESCE(:sha256, sha256), output=COALESCE(:output, output), output_bytes=:output_bytes, "
                "output_mtime_ns=:output_mtime_ns, ratio=:ratio WHERE source=:source",
                {"status": "done" if result["status"] in ("done", "unchanged") else "failed",
                 "error": result.get("error"), "finished": time.time(), "seconds": result.get("seconds"),
                 "sha256": result.get("sha256"), "output": result.get("output_rel"),
                 "output_bytes": result.get("output_bytes"), "output_mtime_ns": result.get("output_mtime_ns"),
                 "ratio": result.get("ratio"), "source": source})
