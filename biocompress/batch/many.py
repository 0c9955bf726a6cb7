"""Several inputs for ``compress`` and ``decompress`` (``biocompress compress a.edf b.bdf``,
``biocompress compress -r DIR -o OUT``): the batch's tasks on a local pool, without a
manifest. Outputs go beside each input, or into one folder (``-o DIR``; a folder given
with ``-r`` is mirrored there)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError
from ..io.source import FOLDER_FORMATS
from .discover import ARCHIVE_SUFFIX, Unit, find_units, suffix_of
from .executors import LocalExecutor
from .plan import compressed_names, restored_name
from .task import Task


def _expand(inputs, recursive: bool, archives: bool) -> list[tuple[Path, str, tuple[str, ...]]]:
    """(root, path relative to root, members relative to root) of every input."""
    found = []
    for p in map(Path, inputs):
        if p.is_dir() and (archives or suffix_of(p.name) not in FOLDER_FORMATS):
            if not recursive:
                raise BadInputError(p, "is a folder; use -r to take the "
                                    f"{'archives' if archives else 'recordings'} in it")
            kind = "archive" if archives else "recording"
            found += [(p, u.rel, u.members) for u in find_units(p, archives=archives).units if u.kind == kind]
        else:
            found.append((p.parent, p.name, (p.name,)))
    return found


def _unique(tasks: list[Task]) -> list[Task]:
    seen: dict[str, str] = {}
    for t in tasks:
        key = str(Path(t.output).resolve()).lower()
        if key in seen:
            raise BadInputError(t.output, f"{seen[key]} and {t.source} would both be written here; "
                                "give them different output folders")
        seen[key] = t.source
    return tasks


def compress_tasks(inputs, *, output_dir=None, recursive=False, force=False, mode="lossless", quality=None,
                   max_error_uv=None, model=None, level="default", max_prdn=None, bitrate=None) -> list[Task]:
    tasks = []
    for root, rel, members in _expand(inputs, recursive, archives=False):
        name = compressed_names([Unit("recording", rel, members)], {})[rel]
        out = (Path(output_dir) / name) if output_dir is not None else root / name
        tasks.append(Task("compress", str(root / rel), tuple(str(root / m) for m in members), str(out), name,
                          overwrite=force, mode=mode, level=level, quality=quality, max_error_uv=max_error_uv,
                          model=None if model is None else str(Path(model).resolve()), max_prdn=max_prdn,
                          bitrate=bitrate))
    return _unique(tasks)


def decompress_tasks(inputs, *, output_dir=None, recursive=False, force=False, allow_changes=False) -> list[Task]:
    tasks = []
    for root, rel, members in _expand(inputs, recursive, archives=True):
        name = restored_name(root, rel) if rel.lower().endswith(ARCHIVE_SUFFIX) else rel + ".fif"
        out = (Path(output_dir) / name) if output_dir is not None else root / name
        tasks.append(Task("restore", str(root / rel), (str(root / rel),), str(out), name, overwrite=force,
                          allow_changes=allow_changes))
    return _unique(tasks)


def run_tasks(tasks: list[Task], *, workers: int | None = None, reporter=None) -> list[tuple[Task, dict]]:
    """Run ``tasks`` on a local pool; return (task, outcome) in the order they finished."""
    from ..codecs.pool import default_workers

    workers = min(len(tasks), default_workers() if workers is None else max(1, int(workers)))
    done = []
    pool = LocalExecutor(workers)
    try:
        if reporter is not None:
            reporter.begin(len(tasks), sum(_size(m) for t in tasks for m in t.members), 0)
        for task, outcome in pool.run(tasks):
            done.append((task, outcome))
            if reporter is not None:
                reporter.finished(task, outcome)
    except BaseException:
        pool.close(abort=True)
        from ..system.outputs import remove_stale_temporaries

        for folder in {Path(t.output).parent for t in tasks}:
            remove_stale_temporaries(folder)
        raise
    pool.close()
    return done


def _size(path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def exit_code(outcomes) -> int:
    """0 when every task succeeded; else the gravest of their codes (internal 3, bad input 2, failed 1)."""
    codes = {o.get("code") or 1 for _, o in outcomes if o["status"] == "failed"}
    return next((c for c in (3, 2, 1) if c in codes), 0)
