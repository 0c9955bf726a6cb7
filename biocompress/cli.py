"""The ``biocompress`` command line: compress EEG/MEG recordings into verified archives.

Exit codes: 0 success; 1 verification failed or archive damaged; 2 bad input, usage or environment (disk full, permission denied, read-only file system); 3 internal error (rerun with --debug for the traceback); 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .system import os_errors
from .errors import BiocompressError, CorruptArchiveError, VerificationError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted; no partial output left"
    if isinstance(exc, (VerificationError, CorruptArchiveError)):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, BiocompressError):
        return EXIT_BAD_INPUT, str(exc)
    described = os_errors.describe(exc)
    if described is not None:
        return EXIT_BAD_INPUT, described
    if isinstance(exc, FileExistsError):  # raised without an errno by a last-moment check
        return EXIT_BAD_INPUT, str(exc)
    if isinstance(exc, MemoryError):
        return EXIT_BAD_INPUT, "not enough memory for this operation"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return EXIT_INTERNAL, (f"internal error: {type(exc).__name__}{': ' + first if first else ''}; "
                           "rerun with --debug for the traceback")


class _Handled(TyperGroup):
    """Runs every command through one handler: no traceback reaches the user (unless
    --debug), every failure gets its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - this is the one place they all end
            code, message = exit_status(exc)
            if ctx.params.get("debug"):
                sys.stderr.write(traceback.format_exc())
            err.print(f"[bold red]error:[/] {message}" if code != EXIT_INTERRUPTED else message, highlight=False,
                      soft_wrap=True)
            raise typer.Exit(code) from None


app = typer.Typer(cls=_Handled, add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
out = Console(width=None if Console().is_terminal else 120)
err = Console(stderr=True)


_SETTINGS = {"debug": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="On an error, print the traceback too.")):
    _SETTINGS["debug"] = debug


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def compress(
    input: Path = typer.Argument(..., help="Recording in any format MNE reads."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Archive path (default: INPUT stem + .bc.h5)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    mode: str = typer.Option("lossless", "--mode", help="lossless, lossy or near-lossless."),
    quality: Optional[int] = typer.Option(None, "--quality", help="lossy: 1 (smallest) … 5 (best fidelity)."),
    max_error: Optional[float] = typer.Option(None, "--max-error", help="near-lossless: bound on |error| in µV."),
    model: Optional[Path] = typer.Option(None, "--model", help="lossy modes: a model from `biocompress train`."),
):
    """Compress a recording into a verified archive."""
    from .files.compress import MODES
    from .files.compress import compress as do_compress

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}; got {mode!r}", 2)
    if mode == "lossy" and quality is None:
        _fail("--mode lossy needs --quality 1…5", 2)
    if mode == "near-lossless" and max_error is None:
        _fail("--mode near-lossless needs --max-error µV", 2)
    if mode == "lossless" and (quality is not None or max_error is not None):
        _fail("--quality and --max-error apply to --mode lossy / near-lossless", 2)
    path = do_compress(input, output, mode=mode, overwrite=force, progress=err.is_terminal,
                       quality=quality, max_error_uv=max_error, model=model)
    _print_summary(path)


@app.command()
def decompress(
    archive: Path = typer.Argument(..., help="A .bc.h5 archive."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file: .fif, .edf, .bdf, .vhdr or .set."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Write the file even where the format "
                                       "changes trigger codes or clips values (the changes are listed)."),
):
    """Export the archive's recording through MNE (format from OUTPUT's extension); the file is
    read back and checked channel by channel."""
    from .files.restore import export

    result = export(archive, output, overwrite=force, allow_changes=allow_changes)
    _print_export(result)


@app.command()
def restore(
    archive: Path = typer.Argument(..., help="A .bc.h5 archive."),
    output: Path = typer.Option(..., "-o", "--output", help="Where the recording goes."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Through MNE: write the file even where "
                                       "the format changes trigger codes or clips values (the changes are listed)."),
):
    """Give back the archived file: EDF/BDF byte for byte (SHA-256 checked), other
    formats written through MNE with the samples checked."""
    from .files.restore import restore as do_restore

    result = do_restore(archive, output, overwrite=force, allow_changes=allow_changes)
    if result["method"] == "edf-bytes":
        gaps = result["gaps"]
        note = f"; {len(gaps)} gap(s) between records kept" if gaps else ""
        out.print(f"wrote {output}: the archived {result['kind']} file byte for byte "
                  f"(sha256 {result['sha256']} checked){note}", highlight=False)
    else:
        _print_export(result)


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
    table = Table(show_header=False, box=None)
    for k, v in summary.items():
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
            "source_file": src.get("file_name"),
            "source_bytes": source_bytes,
            "archive_bytes": archive_bytes,
            "ratio": round(source_bytes / archive_bytes, 4) if source_bytes else None,
            "codec": ",".join(codecs),
            "n_blocks": int(arc.index.size),
            "source_sha256": src.get("sha256"),
            **_source_warnings(src),
            "samples_sha256": arc.attrs["samples_sha256"],
            **_stream_summary(arc),
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


def _source_warnings(source: dict) -> dict:
    """What MNE warned about when the source was opened (a list of strings in the provenance)."""
    said = source.get("warnings")
    if not isinstance(said, list) or not said:
        return {}
    return {"source_warnings": [str(w) for w in said]}


def _fidelity_summary(arc) -> dict:
    fid = arc.fidelity
    if fid is None:
        return {}
    o = fid["overall"]
    if not o:  # a live stream's: no source to measure against
        return {"lossy": f"{arc.mode}, model {arc.lossy_attrs.get('model_id')}",
                "fidelity": "not measured (no source to compare with)"}
    lossy = arc.lossy_attrs
    setting = (f"quality {int(lossy['quality'])}" if "quality" in lossy else f"max error {float(lossy['max_error_uv'])} µV")
    return {"lossy": f"{arc.mode}, {setting}, model {lossy['model_id']}",
            "fidelity": f"PRD {o['prd']:.2f} %, PRDN {o['prdn']:.2f} %, SNR {o['snr_db']:.1f} dB, "
                        f"RMSE {o['rmse_uv']:.3f} µV, max |error| {o['max_abs_error_uv']:.3f} µV",
            "band_power_error": ", ".join(f"{b} {100 * o[f'band_{b}']:.1f} %" for b in
                                          ("delta", "theta", "alpha", "beta", "gamma") if o.get(f"band_{b}") is not None)}


def _restore_summary(arc) -> str:
    if arc.mode != "lossless":
        return "not exact (lossy archive)"
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
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output archive."),
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
    """Wait for the stream's end, --duration or a stop signal; then for the archive to be finalized
    (further signals cannot cut that short)."""
    import time

    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not receiver.wait(1.0):
            if deadline is not None and time.monotonic() >= deadline:
                receiver.stop(f"reached --duration {duration:g} s")
                break
            if err.is_terminal:
                err.print(receiver.status_line(), end="\r", highlight=False)
    except KeyboardInterrupt:
        receiver.stop("was stopped (interrupted)")
    held = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            held[sig] = signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    try:
        receiver.wait()
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


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
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
):
    """Plot a lossy archive against its source: traces, spectra, error histogram, fidelity table."""
    from .files.report import make_report

    fid = make_report(archive, source, output, overwrite=force)
    o = fid["overall"]
    out.print(f"wrote {output}: PRDN {o['prdn']:.2f} %, max |error| {o['max_abs_error_uv']:.3f} µV", highlight=False)


@app.command()
def train(
    data_dir: Path = typer.Argument(..., help="Folder of recordings to train on (searched recursively)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.pt)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Folder of validation recordings "
                                              "(other subjects); default: every 5th recording of DATA_DIR (the last of fewer)."),
    minutes: float = typer.Option(12.0, "--minutes", help="Training time on this machine's CPU."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model file."),
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


def _print_summary(path: Path) -> None:
    s = archive_summary(path)
    for warning in s.get("source_warnings", ()):
        err.print(f"[yellow]warning:[/] {s['source_file']}: {warning}", highlight=False)
    out.print(
        f"wrote {path}: {s['source_bytes']:,} → {s['archive_bytes']:,} bytes "
        f"(ratio {s['ratio']}), verified", highlight=False,
    )


def _interrupt(signum, frame) -> None:
    """SIGTERM and SIGHUP end a run like Ctrl-C: cleanup runs, exit code 130."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # once: a second signal must not break the cleanup
    raise KeyboardInterrupt


def _unraisable(info, settings=_SETTINGS, default=sys.__unraisablehook__) -> None:
    """Errors Python can only report (an extension's object failing to free itself after a
    failed write): the command reports its own error; --debug shows these too.
    (Bound as defaults: the hook also runs at interpreter exit, when globals are gone.)"""
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
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    if hasattr(signal, "SIGXFSZ"):  # over `ulimit -f`, a write fails with EFBIG instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        typer.main.get_command(app)()  # not app(): it would install typer's own excepthook
    except Exception as exc:  # noqa: BLE001 - raised outside any command (e.g. while starting)
        code, message = exit_status(exc)
        if _SETTINGS["debug"]:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
