"""A campaign: clean archives, their baselines, mutants × operations → classified rows."""

from __future__ import annotations

import csv
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .h5map import map_archive
from .mutate import mutate
from .operations import OUTCOMES, classify, operations_for
from .targets import KINDS
from .worker import Worker

COLUMNS = ("mutant", "kind", "mutation", "offset", "length", "region", "region_class", "operation", "via", "outcome",
           "exc_type", "message", "location", "raised_at", "peak_rss_mb", "delta_mb", "seconds")
BAD = {"HANG", "CRASH", "SILENT_WRONG", "VERIFY_OK_THEN_FAIL", "TRACEBACK", "MEMORY"}


@dataclass
class Prepared:
    """A clean archive ready to mutate: its bytes, map, and what each operation gives on it."""
    target: dict
    data: bytes
    amap: object
    baseline: dict  # operation → facts on the clean archive


def prepare(workdir: Path, kinds, worker: Worker) -> dict[str, Prepared]:
    out = {}
    for t in worker.build(workdir, kinds):
        target = {**t, "clean_data": str(workdir / f"clean_{t['kind']}.npy")}
        Path(target["clean_data"]).unlink(missing_ok=True)  # written afresh by the worker's first read
        baseline = {op: worker.run(op, t["archive"], target) for op in operations_for(target)}
        out[t["kind"]] = Prepared(target, Path(t["archive"]).read_bytes(), map_archive(t["archive"]), baseline)
    return out


def check_baselines(prepared: dict[str, Prepared]) -> list[str]:
    """Problems with the clean archives themselves (reported, never hidden)."""
    problems = []
    for kind, p in prepared.items():
        for op, facts in p.baseline.items():
            if facts.get("status") not in ("exited", "returned") or facts.get("exit_code", 0) != 0:
                problems.append(f"clean {kind} archive: {op} gives {facts.get('status')} "
                                f"exit {facts.get('exit_code')}: {facts.get('exc_type') or ''} {facts.get('message', '')}")
    return problems


def run_mutant(i: int, p: Prepared, rng: np.random.Generator, worker: Worker, scratch: Path,
               memory_limit_mb: float, subprocess_cli: bool = False, keep_dir: Path | None = None) -> list[dict]:
    m = mutate(p.data, p.amap, rng)
    path = scratch / f"mutant_{i:06d}_{p.target['kind']}.bc.h5"
    path.write_bytes(m.data)
    base = {"mutant": i, "kind": p.target["kind"], "mutation": m.mutation, "offset": m.offset, "length": m.length,
            "region": m.region.name, "region_class": m.region.cls}
    rows, judged = [], {}
    try:
        for op in operations_for(p.target):
            facts = worker.run(op, path, p.target, subprocess_cli=subprocess_cli)
            outcome, detail = classify(facts, p.baseline[op], memory_limit_mb)
            judged[op] = (outcome, detail, facts)
            via = "api" if op == "read_raw" else ("subprocess" if subprocess_cli else "cli-runner")
            rows.append({**base, "operation": op, "via": via, "outcome": outcome, "exc_type": facts.get("exc_type", ""),
                         "message": detail or facts.get("message", ""), "location": facts.get("location", ""),
                         "raised_at": facts.get("raised_at", ""), "peak_rss_mb": facts.get("peak_rss_mb"),
                         "delta_mb": facts.get("delta_mb"), "seconds": facts.get("seconds"),
                         "_error": facts.get("message", "")})
        verify_ok = judged.get("verify", ("",))[0] == "IDENTICAL" and judged["verify"][2].get("exit_code") == 0
        for later in ("read_raw", "restore"):
            if verify_ok and later in judged and judged[later][0] != "IDENTICAL":
                outcome, detail, facts = judged[later]
                rows.append({**base, "operation": f"verify->{later}", "via": "", "outcome": "VERIFY_OK_THEN_FAIL",
                             "exc_type": facts.get("exc_type", ""), "message": f"{outcome}: {detail}",
                             "location": facts.get("location", ""), "raised_at": facts.get("raised_at", ""),
                             "peak_rss_mb": None, "delta_mb": None, "seconds": None})
        if keep_dir is not None and any(r["outcome"] in BAD for r in rows):
            keep_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, keep_dir / f"{i:06d}_{p.target['kind']}_{m.mutation}_{m.offset}.bc.h5")
    finally:
        path.unlink(missing_ok=True)
    return rows


