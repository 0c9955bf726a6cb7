"""The process table as /proc shows it: who descends from whom, who is still alive.

A process is named by (pid, start ticks) so that a PID reused by an unrelated
process after the one we saw has died is never taken for it.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    session: int
    start: int  # clock ticks after boot
    state: str


def read_proc(pid: int) -> Proc | None:
    """One process's row of /proc, or None when it is gone (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    state = fields[0].decode()
    if state in ("Z", "X"):
        return None
    # proc(5) fields 3 state, 4 ppid, 6 session, 22 starttime, counted here from after the name
    return Proc(pid, int(fields[1]), int(fields[3]), int(fields[19]), state)


def process_table() -> dict[int, Proc]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            row = read_proc(int(entry))
            if row is not None:
                table[row.pid] = row
    return table


def descendants(root: int, table: dict[int, Proc] | None = None) -> dict[int, Proc]:
    """Every live process below ``root``: children, grandchildren and so on."""
    table = process_table() if table is None else table
    children: dict[int, list[Proc]] = {}
    for row in table.values():
        children.setdefault(row.ppid, []).append(row)
    found, frontier = {}, [root]
    while frontier:
        for row in children.get(frontier.pop(), ()):
            if row.pid not in found:
                found[row.pid] = row
                frontier.append(row.pid)
    return found


def session_members(session: int, table: dict[int, Proc] | None = None) -> dict[int, Proc]:
    """Every live process of a session (a process started with its own session keeps its
    descendants in it, even once they are re-parented to PID 1)."""
    table = process_table() if table is None else table
    return {pid: row for pid, row in table.items() if row.session == session}


def is_alive(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.start == proc.start


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has installed a handler for ``sig`` (SigCgt in /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def kill_all(procs) -> None:
    """SIGKILL every process of ``procs`` still alive (the very ones seen, not a reused PID)."""
    for proc in procs:
        if is_alive(proc):
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass
