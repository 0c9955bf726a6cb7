"""The ``biocompress`` command line: compress EEG/MEG recordings into verified archives.

Exit codes: 0 success; 1 verification failed or archive damaged; 2 bad input, usage or environment (disk full, permission denied, read-only file system); 3 internal error (rerun with --debug for the traceback); 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .system import interrupts
from .system.failures import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, exit_status  # noqa: F401
from .system.quick_exit import exit_now
from .system.signals import clear_interrupt, request_interrupt, stop_on_signals

STATUS_EVERY_S = 5.0  # stream, receive: the status line's period when stderr is not a terminal


# what click itself turns into a usage message or an exit code (typer ≥ 0.2x raises its own
# vendored click's exceptions, whose common base is typer.exceptions.TyperException)
_TYPER_CLICK_ERROR = getattr(getattr(typer, "exceptions", None), "TyperException", None)
_USAGE_AND_EXITS = (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort, SystemExit) \
    + ((_TYPER_CLICK_ERROR,) if _TYPER_CLICK_ERROR else ())


class _Handled(TyperGroup):
    """Runs every command through one handler: no traceback reaches the user (unless
    --debug), every failure gets its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _USAGE_AND_EXITS:
            raise
        except BaseException as exc:  # noqa: BLE001 - this is the one place they all end
            code, message = exit_status(exc)
            if ctx.params.get("debug"):
                sys.stderr.write(traceback.format_exc())
            err.print(f"[bold red]error:[/] {message}" if code != EXIT_INTERRUPTED else message, highlight=False,
                      soft_wrap=True)
            if code == EXIT_INTERRUPTED:
                _forget_unhandled_interrupt()
                clear_interrupt()  # handled (the CLI may run again in this process, as in tests)
            raise typer.Exit(code) from None


def _forget_unhandled_interrupt() -> None:
    """CPython marks the process as ended by an unhandled KeyboardInterrupt (and ends it by
    SIGINT instead of with our exit code) when one escaped code run by ``exec`` of a string,
    as some imports do, even once handled here; the next ``exec`` of a string clears the mark."""
    exec("None")  # noqa: S102 - a constant string


app = typer.Typer(cls=_Handled, add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
out = Console(width=None if Console().is_terminal else 120)
err = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        from ._version import __version__

        out.print(f"biocompress {__version__}", highlight=False)
        raise typer.Exit(0)


_VERSION = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                        help="Print the version and exit.")


_SETTINGS = {"debug": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="On an error, print the traceback too."),
             version: bool = _VERSION):
    _SETTINGS["debug"] = debug


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def compress(
    inputs: list[Path] = typer.Argument(..., help="Recordings in any format MNE reads (with -r, folders too)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="One input: the archive's path (default: "
                                          "INPUT stem + .bc.h5 beside it). Several inputs or -r: a folder."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Compress every recording in the folders given."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs (archives only)."),
    mode: str = typer.Option("lossless", "--mode", help="lossless, lossy or near-lossless."),
    quality: Optional[int] = typer.Option(None, "--quality", help="lossy: 1 (smallest) … 5 (best fidelity): no "
                                          "channel's PRDN above 20, 10, 5, 2.5, 1 %."),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="near-lossless: bound on |error| in µV."),
    max_prdn: Optional[float] = typer.Option(None, "--max-prdn", help="lossy, instead of --quality: no channel's "
                                             "PRDN above P % (rate control; checked by verify)."),
    bitrate: Optional[float] = typer.Option(None, "--bitrate", help="lossy, instead of --quality: B coded bits "
                                            "per sample (rate control; the fidelity it gives is stated)."),
    model: Optional[Path] = typer.Option(None, "--model", help="lossy modes: a model from `biocompress train`."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: every core)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print errors only."),
    level: str = typer.Option("default", "--level", help="Lossless effort, as flac/zstd levels: fast (bulk "
                              "conversion, live streams), default, max (much slower, the last percent)."),
    stream: Optional[str] = typer.Option(None, "--stream", help="XDF files: the main stream (its number, name or "
                                         "type; default the EEG stream with the most channels). Every stream is kept."),
    version: bool = _VERSION,
):
    """Compress recordings into verified archives (an XDF file: every stream, in one archive)."""
    from .files.compress import compress as do_compress
    from .files.modes import mode_problem

    problem = mode_problem(mode, quality, max_error, max_prdn, bitrate)
    if problem:
        _fail(problem, 2)
    if workers is not None and workers < 1:
        _fail(f"--workers must be at least 1; got {workers}", 2)
    if _one_input(inputs, recursive, archives=False):
        path = do_compress(inputs[0], output, mode=mode, overwrite=force, progress=err.is_terminal and not quiet,
                           quality=quality, max_error_uv=max_error, model=model, workers=workers, level=level,
                           stream=stream, max_prdn=max_prdn, bitrate=bitrate)
        if not quiet:
            _print_summary(path, requested=mode)
        return
    if stream is not None:
        _fail("--stream picks the main stream of one XDF file; give one input", 2)
    from .batch.many import compress_tasks

    tasks = compress_tasks(inputs, output_dir=_output_folder(output), recursive=recursive, force=force, mode=mode,
                           quality=quality, max_error_uv=max_error, model=model, level=level, max_prdn=max_prdn,
                           bitrate=bitrate)
    _run_many(tasks, workers, quiet, "compressed")


