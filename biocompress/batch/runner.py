"""run_batch(): a whole dataset converted, resumably, on a local process pool or a Dask cluster.

1. Walk the source (:mod:`.discover`), name the outputs (:mod:`.plan`), and compare with the
   destination's manifest (:mod:`.manifest`): what was done and has not changed is skipped,
   what failed or was interrupted is done again, a source whose files changed is redone
   (a task whose files were only touched finds them the same and does nothing).
2. Run one :func:`~biocompress.batch.task.run_task` per source on the executor, recording
   each outcome as it arrives; a failure is recorded and reported, and the batch goes on.
3. BIDS datasets: the scans files and the dataset description are written last, from the
   final names (:mod:`.bids`).
4. Temporaries of writers that are gone are removed, the report written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BadInputError, WriteError
from ..system import os_errors
from ..system.outputs import check_output, remove_stale_temporaries, temporary, writing
from . import bids
from .discover import STATE_FOLDER, Unit, find_units
from .manifest import Manifest
from .plan import EXPORT_EXTENSIONS, compressed_names, exported_name, restored_name
from .task import Task, _umask, run_task

LARGE_BYTES = 256 << 20  # a recording this large has its blocks spread over every worker
ORIGINALS = "original"  # in the state folder: files the batch rewrote, as they were
REPORT_COLUMNS = ("source", "action", "status", "this_run", "output", "source_bytes", "output_bytes", "ratio",
                  "seconds", "sha256", "error")


@dataclass
class Summary:
    """What a batch did. ``failed``: (source path relative to the root, one-line reason)."""

    sources: int = 0
    converted: int = 0
    copied: int = 0
    already_done: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    report: Path | None = None
    this_run: dict[str, str] = field(default_factory=dict)  # source → converted, copied, unchanged or failed
    codes: set[int] = field(default_factory=set)  # exit codes of the failures

    @property
    def exit_code(self) -> int:
        """0 when nothing failed; else the gravest failure's (internal 3, bad input 2, failed 1)."""
        return next((c for c in (3, 2, 1) if c in self.codes), 1 if self.failed else 0)

    @property
    def ratio(self) -> float | None:
        return self.bytes_in / self.bytes_out if self.bytes_out else None

    @property
    def throughput(self) -> float:
        """Source bytes handled this run per second."""
        return self.bytes_in / self.seconds if self.seconds > 0 else 0.0


class Reporter:
    """Receives a batch's progress (the command line draws it; the default says nothing)."""

    def begin(self, n_tasks: int, n_bytes: int, already_done: int) -> None: ...

    def finished(self, task: Task, outcome: dict) -> None: ...


