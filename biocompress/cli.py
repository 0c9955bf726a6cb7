"""The ``biocompress`` command line. Exit codes: 0 ok, 1 verification failed, 2 bad input/usage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import BadInputError, BiocompressError, CorruptArchiveError, VerificationError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
out = Console(width=None if Console().is_terminal else 120)
err = Console(stderr=True)

def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _run(fn):
    """Call fn, turning our exceptions into messages and exit codes."""
    try:
        return fn()
    except (VerificationError, CorruptArchiveError) as exc:
        _fail(str(exc), 1)
    except (BadInputError, FileExistsError) as exc:
        _fail(str(exc), 2)
    except BiocompressError as exc:
        _fail(str(exc), 2)


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
    from .compress import MODES
    from .compress import compress as do_compress

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}; got {mode!r}", 2)
    if mode == "lossy" and quality is None:
        _fail("--mode lossy needs --quality 1…5", 2)
    if mode == "near-lossless" and max_error is None:
        _fail("--mode near-lossless needs --max-error µV", 2)
    if mode == "lossless" and (quality is not None or max_error is not None):
        _fail("--quality and --max-error apply to --mode lossy / near-lossless", 2)
    path = _run(lambda: do_compress(input, output, mode=mode, overwrite=force, progress=err.is_terminal,
                                    quality=quality, max_error_uv=max_error, model=model))
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
    from .restore import export

    result = _run(lambda: export(archive, output, overwrite=force, allow_changes=allow_changes))
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
    from .restore import restore as do_restore

    result = _run(lambda: do_restore(archive, output, overwrite=force, allow_changes=allow_changes))
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
    summary = _run(lambda: archive_summary(archive))
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
            "restore": _restore_summary(arc),
            **_fidelity_summary(arc),
        }


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
    from .verify import verify_archive

    report = _run(lambda: verify_archive(archive, source, progress=err.is_terminal))
    for line in report["lines"]:
        out.print(line, highlight=False)
    if not report["ok"]:
        _fail(f"{archive}: verification FAILED", 1)
    out.print(f"[green]{archive}: OK[/]")


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
):
    """Plot a lossy archive against its source: traces, spectra, error histogram, fidelity table."""
    from .report import make_report

    fid = _run(lambda: make_report(archive, source, output))
    o = fid["overall"]
    out.print(f"wrote {output}: PRDN {o['prdn']:.2f} %, max |error| {o['max_abs_error_uv']:.3f} µV", highlight=False)


@app.command()
def train(
    data_dir: Path = typer.Argument(..., help="Folder of recordings to train on (searched recursively)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.pt)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Folder of validation recordings "
                                              "(other subjects); default: every 5th recording of DATA_DIR (the last of fewer)."),
    minutes: float = typer.Option(12.0, "--minutes", help="Training time on this machine's CPU."),
):
    """Train the lossy autoencoder on your recordings; use it with `compress --model`."""
    from .codecs.lossy.train import train_folder

    mid = _run(lambda: train_folder(data_dir, output, validation=validation, minutes=minutes,
                                    log=lambda m: out.print(m, highlight=False)))
    out.print(f"model {mid} written to {output}; compress with --mode lossy --model {output}")


@app.command()
def demo(
    samples: Optional[Path] = typer.Argument(None, help="Folder of recordings (default: the bundled data_samples/)."),
):
    """Compress, verify and tabulate the bundled sample recordings."""
    from .demo import run_demo

    _run(lambda: run_demo(samples, console=out))


def _print_summary(path: Path) -> None:
    s = archive_summary(path)
    for warning in s.get("source_warnings", ()):
        err.print(f"[yellow]warning:[/] {s['source_file']}: {warning}", highlight=False)
    out.print(
        f"wrote {path}: {s['source_bytes']:,} → {s['archive_bytes']:,} bytes "
        f"(ratio {s['ratio']}), verified", highlight=False,
    )


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