@app.command()
def decompress(
    archives: list[Path] = typer.Argument(..., help="Archives (.bc.h5); with -r, folders too."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="One archive: the recording's path "
                                          "(default: the archived file's name beside the archive). Several or -r: "
                                          "a folder."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Decompress every archive in the folders given."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Through MNE: write the file even where "
                                       "the format changes trigger codes or clips values (the changes are listed)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: every core)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print errors only."),
):
    """Give back the archived recordings: EDF/BDF byte for byte (SHA-256 checked), other
    formats written through MNE with the samples checked. (`restore` is the same command.
    Converting to another format is `export`; `decompress -o x.fif` of an archive of another
    format still converts, with a note, as it did before.)"""
    _decompress(archives, output, recursive, force, allow_changes, workers, quiet, convert_with_note=True)


@app.command("restore")
def restore(
    archives: list[Path] = typer.Argument(..., help="Archives (.bc.h5); with -r, folders too."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="One archive: the recording's path "
                                          "(default: the archived file's name beside the archive). Several or -r: "
                                          "a folder."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Restore every archive in the folders given."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Through MNE: write the file even where "
                                       "the format changes trigger codes or clips values (the changes are listed)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: every core)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print errors only."),
):
    """Same as `decompress`: give back the archived recordings (EDF/BDF byte for byte)."""
    _decompress(archives, output, recursive, force, allow_changes, workers, quiet, convert_with_note=False)


def _decompress(archives, output, recursive, force, allow_changes, workers, quiet, convert_with_note) -> None:
    from .files.restore import export
    from .files.restore import restore as do_restore

    if workers is not None and workers < 1:
        _fail(f"--workers must be at least 1; got {workers}", 2)
    if _one_input(archives, recursive, archives=True):
        archive = archives[0]
        if output is None:
            from .batch.plan import restored_name

            output = archive.parent / restored_name(archive.parent, archive.name)
        conversion = _conversion(archive, output) if convert_with_note else None
        if conversion is not None:
            err.print(f"note: {conversion}; this is `biocompress export` now (`decompress` gives the archived "
                      "file back), and `decompress` will stop converting in a later version", highlight=False)
            result = export(archive, output, overwrite=force, allow_changes=allow_changes)
        else:
            result = do_restore(archive, output, overwrite=force, allow_changes=allow_changes)
        if quiet:
            return
        if result["method"] == "xdf":
            _print_xdf(result)
        elif result["method"] == "edf-bytes":
            gaps = result["gaps"]
            note = f"; {len(gaps)} gap(s) between records kept" if gaps else ""
            out.print(f"wrote {output}: the archived {result['kind']} file byte for byte "
                      f"(sha256 {result['sha256']} checked){note}", highlight=False)
        else:
            _print_export(result)
        return
    from .batch.many import decompress_tasks

    tasks = decompress_tasks(archives, output_dir=_output_folder(output), recursive=recursive, force=force,
                             allow_changes=allow_changes)
    _run_many(tasks, workers, quiet, "restored")


def _conversion(archive: Path, output: Path) -> str | None:
    """How ``output`` converts the archived file to another format, or None when it does not."""
    from .batch.plan import archived_format

    if not archive.is_file():
        return None
    suffix, _ = archived_format(archive)
    want = output.suffix.lower()
    if not suffix or want == suffix.lower():
        return None
    return f"writing {want} converts the archived {suffix.lower()} file"


@app.command()
def export(
    archive: Path = typer.Argument(..., help="A .bc.h5 archive."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file: .fif, .edf, .bdf, .vhdr or .set."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Write the file even where the format "
                                       "changes trigger codes or clips values (the changes are listed)."),
):
    """Export the archive's recording through MNE (format from OUTPUT's extension); the file is
    read back and checked channel by channel."""
    from .files.restore import export as do_export

    result = do_export(archive, output, overwrite=force, allow_changes=allow_changes)
    if result["method"] == "xdf":
        _print_xdf(result)
    else:
        _print_export(result)


def _one_input(inputs: list[Path], recursive: bool, archives: bool) -> bool:
    """Whether the command line names one file (the single-file path, as before)."""
    from .io.source import FOLDER_FORMATS

    if len(inputs) != 1:
        return False
    p = inputs[0]
    return not p.is_dir() or (not archives and p.suffix.lower() in FOLDER_FORMATS)