def run_batch(src, dst, *, restore: bool = False, export_format: str | None = None, mode: str = "lossless",
              quality: int | None = None, max_error_uv: float | None = None, model=None,
              max_prdn: float | None = None, bitrate: float | None = None, allow_changes: bool = False,
              force: bool = False, workers: int | None = None,
              executor: str = "local", scheduler: str | None = None, include=(), exclude=(), report=None,
              reporter: Reporter | None = None) -> Summary:
    """Convert every recording under ``src`` into an archive under ``dst`` (the tree mirrored,
    other files copied), or with ``restore`` / ``export_format`` turn a tree of archives back
    into recordings. Resumable: run it again to finish an interrupted or failed batch.

    ``workers``: processes (default: every core); ``executor``: "local" or "dask" (with
    ``scheduler`` an address ``tcp://host:port``, else a LocalCluster on 127.0.0.1).
    ``include``/``exclude``: globs over paths relative to ``src``. ``force``: replace files
    in ``dst`` that this batch did not write. ``report``: a CSV file, one row per source.

    Returns a :class:`Summary`; failures are in ``summary.failed``, not raised. Raises
    :class:`BadInputError` before any work for an unusable source, destination, option or
    report path, or when another batch is writing to ``dst``.
    """
    from ..codecs.pool import default_workers

    started = time.perf_counter()
    direction = "export" if export_format else "restore" if restore else "compress"
    options = _options(direction, export_format, mode, quality, max_error_uv, model, allow_changes, max_prdn,
                       bitrate)  # before _roots creates the destination: a refused option leaves nothing
    src, dst = _roots(src, dst)
    if executor not in ("local", "dask"):
        raise BadInputError(None, f"--executor must be local or dask; got {executor!r}")
    if scheduler and executor != "dask":
        raise BadInputError(None, "--scheduler needs --executor dask")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise BadInputError(None, f"--workers must be at least 1; got {workers}")
    report = check_output(report, [], force=True, kind="recording") if report is not None else None
    reporter = reporter or Reporter()
    summary = Summary(report=report)
    with Manifest(dst) as manifest:
        manifest.claim(source=src, direction=direction + (f" {export_format}" if export_format else ""))
        early = _executor(executor, workers, scheduler) if executor == "local" else None
        if early is not None:
            early.start()  # its fork server imports and loads the codecs while the work is found and planned
        try:
            found = find_units(src, archives=direction != "compress", include=include, exclude=exclude)
            rows = manifest.rows()
            is_bids = bids.is_bids(src)
            later = [u for u in found.units if is_bids and u.kind == "file" and bids.rewritten(u.rel)]
            units = [u for u in found.units if u not in later]
            outputs = _outputs(src, direction, export_format, units, rows)
            for rel in found.folders:
                (dst / rel).mkdir(parents=True, exist_ok=True)
            folders = sorted({(dst / out).parent for out in outputs.values()} | {dst})
            for folder in folders:
                remove_stale_temporaries(folder)
            summary.sources = len(units) + len(later)
            plan, entries = [], []
            for u in units:
                action = _action(direction, u)
                task, entry = _task_for(src, dst, u, action, outputs[u.rel], rows.get(u.rel), options, force)
                if task is None:
                    summary.already_done += 1
                else:
                    plan.append(task)
                    entries.append(entry)
            _spread_large(plan, workers, executor)
            rewrites = []  # BIDS files that name the recordings: written last, from the final names
            for u in later:
                task, entry = _bids_task(src, dst, u, direction, outputs, rows.get(u.rel), options, force)
                if task is None:
                    summary.already_done += 1
                else:
                    rewrites.append((u.rel, task, entry))
            reporter.begin(len(plan) + len(rewrites), sum(e["source_bytes"] for e in entries)
                           + sum(e["source_bytes"] for _, _, e in rewrites), summary.already_done)
            manifest.start(entries)
            by_source = {e["task_source"]: e["source"] for e in entries}
        except BaseException:
            if early is not None:
                early.close(abort=True)
            raise
        run = (early or _executor(executor, workers, scheduler)) if plan else None
        if run is None and early is not None:
            early.close()
        try:
            for task, outcome in (_run_phases(run, plan, workers) if run else ()):
                manifest.finish(by_source[task.source], outcome)
                _count(summary, task, outcome, by_source[task.source])
                reporter.finished(task, outcome)
        except BaseException:
            if run is not None:
                run.close(abort=True)
                run = None
            for folder in folders:
                remove_stale_temporaries(folder)
            raise
        finally:
            if run is not None:
                if hasattr(run, "sweep"):
                    run.sweep([str(f) for f in folders])
                run.close()
        for rel, task, entry in rewrites:
            manifest.start([entry])
            outcome = run_task(task)
            manifest.finish(rel, outcome)
            _count(summary, task, outcome, rel)
            reporter.finished(task, outcome)
        for folder in folders:
            remove_stale_temporaries(folder)
        summary.seconds = time.perf_counter() - started
        if report is not None:
            _write_report(report, manifest.rows(), summary)
    return summary


def _roots(src, dst) -> tuple[Path, Path]:
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise BadInputError(src, "no such folder" if not src.exists() else "is not a folder; batch converts a "
                            "folder of recordings (compress takes single files)")
    src = src.resolve()
    if dst.exists() and not dst.is_dir():
        raise BadInputError(dst, "exists and is not a folder")
    where = dst.resolve()
    if where == src or src in where.parents or where in src.parents:
        raise BadInputError(dst, f"the destination and the source ({src}) must not lie inside one another")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(dst, f"cannot create the destination folder: {os_errors.problem(exc) or exc}") from None
    return src, dst.resolve()


