"""Kill ``compress`` at random moments and check what it leaves behind (issue 10, item 6).

    python pipelines/kill_campaign.py [--kills 10] [--terms 5] [--seed S] [--out results.csv]
                                      [--recording PATH] [--seconds 300] [--workdir DIR]
                                      [--via module|script]

Compresses a recording big enough for worker processes (default: a synthetic 64-channel
EDF of ``--seconds`` s at 1 kHz written into a temporary folder), once cleanly to measure
how long a run takes and when its phases happen, then ``--kills`` times ending with
SIGKILL and ``--terms`` times with SIGTERM, each at a random moment of a clean run's
duration. Of each signal's moments one falls while the block-pool workers encode, one
while the archive is verified (on the read pool), the others anywhere. Every other run
starts with an archive already at the final path (``--force`` must replace it whole or
not at all), the others with none.

After each signal:
- every process seen below the killed one (walked in /proc until the signal, plus its
  session afterwards: workers, the fork server and its workers) must be gone 5 s after
  the main process ended;
- the final path must be absent, the archive that was there before, or a complete
  archive ``biocompress verify`` accepts: never partial;
- SIGTERM: exit code 130 and no temporary left at exit. Two moments are outside the CLI's
  hands: the first ~0.1 s, while Python starts and before the CLI has installed its handler
  (which /proc shows), and the end of a run whose archive is already in place, while Python
  shuts down (its handlers are gone then). There the default action ends the process, exit
  -15 (or 0 if the signal came before the shutdown reset it), and the check is that nothing
  is left: no process, no temporary, the final path absent or complete;
- the next ``compress`` into the same folder (a small recording) must remove the killed
  run's temporaries and nothing else (a live writer's temporary and a look-alike file
  are planted there and must survive).

Prints one row per run and a summary per signal, writes the CSV; exit code 0 when every
run passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))  # the checkout's biocompress, not an installed one

from killkit import proctree  # noqa: E402
from killkit.runs import alive_after, cli, cli_env, run_and_signal, temporaries  # noqa: E402

GONE_WITHIN_S = 5.0
SMALL_RECORDING = REPO / "data_samples" / "chtypes_edf.edf"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
COLUMNS = ("run", "signal", "moment_s", "aimed_at", "phase", "preexisting", "procs_seen", "alive_after_5s",
           "tmp_at_exit", "tmp_after_next", "removed_others", "final_path", "exit_code", "verdict")


def synthetic_recording(folder: Path, seconds: int) -> Path:
    """A 64-channel EDF, ``seconds`` s at 1 kHz: random-walk EEG-like signals."""
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_files import random_walk_codes, write_edf

    return write_edf(folder / "synthetic.edf", random_walk_codes(64, 1000 * seconds), 1000)


def schedule(n_kills: int, n_terms: int, clean, rng: random.Random) -> list[tuple[str, str | None, float]]:
    """(signal name, anchor phase, seconds after it) triples: per signal one moment while the
    workers encode and one while the archive is verified (timed from that phase's start, so
    a slower run still gets its signal there), the others anywhere in a clean run's duration."""
    plan = []
    for name, n in (("SIGKILL", n_kills), ("SIGTERM", n_terms)):
        for phase in ("encoding", "verifying")[: max(0, n)]:
            if phase in clean.phases:
                first, last = clean.phases[phase]
                plan.append((name, phase, round(rng.uniform(0.0, 0.7 * (last - first)), 2)))
        plan += [(name, None, round(rng.uniform(0.0, 0.9 * clean.duration), 2))
                 for _ in range(n - sum(p[0] == name for p in plan))]
    rng.shuffle(plan)
    return plan