def _output_folder(output: Optional[Path]) -> Optional[Path]:
    if output is None:
        return None
    if output.exists() and not output.is_dir():
        _fail(f"{output}: with several inputs or -r, -o names a folder; this is a file", 2)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from .system.os_errors import problem

        _fail(f"{output}: cannot create the output folder: {problem(exc) or exc}", 2)
    return output


def _run_many(tasks, workers, quiet: bool, verb: str) -> None:
    from .batch.console import ConsoleReporter
    from .batch.many import exit_code, run_tasks

    if not tasks:
        _fail("no input found (folders are searched with -r)", 2)
    reporter = ConsoleReporter(out, err, quiet=quiet)
    try:
        done = run_tasks(tasks, workers=workers, reporter=reporter)
    finally:
        reporter.close()
    failed = [o for _, o in done if o["status"] == "failed"]
    if not quiet:
        n_in = sum(o["source_bytes"] or 0 for _, o in done if o["status"] != "failed")
        n_out = sum(o["output_bytes"] or 0 for _, o in done if o["status"] != "failed")
        out.print(f"{verb} {len(done) - len(failed)} of {len(done)} file(s): {n_in:,} → {n_out:,} bytes"
                  + (f", {len(failed)} failed" if failed else ""), highlight=False)
    code = exit_code(done)
    if code:
        raise typer.Exit(code)


@app.command()
def batch(
    src: Path = typer.Argument(..., help="Folder of recordings (a BIDS dataset too), searched recursively; with "
                               "--restore or --export, a folder of archives."),
    dst: Path = typer.Argument(..., help="Destination folder: the tree mirrored, archives named <name>.bc.h5."),
    mode: str = typer.Option("lossless", "--mode", help="lossless, lossy or near-lossless."),
    quality: Optional[int] = typer.Option(None, "--quality", help="lossy: 1 (smallest) … 5 (best fidelity): no "
                                          "channel's PRDN above 20, 10, 5, 2.5, 1 %."),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="near-lossless: bound on |error| in µV."),
    max_prdn: Optional[float] = typer.Option(None, "--max-prdn", help="lossy, instead of --quality: no channel's "
                                             "PRDN above P % (rate control; checked by verify)."),
    bitrate: Optional[float] = typer.Option(None, "--bitrate", help="lossy, instead of --quality: B coded bits "
                                            "per sample (rate control; the fidelity it gives is stated)."),
    model: Optional[Path] = typer.Option(None, "--model", help="lossy modes: a model from `biocompress train`."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: every core)."),
    executor: str = typer.Option("local", "--executor", help="local (a process pool) or dask."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://host:port "
                                            "(default: a LocalCluster on 127.0.0.1)."),
    include: list[str] = typer.Option([], "--include", help="Only paths matching this glob (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave out paths matching this glob (repeatable)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write one CSV row per source here."),
    restore_: bool = typer.Option(False, "--restore", help="SRC holds archives: give back the original files."),
    export_format: Optional[str] = typer.Option(None, "--export", help="SRC holds archives: export them through "
                                                "MNE (fif, edf, bdf, brainvision, eeglab)."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="--restore/--export through MNE: write files "
                                       "even where the format changes trigger codes or clips values."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace files in DST that this batch did not write."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print failures and nothing else."),
):
    """Convert a whole dataset: every recording into an archive, other files copied, the tree
    mirrored (BIDS datasets stay BIDS). Run it again to resume: done work is skipped, failed
    or interrupted work retried, changed sources redone. Exit code 0 only if every file succeeded."""
    from .batch import run_batch
    from .batch.console import ConsoleReporter, failure_table, summary_table

    if restore_ and export_format:
        _fail("--restore and --export exclude each other", 2)
    reporter = ConsoleReporter(out, err, quiet=quiet)
    try:
        summary = run_batch(src, dst, restore=restore_, export_format=export_format, mode=mode, quality=quality,
                            max_error_uv=max_error, model=model, max_prdn=max_prdn, bitrate=bitrate,
                            allow_changes=allow_changes, force=force,
                            workers=workers, executor=executor, scheduler=scheduler, include=include,
                            exclude=exclude, report=report, reporter=reporter)
    finally:
        reporter.close()
    if not quiet:
        out.print(summary_table(summary))
    if summary.failed:
        err.print(failure_table(summary))
        raise typer.Exit(summary.exit_code)


def _print_xdf(result: dict) -> None:
    out.print(f"wrote {result['path']}: every stream ({result['n_streams']}) with its samples, timestamps, clock "
              "offsets, markers and header XML, read back and checked against the archive (an equivalent XDF "
              "file: its chunks are not the original's)", highlight=False)


