"""Mutation fuzzer over biocompress archives (issue 10, item 9).

    python pipelines/fuzz.py --mutants 2000 --out fuzz.csv [--seed S]
                             [--kinds edf,bdf,float,lossy,near-lossless,float-lossy]
                             [--minutes M] [--keep DIR] [--no-crafted] [--markdown FILE]

Builds a clean archive of every kind from data_samples/, then damages copies of them
(bit flips, byte overwrites, truncations, zeroed pages, duplicated / moved / deleted
ranges; a good share aimed at the metadata: attributes, object headers, the index, JSON,
/channels, /edf) and runs on each what a user would: ``info --json``, ``verify``,
``verify ARCHIVE SOURCE``, ``read_raw(...).get_data()`` and, for EDF/BDF, ``restore``.
Every outcome is classified against the clean archive's (see fuzzkit/operations.py):
IDENTICAL, TYPED_ERROR, SILENT_WRONG, TRACEBACK, HANG, CRASH, MEMORY, VERIFY_OK_THEN_FAIL.
Then the crafted "memory bomb" archives are measured (fuzzkit/crafted.py).

Everything runs on one CPU: one worker process at a time (pinned, one BLAS/torch thread),
with a watchdog (``--timeout`` per operation) and an address-space cap (``--as-limit-mb``).
Mutant i depends only on (seed, i): a row of the CSV is replayable, and mutants with a
bad outcome are kept in ``--keep`` (default: beside the CSV). Exit code 0 when no
operation had a bad outcome, 1 otherwise. For hours: ``--mutants 1000000 --minutes 240``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # the checkout's biocompress, not an installed one

from fuzzkit import campaign, crafted  # noqa: E402
from fuzzkit.targets import KINDS  # noqa: E402
from fuzzkit.worker import Worker  # noqa: E402


def report(rows: list[dict], crafted_rows: list[dict], elapsed: float, n_mutants: int) -> str:
    out = [f"{n_mutants} mutants, {len(rows)} (mutant, operation) rows in {elapsed / 60:.1f} min", "",
           "== outcomes by kind ==", campaign.format_table(campaign.outcome_table(rows)), "",
           "== outcomes by operation ==", campaign.format_table(campaign.outcome_table(rows, "operation"), "operation"),
           "", "== outcomes by region hit ==",
           campaign.format_table(campaign.outcome_table(rows, "region_class"), "region"), ""]
    sigs = campaign.untyped_signatures(rows)
    out.append(f"== untyped exceptions: {len(sigs)} signatures ==")
    for (etype, msg, where, raised), n in sigs.most_common():
        out.append(f"{n:5d}  {etype}: {msg}\n       at {where or '(no biocompress frame)'}; raised in {raised}")
    for outcome in ("SILENT_WRONG", "VERIFY_OK_THEN_FAIL", "HANG", "CRASH", "MEMORY"):
        bad = [r for r in rows if r["outcome"] == outcome]
        out += ["", f"== {outcome}: {len(bad)} =="]
        for r in bad:
            out.append(f"mutant {r['mutant']} {r['kind']} {r['mutation']}@{r['offset']}+{r['length']} "
                       f"in {r['region']}: {r['operation']}: {r['message'][:240]}")
    if crafted_rows:
        out += ["", "== crafted archives (peak RSS over `info` on a clean archive) =="]
        for r in crafted_rows:
            out.append(f"{r['archive']:18s} {r['file_bytes']:>8,} B  {r['operation']:8s} {r['outcome']:12s} "
                       f"+{r['over_clean_info_mb']:>7} MB  {r['exc_type'] or ''} {r['message'][:150]}"
                       + (f"  [{r['location'] or r['raised_at']}]" if r["exc_type"] else ""))
    return "\n".join(out)


def markdown(rows: list[dict], crafted_rows: list[dict]) -> str:
    """The campaign's tables in Markdown (for docs/RELIABILITY.md)."""
    from fuzzkit.operations import OUTCOMES

    def table(by: str, label: str) -> list[str]:
        counts = campaign.outcome_table(rows, by)
        cols = [o for o in OUTCOMES if any(c[o] for c in counts.values())]
        out = [f"| {label} | " + " | ".join(cols) + " | rows |", "|---|" + "---:|" * (len(cols) + 1)]
        for key, c in counts.items():
            out.append(f"| {key} | " + " | ".join(str(c[o]) for o in cols) + f" | {sum(c.values())} |")
        return out

    lines = table("kind", "kind") + [""] + table("operation", "operation") + [""]
    if crafted_rows:
        ops = list(crafted.CRAFTED_OPERATIONS)
        lines += ["| crafted archive | file bytes | " + " | ".join(ops) + " |", "|---|---:|" + "---|" * len(ops)]
        for name in dict.fromkeys(r["archive"] for r in crafted_rows):
            cells = {r["operation"]: r for r in crafted_rows if r["archive"] == name}
            lines.append(f"| {name} | {int(next(iter(cells.values()))['file_bytes']):,} | " + " | ".join(
                f"{cells[o]['outcome']} {cells[o]['exc_type']}, +{cells[o]['over_clean_info_mb']} MB" for o in ops) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("fuzz.csv"), help="CSV, one row per mutant × operation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long")
    ap.add_argument("--keep", type=Path, default=None, help="folder for mutants with a bad outcome")
    ap.add_argument("--workdir", type=Path, default=None, help="clean archives and scratch (default: a temp folder)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per operation before it counts as a hang")
    ap.add_argument("--as-limit-mb", type=int, default=3072, help="address space a worker may add after start-up")
    ap.add_argument("--memory-limit-mb", type=float, default=256.0, help="peak RSS over the clean run that counts as MEMORY")
    ap.add_argument("--cpu", type=int, default=None, help="the CPU to run on (default: the last one allowed)")
    ap.add_argument("--subprocess-every", type=int, default=25,
                    help="every Nth mutant runs the CLI as `python -m biocompress.cli` subprocesses (0: never)")
    ap.add_argument("--no-crafted", action="store_true", help="skip the crafted memory-bomb archives")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables in Markdown here")
    args = ap.parse_args(argv)

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # the parent too: the whole campaign uses one core
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    keep = args.keep or args.out.with_name(args.out.stem + "_mutants")
    with tempfile.TemporaryDirectory(prefix="biocompress-fuzz-") as tmp:
        workdir = args.workdir or Path(tmp)
        t0 = time.monotonic()
        rows, prepared = campaign.run_campaign(
            args.mutants, workdir, seed=args.seed, kinds=kinds, minutes=args.minutes, csv_path=args.out,
            keep_dir=keep, timeout=args.timeout, as_limit_mb=args.as_limit_mb,
            memory_limit_mb=args.memory_limit_mb, cpu=cpu, subprocess_every=args.subprocess_every,
            log=lambda m: print(m, file=sys.stderr, flush=True))
        elapsed = time.monotonic() - t0
        crafted_rows = []
        if not args.no_crafted and "edf" in prepared:
            files = crafted.build_crafted({k: Path(p.target["archive"]) for k, p in prepared.items()},
                                          workdir / "crafted")
            with Worker(timeout=max(args.timeout, 120), as_limit_mb=args.as_limit_mb, cpu=cpu,
                        scratch=workdir / "mutants") as worker:
                crafted_rows = crafted.measure_crafted(worker, files, Path(prepared["edf"].target["archive"]),
                                                       prepared["edf"].target)
            crafted_csv = args.out.with_name(args.out.stem + "_crafted.csv")
            with open(crafted_csv, "w", newline="") as f:
                w = csv.DictWriter(f, list(crafted_rows[0]))
                w.writeheader()
                w.writerows(crafted_rows)
        n = 1 + max((r["mutant"] for r in rows), default=-1)
        for problem in campaign.check_baselines(prepared):
            print(f"note: {problem}")
        print(report(rows, crafted_rows, elapsed, n))
        if args.markdown:
            args.markdown.write_text(markdown(rows, crafted_rows) + "\n")
    bad = any(r["outcome"] in campaign.BAD for r in rows) or any(r["outcome"] != "TYPED_ERROR" for r in crafted_rows
                                                                   if r["operation"] != "info")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