def identity(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def final_state(dst: Path, before, env: dict) -> str:
    """absent | previous | new (verified) | LOST previous | PARTIAL (...)"""
    now = identity(dst)
    if now is None:
        return "absent" if before is None else "LOST previous"
    if now == before:
        return "previous"
    done = subprocess.run(cli("verify", dst), env=env, capture_output=True, text=True, timeout=600)
    if done.returncode == 0:
        return "new (verified)"
    last = (done.stderr.strip().splitlines() or ["?"])[-1][:100]
    return f"PARTIAL (verify exit {done.returncode}: {last})"


def next_run(out: Path, killed_pid: int, env: dict) -> dict:
    """A small ``compress`` into ``out``: the killed run's temporaries must go, nothing else."""
    theirs = set(temporaries(out, killed_pid))
    before = set(os.listdir(out))
    done = subprocess.run(cli("compress", SMALL_RECORDING, "-o", out / "next.bc.h5", "--force"), env=env,
                          capture_output=True, text=True, timeout=600)
    after = set(os.listdir(out))
    return {"next_exit": done.returncode, "tmp_after_next": len(set(temporaries(out, killed_pid))),
            "removed_others": sorted(before - after - theirs), "next_stderr": done.stderr[-300:]}


def one_run(i: int, name: str, anchor: str | None, at: float, src: Path, dst: Path, reference: Path,
            env: dict, via: str) -> dict:
    out = dst.parent
    preexisting = i % 2 == 1
    for _ in range(3):  # a run faster than the clean one may end before its moment: aim earlier
        if preexisting:
            shutil.copy2(reference, dst)
        else:
            dst.unlink(missing_ok=True)
        before = identity(dst)
        w = run_and_signal(cli("compress", src, "-o", dst, "--force", via=via), env, out, dst, at, SIGNALS[name],
                           anchor=anchor)
        if w.signalled_at is not None:
            break
        at = round(0.6 * at, 2)
    ended = time.monotonic()
    tmp_at_exit = temporaries(out, w.pid)
    alive = alive_after(list(w.seen.values()), GONE_WITHIN_S, ended)
    alive_commands = [f"{p.pid}: {proctree.command_line(p.pid)[:100]}" for p in alive]
    proctree.kill_all(alive)  # leave nothing behind, whatever the verdict
    moment = w.signalled_at if w.signalled_at is not None else at
    row = {"run": i + 1, "signal": name, "moment_s": round(moment, 2), "aimed_at": anchor or "any",
           "phase": w.phase if w.signalled_at is not None else "ended first",
           "preexisting": preexisting, "procs_seen": len(w.seen), "alive_after_5s": len(alive),
           "tmp_at_exit": len(tmp_at_exit), "final_path": final_state(dst, before, env),
           "exit_code": w.returncode, "alive_commands": alive_commands, "stderr": w.stderr.strip()[-300:]}
    row.update(next_run(out, w.pid, env))
    row["verdict"] = "; ".join(problems(row, w.signalled_at is not None)) or "OK"
    return row


def problems(row: dict, signalled: bool) -> list[str]:
    found = []
    if not signalled:
        found.append("ended before the moment (not a kill)")
    if row["alive_after_5s"]:
        found.append(f"{row['alive_after_5s']} process(es) alive: {row['alive_commands']}")
    if row["final_path"].startswith(("PARTIAL", "LOST")):
        found.append(f"final path {row['final_path']}")
    default_action = (row["phase"] == "starting" and row["exit_code"] == -signal.SIGTERM
                      or row["phase"] == "published" and row["exit_code"] in (0, -signal.SIGTERM))
    if row["signal"] == "SIGTERM" and row["exit_code"] != 130 and not default_action:
        found.append(f"exit {row['exit_code']}, not 130")
    if row["signal"] == "SIGTERM" and row["tmp_at_exit"]:
        found.append(f"{row['tmp_at_exit']} temporary left at exit")
    if row["tmp_after_next"]:
        found.append(f"{row['tmp_after_next']} temporary left after the next run")
    if row["removed_others"]:
        found.append(f"next run removed {row['removed_others']}")
    if row["next_exit"] != 0:
        found.append(f"next run exit {row['next_exit']}: {row['next_stderr']}")
    return found


def format_table(rows: list[dict]) -> str:
    head = ("run", "signal", "moment s", "aimed at", "phase", "pre", "procs", "alive 5s", "tmp exit", "tmp next",
            "final path", "exit", "verdict")
    body = [(str(r["run"]), r["signal"], f"{r['moment_s']:.2f}", r["aimed_at"], r["phase"],
             "yes" if r["preexisting"] else "no", str(r["procs_seen"]), str(r["alive_after_5s"]),
             str(r["tmp_at_exit"]), str(r["tmp_after_next"]), r["final_path"], str(r["exit_code"]), r["verdict"])
            for r in rows]
    widths = [max(len(h), *(len(b[k]) for b in body)) if body else len(h) for k, h in enumerate(head)]
    lines = ["  ".join(c.ljust(wd) for c, wd in zip(head, widths)), "  ".join("-" * wd for wd in widths)]
    lines += ["  ".join(c.ljust(wd) for c, wd in zip(b, widths)) for b in body]
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    lines = []
    for name in SIGNALS:
        mine = [r for r in rows if r["signal"] == name]
        if not mine:
            continue
        phases = {}
        for r in mine:
            phases[r["phase"]] = phases.get(r["phase"], 0) + 1
        finals = {}
        for r in mine:
            key = r["final_path"].split(" (")[0]
            finals[key] = finals.get(key, 0) + 1
        exits = sorted({str(r["exit_code"]) for r in mine})
        lines.append(
            f"{name}: {len(mine)} runs, {sum(r['verdict'] == 'OK' for r in mine)} OK; phases "
            + ", ".join(f"{p} {n}" for p, n in sorted(phases.items()))
            + f"; processes seen {sum(r['procs_seen'] for r in mine)}, alive after 5 s "
            f"{sum(r['alive_after_5s'] for r in mine)}; temporaries at exit {sum(r['tmp_at_exit'] for r in mine)}, "
            f"after next run {sum(r['tmp_after_next'] for r in mine)}; final path "
            + ", ".join(f"{k} {n}" for k, n in sorted(finals.items())) + f"; exit codes {', '.join(exits)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="runs ended with SIGKILL")
    ap.add_argument("--terms", type=int, default=5, help="runs ended with SIGTERM")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("kill_campaign.csv"), help="CSV, one row per run")
    ap.add_argument("--recording", type=Path, default=None,
                    help="recording to compress (default: a synthetic 64-channel EDF)")
    ap.add_argument("--seconds", type=int, default=300, help="length of the synthetic recording (1 kHz)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder, kept (default: a temp folder, removed)")
    ap.add_argument("--via", choices=("module", "script"), default="module",
                    help="run `python -m biocompress.cli` or the installed script's entry point")
    args = ap.parse_args(argv)
    if not Path("/proc/self/stat").exists():
        print("needs Linux /proc", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    t_start = time.monotonic()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="biocompress-kills-"))
    try:
        return campaign(args, seed, rng, work, t_start)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def campaign(args, seed: int, rng: random.Random, work: Path, t_start: float) -> int:
    from biocompress.system.outputs import temporary

    env = cli_env(REPO)
    (work / "source").mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.mkdir(exist_ok=True)
    src = args.recording.resolve() if args.recording else synthetic_recording(work / "source", args.seconds)
    dst = out / (src.stem + ".bc.h5")
    reference = work / "reference.bc.h5"
    # must survive every next run: a live writer's temporary (this process's) and a look-alike
    live = temporary(out / "live-writer.bc.h5")
    (out / ".keep.me.tmp").write_bytes(b"not a biocompress temporary")

    print(f"seed {seed}; via {args.via}; recording {src} ({src.stat().st_size:,} bytes); folder {out}", flush=True)
    clean = run_and_signal(cli("compress", src, "-o", dst, "--force", via=args.via), env, out, dst, None)
    if clean.returncode != 0:
        print(f"the clean run failed (exit {clean.returncode}): {clean.stderr[-1000:]}", file=sys.stderr)
        return 2
    os.replace(dst, reference)
    print(f"clean run: {clean.duration:.1f} s, {len(clean.seen)} processes below it; phases "
          + ", ".join(f"{p} {a:.1f}–{b:.1f} s" for p, (a, b) in clean.phases.items()), flush=True)
    if "encoding" not in clean.phases:
        print("note: no worker processes seen in the clean run (one core, or a recording under ~1 M samples)")

    rows = []
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, list(COLUMNS) + ["next_exit", "alive_commands", "stderr", "next_stderr"],
                                extrasaction="ignore")
        writer.writeheader()
        for i, (name, anchor, at) in enumerate(schedule(args.kills, args.terms, clean, rng)):
            row = one_run(i, name, anchor, at, src, dst, reference, env, args.via)
            rows.append(row)
            writer.writerow({**row, "removed_others": " ".join(row["removed_others"]),
                             "alive_commands": " | ".join(row["alive_commands"])})
            f.flush()
            print(f"run {i + 1}: {name} at {row['moment_s']:.2f} s ({row['phase']}): {row['verdict']}", flush=True)
    print()
    print(format_table(rows))
    print()
    print(summary(rows))
    bad = [r for r in rows if r["verdict"] != "OK"]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} runs OK in {(time.monotonic() - t_start) / 60:.1f} min "
          f"(seed {seed}); CSV: {args.out}")
    live.unlink(missing_ok=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
