"""The one task a batch runs per source: compress a recording, copy a file, restore or export
an archive. Executors (a local process pool, Dask) only call :func:`run_task`.

A task never raises: it returns an outcome dict, with the failure's one-line message
(the file and the problem) when it failed. Every output is written under a temporary
name, checked, and renamed into place; the checks are those of the operation itself
(compress decodes the archive and compares it with the source before renaming it,
restore and export read their file back), and a compressed archive is read back once
more at its final path, its integrity manifest checked part by part.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import VerificationError
from ..system.failures import exit_status
from ..system.outputs import COMPANIONS, check_output, temporary, writing
from ..system.threads import one_blas_thread


@dataclass(frozen=True)
class Task:
    """What to do with one source. Paths are absolute (workers of a cluster see the same
    shared file system); ``output_rel`` is the output relative to the destination root."""

    action: str  # "compress", "copy", "restore", "export"; BIDS: "scans", "description"
    source: str
    members: tuple[str, ...]
    output: str
    output_rel: str
    overwrite: bool = False  # the output may be replaced (this batch made it, or --force)
    expect_sha256: str | None = None  # done before: do nothing if the sources still hash to this
    mode: str = "lossless"
    level: str = "default"  # the lossless coder's effort
    quality: int | None = None
    max_error_uv: float | None = None
    max_prdn: float | None = None  # lossy: a PRDN target instead of a quality
    bitrate: float | None = None  # lossy: bits per sample instead of a quality
    model: str | None = None
    allow_changes: bool = False
    block_workers: int = 1  # compress: processes over which one recording's blocks are spread
    renames: tuple[tuple[str, str], ...] = ()  # scans: (source path, output path), relative to the roots
    scans_rel: str = ""  # scans: the scans file's path relative to the dataset root
    note: str = ""  # description: what the conversion did (empty: copy it as it is)
    keep_original: str | None = None  # description: where the original is kept (absolute path)


def run_task(task: Task) -> dict:
    """Carry out ``task``; return its outcome: ``status`` ("done", "unchanged" or "failed"),
    ``error`` (one line naming the file and the problem), ``seconds``, ``sha256`` of the
    sources, ``source_bytes``, ``output_bytes``, ``ratio``, ``output_rel``, ``worker``."""
    import mne

    started = time.perf_counter()
    try:
        with one_blas_thread(), mne.utils.use_log_level("ERROR"):  # what MNE says about a file is kept in the archive
            if task.expect_sha256 is not None and _unchanged(task):
                return _outcome(task, "unchanged", started, sha256=task.expect_sha256)
            Path(task.output).parent.mkdir(parents=True, exist_ok=True)
            sha = _ACTIONS[task.action](task)
        return _outcome(task, "done", started, sha256=sha)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a line of the report
        code, message = exit_status(exc)
        return _outcome(task, "failed", started, error=message, code=code)


def _outcome(task: Task, status: str, started: float, **fields) -> dict:
    source_bytes = sum(_size(m) or 0 for m in task.members)
    out = {"status": status, "error": None, "code": 0, "sha256": None, "seconds": time.perf_counter() - started,
           "source_bytes": source_bytes, "output_rel": task.output_rel, "output_bytes": None,
           "output_mtime_ns": None, "ratio": None, "worker": f"{os.getpid()}@{socket.gethostname()}"}
    out.update(fields)
    if status != "failed":
        try:
            st = os.stat(task.output)
        except OSError:
            return out
        companions = [Path(task.output).with_suffix(e) for e in COMPANIONS.get(Path(task.output).suffix.lower(), ())]
        out["output_bytes"] = st.st_size + sum(_size(c) or 0 for c in companions)
        out["output_mtime_ns"] = st.st_mtime_ns
        out["ratio"] = round(source_bytes / out["output_bytes"], 4) if out["output_bytes"] else None
    return out


def _size(path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def members_sha256(paths, known=()) -> str:
    """SHA-256 over the SHA-256 of each file, in order: one fingerprint of a multi-file source.
    ``known``: the files an archive's provenance lists ({"name", "size", "sha256"}), hashed as
    compress read them; a file among them (same name, once, same size) is not read again."""
    from ..io.source import file_sha256

    names = [k.get("name") for k in known if isinstance(k, dict)]
    by_name = {k["name"]: k for k in known if isinstance(k, dict) and names.count(k.get("name")) == 1}
    combined = hashlib.sha256()
    for p in map(Path, paths):
        entry = by_name.get(p.name)
        same = entry is not None and entry.get("size") == _size(p) and isinstance(entry.get("sha256"), str)
        combined.update((entry["sha256"] if same else file_sha256(p)).encode())
    return combined.hexdigest()


def _unchanged(task: Task) -> bool:
    return os.path.isfile(task.output) and members_sha256(task.members) == task.expect_sha256


def _compress(task: Task) -> str:
    from ..container.reader import Archive
    from ..files.compress import compress

    compress(task.source, task.output, mode=task.mode, overwrite=task.overwrite, workers=task.block_workers,
             quality=task.quality, max_error_uv=task.max_error_uv, model=task.model, level=task.level,
             max_prdn=task.max_prdn, bitrate=task.bitrate)
    with Archive(task.output) as arc:  # the file now at the output's path, as readers will find it
        arc.check_metadata()
        hashed = arc.source.get("files") or []
    return members_sha256(task.members, known=hashed)


def _restore(task: Task) -> str:
    from ..files.restore import restore

    sha = members_sha256(task.members)
    restore(task.source, task.output, overwrite=task.overwrite, allow_changes=task.allow_changes)
    return sha


def _export(task: Task) -> str:
    from ..files.restore import export

    sha = members_sha256(task.members)
    export(task.source, task.output, overwrite=task.overwrite, allow_changes=task.allow_changes)
    return sha


def _copy(task: Task) -> str:
    """Copy a plain file through a temporary name; the copy is read back and compared."""
    src, dst = Path(task.source), check_output(task.output, [task.source], force=task.overwrite, kind="recording")
    st = os.stat(src)
    with writing(dst):
        tmp = temporary(dst)
        try:
            sha = _copy_hashed(src, tmp)
            if _hash_file(tmp) != sha:
                raise VerificationError(f"{dst}: the copy differs from {src}; nothing written")
            os.chmod(tmp, 0o666 & ~_umask())
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return hashlib.sha256(sha.encode()).hexdigest()  # as members_sha256 of the one file


def _scans(task: Task) -> str:
    from .bids import rename_scans

    data = Path(task.source).read_bytes()
    text = rename_scans(data.decode("utf-8"), task.scans_rel, dict(task.renames))
    _write_text(Path(task.output), text.encode("utf-8"), task)
    return hashlib.sha256(hashlib.sha256(data).hexdigest().encode()).hexdigest()


def _description(task: Task) -> str:
    from .bids import describe_conversion

    data = Path(task.source).read_bytes()
    if task.keep_original is not None:
        keep = Path(task.keep_original)
        keep.parent.mkdir(parents=True, exist_ok=True)
        _write_text(keep, data, Task("copy", task.source, task.members, str(keep), "", overwrite=True))
    text = describe_conversion(data.decode("utf-8"), task.note).encode("utf-8") if task.note else data
    _write_text(Path(task.output), text, task)
    return hashlib.sha256(hashlib.sha256(data).hexdigest().encode()).hexdigest()


def _write_text(dst: Path, data: bytes, task: Task) -> None:
    dst = check_output(dst, task.members, force=task.overwrite, kind="recording")
    with writing(dst):
        tmp = temporary(dst)
        try:
            tmp.write_bytes(data)
            if tmp.read_bytes() != data:
                raise VerificationError(f"{dst}: the file written differs from what was meant; nothing written")
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)


def _copy_hashed(src: Path, dst: Path) -> str:
    sha = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            sha.update(chunk)
            fout.write(chunk)
    return sha.hexdigest()


def _hash_file(path: Path) -> str:
    from ..io.source import file_sha256

    return file_sha256(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_ACTIONS = {"compress": _compress, "copy": _copy, "restore": _restore, "export": _export, "scans": _scans,
            "description": _description}


_DASK_WORKER_READY = False


def run_task_on_dask(task: Task) -> dict:
    """:func:`run_task` on a Dask worker, which is set up first (once per process) as a local
    pool's worker is: one BLAS thread, reads decoded in the process itself (without it, each
    task's verify would start a read pool of its own beside the other workers), and glibc's
    reuse of freed memory restored (see :func:`~biocompress.system.threads.reuse_freed_memory`)."""
    global _DASK_WORKER_READY
    if not _DASK_WORKER_READY:
        from ..codecs.pool import no_read_pool
        from ..system.threads import one_thread_per_process, reuse_freed_memory

        one_thread_per_process()
        no_read_pool()
        reuse_freed_memory()
        _DASK_WORKER_READY = True
    return run_task(task)


def start_local_worker() -> None:
    """Initializer of a local pool's worker: it ends with the batch (``kill -9`` included),
    uses one BLAS thread, and decodes reads itself (the other workers have the other cores)."""
    from ..codecs.pool import no_read_pool
    from ..system.processes import start_worker
    from ..system.threads import one_thread_per_process

    start_worker(through_server=True)
    one_thread_per_process()
    no_read_pool()
    quiet = os.open(os.devnull, os.O_WRONLY)  # readers that print (antio, …) would mix into the progress
    os.dup2(quiet, 1)
    os.close(quiet)