def _print_export(result: dict) -> None:
    path = result["path"]
    if result["exact"] == "samples":
        out.print(f"wrote {path} through MNE; every channel reads back identical to the archive's, bit for bit "
                  "(the file's bytes are MNE's, not the source's)", highlight=False)
    else:
        hint = "" if result.get("format") == "fif" else "; .fif keeps every sample exactly"
        out.print(f"wrote {path} through MNE; [yellow]not every sample is identical[/] to the archive's: "
                  f"{result['summary']}{hint}", highlight=False)
    for change in result.get("changes", ()):
        err.print(f"[yellow]changed:[/] {change['name']} ({change['type']}): {change['change']}", highlight=False)
    for note in result.get("notes", ()):
        out.print(f"note: {note}", highlight=False)


@app.command()
def info(
    archive: Path = typer.Argument(..., help="A .bc.h5 archive."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Describe an archive: channels, duration, sizes, ratio, codec."""
    summary = archive_summary(archive)
    if as_json:
        print(json.dumps(summary))
        return
    from .container.reader import Archive

    with Archive(archive) as arc:
        fid = arc.fidelity
    table = Table(show_header=False, box=None)
    for k, v in _text_rows(summary, fid).items():
        if k == "streams":
            v = [_stream_line(e) for e in v]
        table.add_row(k, "\n".join(map(str, v)) if isinstance(v, list) else str(v))
    out.print(table)


def archive_summary(path) -> dict:
    from .container.reader import Archive

    with Archive(path) as arc:
        src = arc.source
        codecs = sorted({c["id"] for c in arc.codec_configs})
        archive_bytes = arc.archive_bytes
        source_bytes = src.get("source_bytes")
        return {
            "archive": str(path),
            "mode": arc.mode,
            "n_channels": arc.n_channels,
            "sfreq": arc.sfreq,
            "n_samples": arc.n_samples,
            "duration_s": arc.n_samples / arc.sfreq,
            "source_file": src.get("file_name") or (f"LSL stream {src.get('name')!r}" if src.get("kind") == "lsl"
                                                    else None),
            "source_bytes": source_bytes,
            "archive_bytes": archive_bytes,
            "ratio": round(source_bytes / archive_bytes, 4) if source_bytes else None,
            "codec": ",".join(codecs),
            "n_blocks": int(arc.index.size),
            "source_sha256": src.get("sha256"),
            **_source_warnings(src),
            "samples_sha256": arc.attrs["samples_sha256"],
            **_stream_summary(arc),
            **({"streams": [e.as_dict() for e in arc.streams]}
               if len(arc.streams) > 1 or "xdf_header" in src else {}),  # an XDF file's, even of one stream
            "restore": _restore_summary(arc),
            **_fidelity_summary(arc),
        }


def _stream_summary(arc) -> dict:
    """Live recordings: whether the archive is finalized and what it holds durably; streams'
    timestamps; a recovered archive's record."""
    out = {}
    if getattr(arc, "live", False):
        out["state"] = arc.state_line()
    if arc.has_timestamps:
        out["timestamps"] = f"one per sample, clock {arc.times_attrs.get('clock')!s}"
    recovery = arc.source.get("recovery")
    if isinstance(recovery, dict):
        out["recovered"] = str(recovery.get("reason", "yes"))
    return out


def _stream_line(entry: dict) -> str:
    """One stream of an XDF file's archive, for ``info``."""
    rate = "irregular" if entry["rate"] == 0 else f"{entry['rate']:g} Hz"
    what = "markers" if entry["kind"] == "markers" else f"{entry['samples']} samples"
    return (f"{entry['index']}: {entry['name'] or '?'} ({entry['type'] or '?'}), {entry['channels']} ch, {rate}, "
            f"{what}{', main' if entry['main'] else ''}")


def _source_warnings(source: dict) -> dict:
    """What MNE warned about when the source was opened (a list of strings in the provenance)."""
    said = source.get("warnings")
    if not isinstance(said, list) or not said:
        return {}
    return {"source_warnings": [str(w) for w in said]}


def _fidelity_summary(arc) -> dict:
    """The lossy setting and the stored fidelity figures, as numbers (``info --json``)."""
    from .files.fidelity_text import json_figures

    fid = arc.fidelity
    if fid is None:
        return {}
    lossy = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in arc.lossy_attrs.items()}
    if not fid.get("overall"):  # a live stream's: no source to measure against
        return {"lossy": lossy, "fidelity": None}
    return {"lossy": lossy, "fidelity": json_figures(fid)}


def _lossy_line(lossy: dict) -> str:
    named = "quality" in lossy and "max_prdn" in lossy  # a quality names a PRDN target
    setting = (f"quality {lossy['quality']} (max PRDN {lossy['max_prdn']:g} %)" if named else
               f"quality {lossy['quality']}" if "quality" in lossy else
               f"max PRDN {lossy['max_prdn']} %" if "max_prdn" in lossy else
               f"{lossy['bitrate']:g} bits/sample" if "bitrate" in lossy else
               f"max error {lossy['max_error_uv']} µV" if "max_error_uv" in lossy else None)
    return ", ".join(str(p) for p in (lossy.get("mode"), setting, f"model {lossy.get('model_id')}") if p)


def _text_rows(summary: dict, fid: dict | None) -> dict:
    """``info``'s table: the summary with the lossy setting and the fidelity figures in words."""
    from .files.fidelity_text import text_rows

    rows = {k: v for k, v in summary.items() if k not in ("lossy", "fidelity")}
    if "lossy" in summary:
        rows["lossy"] = _lossy_line(summary["lossy"])
        rows.update(text_rows(fid) if fid and fid.get("overall") else
                    {"fidelity": "not measured (no source to compare with)"})
    return rows


def _restore_summary(arc) -> str:
    if arc.mode != "lossless":
        return "not exact (lossy archive)"
    if "xdf_header" in arc.source:
        return ("restore -o NAME.xdf: every stream as an XDF file (samples, timestamps, clock offsets, markers and "
                "header XML exact; not the original's bytes); the main stream through MNE export (.fif, .edf, ...)")
    if arc.stored_edf is None:
        return "through MNE export (.fif, .edf, .bdf, .vhdr, .set); the file is read back and checked per channel"
    stored = arc.stored_edf
    gaps = stored.gaps()
    gap_text = (f"; {len(gaps)} gap(s) between records: " + ", ".join(f"{g:g} s at {t:g} s" for t, g in gaps[:5])
                + (" ..." if len(gaps) > 5 else "")) if gaps else ""
    return f"{stored.kind} file byte for byte ({stored.layout.n_records} records{gap_text})"


@app.command()
def verify(
    archive: Path = typer.Argument(..., help="A .bc.h5 archive."),
    source: Optional[Path] = typer.Argument(None, help="The original recording, to compare against."),
):
    """Decode every block and check every checksum; with SOURCE, compare with the original."""
    from .files.verify import verify_archive

    report = verify_archive(archive, source, progress=err.is_terminal)
    for line in report["lines"]:
        out.print(line, highlight=False)
    if not report["ok"]:
        _fail(f"{archive}: verification FAILED", 1)
    out.print(f"[green]{archive}: OK[/]")


@app.command()
def recover(
    archive: Path = typer.Argument(..., help="A live recording's archive that was not finalized."),
):
    """Finalize a live recording whose writer stopped without finishing (killed, power cut):
    everything up to its last valid frame becomes a normal archive, in place."""
    from .container.journal import finalize

    result = finalize(archive)
    rec = result["recovery"]
    if rec is None:
        out.print(f"finalized {archive}: {result['n_samples']} samples ({result['seconds']:.3f} s); the recording "
                  "had ended cleanly, nothing lost", highlight=False)
        return
    lost = [f"{rec['samples_lost_known']} samples in incomplete windows"] if rec["samples_lost_known"] else []
    lost += [f"{rec['bytes_discarded']} bytes after the last valid frame"] if rec["bytes_discarded"] else []
    out.print(f"recovered {archive}: {result['n_samples']} samples ({result['seconds']:.3f} s) finalized; "
              f"lost: {', '.join(lost) or 'nothing readable'}", highlight=False)


@app.command()
def receive(
    listen: str = typer.Option(..., "--listen", help="HOST:PORT to listen on; 127.0.0.1:PORT takes senders on this "
                               "machine only (port 0: a free port, printed)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Archive to write: a live archive while the "
                                          "stream runs, finalized when it ends."),
    lsl_out: Optional[str] = typer.Option(None, "--lsl-out", help="Publish the received stream as an LSL outlet of "
                                          "this name."),
    secret_file: Optional[Path] = typer.Option(None, "--secret-file", help="Shared secret (at least 16 bytes) the "
                                               "sender must prove it knows, and this receiver too."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output archive."),
    allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated", help="Listen on an address other "
                                               "machines reach without a shared secret (anyone could send)."),
):
    """Receive a live stream sent over the network (`stream --send`): write it to an archive without
    re-encoding it and/or publish it as an LSL outlet. One stream per run; it ends with the
    stream, --duration, or Ctrl-C (the archive is finalized in every case)."""
    from .stream.net_receive import receive as make_receiver

    if duration is not None and not duration > 0:
        _fail(f"--duration must be a positive number of seconds, got {duration}", 2)
    receiver = make_receiver(listen, output=output, lsl_out=lsl_out, secret_file=secret_file, overwrite=force,
                             allow_unauthenticated=allow_unauthenticated)
    host, port = receiver.start()
    out.print(f"listening on {host}:{port}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    _run_receiver(receiver, duration)
    if receiver.error is not None:
        raise receiver.error
    r = receiver.result
    if not r["received"]:
        _fail(f"no stream arrived on {host}:{port} ({r['stopped']}); nothing written", 2)
    how = "the stream ended cleanly" if r["complete"] else f"the receiver {r['stopped']}"
    counts = (f"{r['n_samples']} samples ({r['seconds']:.1f} s), {r['frames']} frames, {r['bytes']:,} bytes received, "
              f"{r['duplicates']} duplicates dropped, {r['reconnects']} reconnects; {how}")
    if r["path"] is not None:
        out.print(f"wrote {r['path']}: {counts}", highlight=False, soft_wrap=True)
    else:
        out.print(f"received {counts}", highlight=False, soft_wrap=True)
    if lsl_out is not None:
        out.print(f"published {r['published']} samples on the LSL outlet {lsl_out!r}", highlight=False, soft_wrap=True)
    if r["relay_error"]:
        err.print(f"[yellow]warning:[/] publishing on LSL stopped: {r['relay_error']}", highlight=False, soft_wrap=True)


def _run_receiver(receiver, duration: float | None) -> None:
    """Wait for the stream's end, --duration or a stop signal (Ctrl-C, SIGTERM, SIGHUP: the archive
    is finalized with what arrived; a second signal interrupts that too)."""
    import threading

    stop = threading.Event()
    deadline = None if duration is None else time.monotonic() + duration
    asked = False
    status = SimpleNamespace(line=receiver.status_line)  # what _status_line shows
    with stop_on_signals(stop), _status_line() as show:
        while not receiver.wait(0.2):
            if asked:
                continue
            if stop.is_set():
                receiver.stop("was stopped (interrupted)")
                asked = True
            elif deadline is not None and time.monotonic() >= deadline:
                receiver.stop(f"reached --duration {duration:g} s")
                asked = True
            else:
                show(status)


@app.command()
def bench(
    corpus_dir: Path = typer.Argument(..., help="Folder searched recursively for recordings (or one file)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write one row per (file, codec) here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG bar chart of the ratios here."),
    anchors: Optional[Path] = typer.Option(None, "--anchors", help="lossless.tsv of anchor figures "
                                           "(default: looked up near the corpus)."),
    codecs: Optional[str] = typer.Option(None, "--codecs", help="Comma list of codecs (default: all)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N recordings found."),
):
    """Lossless benchmark: biocompress side by side with FLAC, WavPack, zstd, xz, mtscomp, MEF3."""
    from .bench.lossless import ALL_NAMES, run_benchmark

    if not corpus_dir.exists():
        _fail(f"{corpus_dir}: no such file or folder", 2)
    names = [c.strip() for c in codecs.split(",") if c.strip()] if codecs else None
    unknown = [n for n in names or () if n not in ALL_NAMES]
    if unknown:
        _fail(f"unknown codec(s) {unknown}; known: {', '.join(ALL_NAMES)}", 2)
    rows = run_benchmark(corpus_dir, codecs=names, csv_path=csv, plot_path=plot, anchors_path=anchors,
                         progress=err.is_terminal, limit=limit)
    if not rows:
        raise typer.Exit(2)


@app.command()
def report(
    archive: Path = typer.Argument(..., help="A lossy or near-lossless .bc.h5 archive."),
    source: Path = typer.Option(..., "--source", help="The recording it was made from."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
):
    """Plot a lossy archive against its source: traces, spectra, error histogram, fidelity table."""
    from .files.report import make_report

    from .files.fidelity_text import headline

    fid = make_report(archive, source, output, overwrite=force)
    out.print(f"wrote {output}: {headline(fid)}", highlight=False, soft_wrap=True)


@app.command()
def train(
    data_dir: Path = typer.Argument(..., help="Folder of recordings to train on (searched recursively)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.pt)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Folder of validation recordings "
                                              "(other subjects); default: every 5th recording of DATA_DIR (the last of fewer)."),
    minutes: float = typer.Option(12.0, "--minutes", help="Training time on this machine's CPU."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing model file."),
):
    """Train the lossy autoencoder on your recordings; use it with `compress --model`."""
    from .codecs.lossy.train import train_folder

    mid = train_folder(data_dir, output, validation=validation, minutes=minutes,
                       log=lambda m: out.print(m, highlight=False), overwrite=force)
    out.print(f"model {mid} written to {output}; compress with --mode lossy --model {output}")


@app.command()
def demo(
    samples: Optional[Path] = typer.Argument(None, help="Folder of recordings (default: the bundled data_samples/)."),
):
    """Compress, verify and tabulate the bundled sample recordings."""
    from .files.demo import run_demo

    run_demo(samples, console=out)


@app.command()
def replay(
    input: Path = typer.Argument(..., help="A recording MNE reads, or a .bc.h5 archive."),
    name: str = typer.Option(..., "--name", help="Name of the LSL stream to publish."),
    chunk_size: int = typer.Option(32, "--chunk-size", help="Samples pushed at a time."),
    loop: bool = typer.Option(False, "--loop", help="Start again at the end, until stopped."),
    counter: bool = typer.Option(False, "--counter", help="Add a channel 'counter' (0, 1, 2, … modulo 2^24) that "
                                 "proves no sample is lost or duplicated."),
    value_format: str = typer.Option("float32", "--format", help="float32 (voltages in µV) or double64 (MNE's "
                                     "values in volts, bit for bit)."),
    source_id: Optional[str] = typer.Option(None, "--source-id", help="The stream's source_id."),
    stype: Optional[str] = typer.Option(None, "--type", help="The stream's type (default: EEG if it has EEG)."),
    speed: float = typer.Option(1.0, "--speed", help="Times real time."),
    wait: Optional[float] = typer.Option(None, "--wait", help="Wait up to this many seconds for a consumer before "
                                         "the first sample."),
):
    """Publish a recording as a live LSL stream in real time (annotations on NAME-markers);
    Ctrl-C stops."""
    import threading

    from .stream.replay import Replay, open_recording

    player = Replay(open_recording(input), name, chunk_size=chunk_size, loop=loop, counter=counter,
                    value_format=value_format, source_id=source_id, stype=stype, speed=speed)
    markers = f"; markers on {name}-markers" if player.marker_info is not None else ""
    err.print(f"publishing {name!r}: {player.info.n_channels} channels at {player.sfreq:g} Hz ({value_format}) "
              f"from {input.name}{markers}; Ctrl-C stops", highlight=False)
    stop = threading.Event()
    with stop_on_signals(stop):
        pushed = player.run(stop, wait_for_consumer=wait)
    out.print(f"published {pushed:,} samples ({pushed / player.sfreq:.1f} s of recording)", highlight=False)


@app.command()
def stream(
    lsl: str = typer.Option(..., "--lsl", help="Name of the LSL stream to record."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Archive to write (.bc.h5)."),
    send: Optional[str] = typer.Option(None, "--send", help="Also (or only) send the stream to `biocompress "
                                       "receive` at HOST:PORT."),
    secret_file: Optional[Path] = typer.Option(None, "--secret-file", help="--send: shared secret (at least 16 "
                                               "bytes) the receiver must know too."),
    markers: list[str] = typer.Option([], "--markers", help="A marker stream recorded as annotations (repeatable)."),
    mode: str = typer.Option("lossless", "--mode", help="lossless, lossy or near-lossless."),
    quality: Optional[int] = typer.Option(None, "--quality", help="lossy: 1 (smallest) … 5 (best fidelity): no "
                                          "channel's PRDN above 20, 10, 5, 2.5, 1 %."),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="near-lossless: bound on |error| in µV."),
    model: Optional[Path] = typer.Option(None, "--model", help="lossy modes: a model from `biocompress train`."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds of samples to record (default: "
                                             "until Ctrl-C or the stream ends)."),
    block_ms: Optional[float] = typer.Option(None, "--block-ms", help="Longest wait of a sample for its block "
                                             "(default 50 lossless, 200 lossy)."),
    stype: Optional[str] = typer.Option(None, "--type", help="Only a stream of this type."),
    source_id: Optional[str] = typer.Option(None, "--source-id", help="Only the stream of this source_id."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the streams to appear."),
    reconnect: float = typer.Option(5.0, "--reconnect", help="Seconds to wait for a lost stream to come back."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing archive."),
):
    """Record a live LSL stream into an archive as it arrives, and/or send it to a receiver
    (`biocompress receive`); Ctrl-C (or SIGTERM) stops and finalizes."""
    import threading

    from .errors import StreamError
    from .stream.record import record

    if output is None and send is None:
        _fail("give an archive to write (-o) and/or a receiver to send to (--send HOST:PORT)", 2)
    if secret_file is not None and send is None:
        _fail("--secret-file goes with --send", 2)
    sink = net = None
    if send is not None:
        from .stream.net import network_sink
        from .stream.sinks import ArchiveSink, TeeSink

        net = network_sink(send, secret_file=secret_file)
        # the archive here goes on if the network copy fails mid-way (a note in it says so)
        sink = net if output is None else TeeSink(ArchiveSink(output, overwrite=force), net, optional=[net])
    stop = threading.Event()
    with _status_line() as show:
        try:
            end = record(lsl, None if sink is not None else output, sink=sink, markers=markers, stype=stype,
                         source_id=source_id, mode=mode, quality=quality, max_error_uv=max_error, model=model,
                         block_ms=block_ms, duration=duration, overwrite=force, timeout=timeout,
                         reconnect_s=reconnect, stop=stop, on_status=show)
        except StreamError as exc:
            end = getattr(exc, "end", None)
            if end and end.get("path"):
                _print_recording(end)
            raise
    if output is not None or not end.get("n_samples"):
        _print_recording(end)
    if net is not None:
        _print_sent(send, net, sink)


def _print_sent(address: str, net, sink) -> None:
    dropped = [exc for s, exc in getattr(sink, "dropped", ()) if s is net]
    if dropped:
        err.print(f"[yellow]warning:[/] the stream to {address} stopped: {dropped[0]}", highlight=False,
                  soft_wrap=True)
        return
    s = net.stats
    out.print(f"sent to {address}: {s.get('frames_sent', 0)} frames, {s.get('bytes_sent', 0):,} bytes on the wire, "
              f"{s.get('frames_resent', 0)} resent, {s.get('reconnects', 0)} reconnects; everything acknowledged",
              highlight=False, soft_wrap=True)


def _print_recording(end: dict) -> None:
    if not end.get("path"):
        err.print("no sample was received; nothing written", highlight=False)
        return
    ratio = f", ratio {end['raw_bytes'] / end['coded_bytes']:.2f}" if end.get("coded_bytes") else ""
    counted = (f", lost {end['lost']}, duplicated {end['duplicated']}" if end.get("lost") is not None else "")
    latency = (f", latency p99 {1000 * end['latency_p99_s']:.0f} ms (max {1000 * end['latency_max_s']:.0f})"
               if end.get("latency_p99_s") is not None else "")
    out.print(f"wrote {end['path']}: {end['n_samples']:,} samples{ratio}, {end['markers']} markers{latency}{counted} "
              f"(stopped: {end['stop']})", highlight=False)


@contextmanager
def _status_line():
    """A callable that shows the live status: one line redrawn on a terminal, a line every
    STATUS_EVERY_S seconds otherwise."""
    if err.is_terminal:
        from rich.live import Live
        from rich.text import Text

        with Live(console=err, refresh_per_second=4, transient=True) as live:
            yield lambda status: live.update(Text(status.line()))
        return
    last = [0.0]

    def show(status):
        now = time.monotonic()
        if now - last[0] >= STATUS_EVERY_S:
            last[0] = now
            err.print(status.line(), highlight=False)
    yield show


def _print_summary(path: Path, requested: str = "lossless") -> None:
    s = archive_summary(path)
    for warning in s.get("source_warnings", ()):
        err.print(f"[yellow]warning:[/] {s['source_file']}: {warning}", highlight=False)
    out.print(
        f"wrote {path}: {s['source_bytes']:,} → {s['archive_bytes']:,} bytes "
        f"(ratio {s['ratio']}), verified", highlight=False,
    )
    if "lossy" in s:
        _print_fidelity(path)
    elif requested != "lossless" and s["mode"] == "lossless":
        out.print(f"  stored losslessly: coding every channel exactly takes no more bytes than --mode {requested} "
                  "at this setting", highlight=False, soft_wrap=True)


def _print_fidelity(path: Path) -> None:
    """After a lossy compress: the headline figures, and what was stored exactly instead."""
    from .container.reader import Archive
    from .files.fidelity_text import exact_line, headline

    with Archive(path) as arc:
        fid = arc.fidelity
    for line in (headline(fid), exact_line(fid)):
        if line:
            out.print(f"  {line}", highlight=False, soft_wrap=True)


def _interrupt_keyboard(signum, frame) -> None:
    """Ctrl-C ends a run: cleanup runs, nothing is published, exit code 130. (SIGINT stays
    handled: it also re-delivers an interrupt Python swallowed, see system/interrupts.py.)"""
    request_interrupt()
    interrupts.handler(signum, frame)


def _interrupt(signum, frame) -> None:
    """SIGTERM and SIGHUP end a run like Ctrl-C."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # once: a second signal must not break the cleanup
    request_interrupt()  # should the KeyboardInterrupt be swallowed on its way, writers still see it
    interrupts.handler(signum, frame)


def _unraisable(info, settings=_SETTINGS, default=sys.__unraisablehook__,
                 deliver_again=interrupts.deliver_again) -> None:
    """Errors Python can only report (an extension's object failing to free itself after a
    failed write): the command reports its own error; --debug shows these too. A signal's
    KeyboardInterrupt reported this way (raised in a destructor or a callback) is sent again.
    (Bound as defaults: the hook also runs at interpreter exit, when globals are gone.)"""
    if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
        deliver_again()
        return
    if settings["debug"]:
        default(info)


def _excepthook(kind, value, tb, settings=_SETTINGS, default=sys.__excepthook__) -> None:
    """Only what extensions print through Python reaches this hook (an uncaught exception ends
    in main()), e.g. Cython objects failing to free themselves after a failed write, whose
    error the command reports itself. Silent, except with --debug."""
    if settings["debug"]:
        default(kind, value, tb)


def main() -> None:  # pragma: no cover
    sys.unraisablehook = _unraisable
    sys.excepthook = _excepthook
    signal.signal(signal.SIGINT, _interrupt_keyboard)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    if hasattr(signal, "SIGXFSZ"):  # over `ulimit -f`, a write fails with EFBIG instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        typer.main.get_command(app)()  # not app(): it would install typer's own excepthook
    except SystemExit as exc:  # how click ends every command, success included
        exit_now(exc.code)
        raise
    except Exception as exc:  # noqa: BLE001 - raised outside any command (e.g. while starting)
        code, message = exit_status(exc)
        if _SETTINGS["debug"]:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
