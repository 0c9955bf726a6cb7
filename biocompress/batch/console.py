"""A batch's progress and summary on the terminal (used by the command line).

On a terminal: a bar with files and bytes done, throughput and time left; elsewhere (a log
file, CI): one line per finished source with the same figures. Failures are printed as
they happen, whatever ``quiet`` says.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .runner import Reporter, Summary
from .task import Task


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class ConsoleReporter(Reporter):
    def __init__(self, out: Console, err: Console, *, quiet: bool = False):
        self.out, self.err, self.quiet = out, err, quiet
        self._bar: Progress | None = None
        self._task = None
        self.n_tasks = self.n_bytes = self.files_done = self.bytes_done = 0
        self._t0 = time.perf_counter()

    def begin(self, n_tasks: int, n_bytes: int, already_done: int) -> None:
        self.n_tasks, self.n_bytes, self._t0 = n_tasks, max(1, n_bytes), time.perf_counter()
        if already_done and not self.quiet:
            self.err.print(f"{already_done} source(s) done by an earlier run and unchanged: skipped", highlight=False)
        if self.quiet or not n_tasks:
            return
        if self.err.is_terminal:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[files]}"), TextColumn("{task.fields[speed]}"),
                                 TimeRemainingColumn(), console=self.err, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("batch", total=self.n_bytes, files=f"0/{n_tasks} files", speed="")

    def _figures(self) -> tuple[str, str, str]:
        elapsed = time.perf_counter() - self._t0
        rate = self.bytes_done / elapsed if elapsed > 0 else 0.0
        left = (self.n_bytes - self.bytes_done) / rate if rate > 0 else float("nan")
        eta = "?" if math.isnan(left) else f"{int(left // 60)}:{int(left % 60):02d}"
        return f"{self.files_done}/{self.n_tasks} files", f"{megabytes(rate)}/s", eta

    def finished(self, task: Task, outcome: dict) -> None:
        self.files_done += 1
        self.bytes_done += outcome.get("source_bytes") or 0
        files, speed, eta = self._figures()
        if outcome["status"] == "failed":
            self.err.print(f"[bold red]FAILED[/] {outcome['error']}", highlight=False, soft_wrap=True)
        elif not self.quiet and self._bar is None:
            what = {"copy": "copied", "unchanged": "unchanged"}.get(
                "unchanged" if outcome["status"] == "unchanged" else task.action, "wrote")
            ratio = f", ratio {outcome['ratio']}" if outcome.get("ratio") and task.action != "copy" else ""
            self.err.print(f"[{files}, {megabytes(self.bytes_done)} of {megabytes(self.n_bytes)}, {speed}, "
                           f"ETA {eta}] {what} {outcome['output_rel']}{ratio}", highlight=False, soft_wrap=True)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.bytes_done, files=files, speed=speed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def summary_table(summary: Summary) -> Table:
    table = Table(title="batch summary", show_header=False, box=None)
    ratio = f"{summary.ratio:.3f}" if summary.ratio else "-"
    rows = [("sources", f"{summary.sources:,}"),
            ("converted", f"{summary.converted:,}"),
            ("copied", f"{summary.copied:,}"),
            ("already done", f"{summary.already_done + summary.unchanged:,}"),
            ("failed", f"{len(summary.failed):,}"),
            ("bytes in → out", f"{summary.bytes_in:,} → {summary.bytes_out:,} (converted and copied this run)"),
            ("ratio", ratio),
            ("time", f"{summary.seconds:.1f} s"),
            ("throughput", f"{megabytes(summary.throughput)}/s")]
    if summary.report is not None:
        rows.append(("report", str(summary.report)))
    for k, v in rows:
        table.add_row(k, v)
    return table


def failure_table(summary: Summary) -> Table:
    table = Table(title=f"{len(summary.failed)} failed", show_lines=False)
    table.add_column("source")
    table.add_column("reason", overflow="fold")
    for rel, why in summary.failed:
        table.add_row(rel, why)
    return table