def run_campaign(n_mutants: int, workdir, *, seed: int = 0, kinds=KINDS, minutes: float | None = None,
                 csv_path=None, keep_dir=None, timeout: float = 60.0, as_limit_mb: int = 3072,
                 memory_limit_mb: float = 256.0, cpu: int | None = None, subprocess_every: int = 0,
                 recycle_every: int = 250, log=print) -> tuple[list[dict], dict[str, Prepared]]:
    """Mutants 0 … n−1 (kinds in turn; mutant i drawn from seed and i alone, so any one is replayable)."""
    workdir = Path(workdir)
    scratch = workdir / "mutants"
    scratch.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60 * minutes if minutes else None
    rows: list[dict] = []
    writer = None
    with Worker(timeout=timeout, as_limit_mb=as_limit_mb, cpu=cpu, scratch=scratch) as worker:
        prepared = prepare(workdir, kinds, worker)
        for problem in check_baselines(prepared):
            log(f"warning: {problem}")
        f = open(csv_path, "w", newline="") if csv_path else None
        try:
            if f:
                writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
                writer.writeheader()
            for i in range(n_mutants):
                if deadline and time.monotonic() > deadline:
                    log(f"time limit reached after {i} mutants")
                    break
                if i and recycle_every and i % recycle_every == 0:
                    worker.recycle()
                kind = list(prepared)[i % len(prepared)]
                rng = np.random.default_rng([seed, i])
                new = run_mutant(i, prepared[kind], rng, worker, scratch, memory_limit_mb,
                                 subprocess_cli=bool(subprocess_every) and (i // len(prepared)) % subprocess_every == 0,
                                 keep_dir=Path(keep_dir) if keep_dir else None)
                rows += new
                if writer:
                    writer.writerows(new)
                    f.flush()
                if (i + 1) % 50 == 0:
                    log(f"{i + 1} mutants, {sum(r['outcome'] in BAD for r in rows)} bad rows so far")
        finally:
            if f:
                f.close()
    return rows, prepared


# --- summaries ---------------------------------------------------------------------------
def outcome_table(rows: list[dict], by: str = "kind") -> dict[str, Counter]:
    table: dict[str, Counter] = {}
    for r in rows:
        table.setdefault(r[by], Counter())[r["outcome"]] += 1
    return table


def format_table(table: dict[str, Counter], label: str = "kind") -> str:
    cols = [o for o in OUTCOMES if any(c[o] for c in table.values())]
    width = max([len(label)] + [len(k) for k in table]) + 2
    lines = [label.ljust(width) + "".join(c.rjust(max(len(c), 6) + 2) for c in cols) + "   total"]
    for key, counts in table.items():
        lines.append(key.ljust(width) + "".join(str(counts[c]).rjust(max(len(c), 6) + 2) for c in cols)
                     + str(sum(counts.values())).rjust(8))
    total = Counter()
    for c in table.values():
        total.update(c)
    lines.append("all".ljust(width) + "".join(str(total[c]).rjust(max(len(c), 6) + 2) for c in cols)
                 + str(sum(total.values())).rjust(8))
    return "\n".join(lines)


def _normalize(message: str) -> str:
    """A message with its numbers and paths blanked, so that one bug counts once."""
    message = re.sub(r"/\S+\.bc\.h5", "ARCHIVE", message or "")
    message = re.sub(r"0x[0-9a-fA-F]+", "#", message)
    return re.sub(r"\d+", "#", message)[:120]


def untyped_signatures(rows: list[dict]) -> Counter:
    """(exception type, first line with numbers blanked, innermost biocompress frame, raising frame) → count."""
    sig = Counter()
    for r in rows:
        if r["outcome"] == "TRACEBACK":
            msg = r.get("_error", r["message"])
            sig[(r["exc_type"] or "exit", _normalize(msg), r["location"], r["raised_at"])] += 1
    return sig


def bad_rows(rows: list[dict], outcomes=("SILENT_WRONG", "VERIFY_OK_THEN_FAIL", "HANG", "CRASH", "MEMORY")):
    return [r for r in rows if r["outcome"] in outcomes]