def _options(direction, export_format, mode, quality, max_error_uv, model, allow_changes, max_prdn=None,
             bitrate=None) -> dict:
    if direction == "compress":
        from ..files.modes import mode_problem

        problem = mode_problem(mode, quality, max_error_uv, max_prdn, bitrate)
        if problem:
            raise BadInputError(None, problem)
        model = str(Path(model).resolve()) if model is not None else None
        if model is not None and not Path(model).is_file():
            raise BadInputError(model, "no such model file")
        targets = {k: v for k, v in (("max_prdn", max_prdn), ("bitrate", bitrate)) if v is not None}
        return {"mode": mode, "quality": quality, "max_error_uv": max_error_uv, "model": model, **targets}
    if direction == "export" and export_format not in EXPORT_EXTENSIONS:
        raise BadInputError(None, f"--export must be one of {', '.join(sorted(EXPORT_EXTENSIONS))}; "
                            f"got {export_format!r}")
    return {"allow_changes": allow_changes, **({"format": export_format} if export_format else {})}


def _action(direction: str, unit: Unit) -> str:
    if unit.kind == "file":
        return "copy"
    return direction


def _outputs(src: Path, direction: str, export_format, units: list[Unit], rows: dict) -> dict[str, str]:
    previous = {rel: r["output"] for rel, r in rows.items() if r["output"]}
    if direction == "compress":
        return compressed_names(units, previous)
    out = {}
    for u in units:
        if u.kind == "file":
            out[u.rel] = u.rel
        elif u.rel in previous and rows[u.rel]["status"] == "done":
            out[u.rel] = previous[u.rel]
        else:
            out[u.rel] = exported_name(u.rel, export_format) if direction == "export" else restored_name(src, u.rel)
    return out


def _members(src: Path, unit: Unit) -> list[list]:
    found = []
    for rel in unit.members:
        try:
            st = os.stat(src / rel)
            found.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            found.append([rel, -1, 0])
    return found


def _intact(path: Path, row: dict) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == row["output_bytes"] and st.st_mtime_ns == row["output_mtime_ns"]


def _task_for(src: Path, dst: Path, unit: Unit, action: str, out_rel: str, row: dict | None, options: dict,
              force: bool, **extra) -> tuple[Task | None, dict | None]:
    """The task for ``unit`` and its manifest entry, or (None, None) when its output is done
    and nothing it depends on changed."""
    members = _members(src, unit)
    recipe = json.dumps({"action": action, **(options if action not in ("copy",) else {}),
                         **{k: v for k, v in extra.items() if k in ("renames", "note")}}, sort_keys=True)
    output = dst / out_rel
    expect = None
    if row is not None and row["status"] == "done" and row["recipe"] == recipe and row["output"] == out_rel \
            and _intact(output, row):
        if json.loads(row["members"]) == members:
            return None, None
        expect = row["sha256"]  # touched: redo only if the bytes changed
    owned = bool(row is not None and row["owned"] and row["output"] == out_rel) or not os.path.lexists(output)
    task_options = {k: v for k, v in options.items() if k in ("mode", "quality", "max_error_uv", "model",
                                                               "max_prdn", "bitrate", "allow_changes")}
    task = Task(action, str(src / unit.rel), tuple(str(src / m) for m in unit.members), str(output), out_rel,
                overwrite=force or owned, expect_sha256=expect,
                **(task_options if action != "copy" else {}), **extra)
    entry = {"source": unit.rel, "task_source": task.source, "action": action, "members": members,
             "source_bytes": sum(max(0, m[1]) for m in members), "output": out_rel, "recipe": recipe,
             "owned": int(owned)}
    return task, entry


def _bids_task(src: Path, dst: Path, unit: Unit, direction: str, outputs: dict, row, options, force):
    if bids.is_scans(unit.rel):
        folder = unit.rel.rsplit("/", 1)[0] + "/" if "/" in unit.rel else ""
        renames = tuple(sorted((s, o) for s, o in outputs.items() if s != o and s.startswith(folder)))
        return _task_for(src, dst, unit, "scans", unit.rel, row, {}, force, renames=renames, scans_rel=unit.rel)
    kept = dst / STATE_FOLDER / ORIGINALS / bids.DESCRIPTION
    if direction == "compress":
        mode = options["mode"] + (f", quality {options['quality']}" if options["quality"] is not None else "") \
            + (f", max error {options['max_error_uv']} µV" if options["max_error_uv"] is not None else "") \
            + (f", max PRDN {options['max_prdn']} %" if options.get("max_prdn") is not None else "") \
            + (f", {options['bitrate']} bits/sample" if options.get("bitrate") is not None else "")
        note = f"recordings compressed into biocompress archives (.bc.h5), mode {mode}; other files copied unchanged"
        return _task_for(src, dst, unit, "description", unit.rel, row, options, force, note=note,
                         keep_original=str(kept))
    original = src / STATE_FOLDER / ORIGINALS / bids.DESCRIPTION
    if direction == "restore" and original.is_file():  # the description as it was before compression
        kept_rel = f"{STATE_FOLDER}/{ORIGINALS}/{bids.DESCRIPTION}"
        moved = Unit("file", kept_rel, (kept_rel,))
        task, entry = _task_for(src, dst, moved, "copy", unit.rel, row, {}, force)
        if entry is not None:
            entry["source"] = unit.rel
        return task, entry
    note = f"recordings exported through MNE ({options['format']}) from biocompress archives" \
        if direction == "export" else "recordings restored from biocompress archives"
    return _task_for(src, dst, unit, "description", unit.rel, row, options, force, note=note)


def _spread_large(plan: list[Task], workers: int, executor: str) -> None:
    """Largest first (the pool ends with small tasks, so no core waits on one long file); on a
    local pool a recording of LARGE_BYTES or more has its blocks spread over every worker."""
    sizes = {t.source: sum(os.stat(m).st_size for m in t.members if os.path.exists(m)) for t in plan}
    plan.sort(key=lambda t: -sizes[t.source])
    if executor == "local" and workers > 1:
        for i, t in enumerate(plan):
            if t.action == "compress" and sizes[t.source] >= LARGE_BYTES:
                plan[i] = replace(t, block_workers=workers)


def _run_phases(run, plan: list[Task], workers: int):
    """Large recordings one at a time (each uses every worker), then the rest, ``workers`` at once."""
    large = [t for t in plan if t.block_workers > 1]
    rest = [t for t in plan if t.block_workers == 1]
    if large:
        yield from run.run(large, window=1)
    if rest:
        yield from run.run(rest, window=workers)


def _executor(kind: str, workers: int, scheduler: str | None):
    from .executors import DaskExecutor, LocalExecutor

    if kind == "dask":
        try:
            return DaskExecutor(workers, scheduler)
        except ImportError:
            raise BadInputError(None, "--executor dask needs dask and distributed: "
                                "pip install 'biocompress[batch]'") from None
        except OSError as exc:
            raise BadInputError(None, f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    return LocalExecutor(workers)


def _count(summary: Summary, task: Task, outcome: dict, rel: str) -> None:
    if outcome["status"] == "failed":
        summary.failed.append((rel, outcome["error"]))
        summary.codes.add(outcome.get("code") or 1)
        summary.this_run[rel] = "failed"
        return
    if outcome["status"] == "unchanged":
        summary.unchanged += 1
        summary.this_run[rel] = "unchanged"
        return
    if task.action == "copy":
        summary.copied += 1
        summary.this_run[rel] = "copied"
    else:
        summary.converted += 1
        summary.this_run[rel] = "converted"
    summary.bytes_in += outcome["source_bytes"] or 0
    summary.bytes_out += outcome["output_bytes"] or 0


def _write_report(path: Path, rows: dict, summary: Summary) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for rel, r in rows.items():
        this_run = summary.this_run.get(rel, "already done" if r["status"] == "done" else "not run")
        w.writerow([rel, r["action"], r["status"], this_run, r["output"], r["source_bytes"], r["output_bytes"],
                    r["ratio"], None if r["seconds"] is None else round(r["seconds"], 3), r["sha256"],
                    r["error"]])
    with writing(path):
        tmp = temporary(path)
        try:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
