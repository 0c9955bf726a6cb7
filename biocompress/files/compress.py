"""compress(): any MNE recording → verified HDF5 archive."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import mne
import numpy as np

from ..container.reader import Archive, sample_buffer
from ..container.layout import MAX_BLOCK_ELEMENTS
from ..container.writer import ArchiveWriter, write_description
from ..errors import BadInputError, VerificationError
from . import edf_exact
from ..io import edf_file, edf_native, scaling
from ..io.source import file_sha256, needs_whole_read, open_source
from ..io.xdf_chunks import is_xdf_path
from ..system.outputs import check_output, writing
from ..system.threads import one_blas_thread
from ..codecs.pool import BlockPool
from ..progress import progress_bar
from ..stream.encoder import StreamEncoder
from ..stream.lanes import LEVELS
from ..stream.plans import lossless_lanes
from ..stream.sources import raw_chunks
from .modes import MODES, mode_problem  # noqa: F401 - mode_problem: part of this module's interface

BLOCK_SAMPLES = 16384
GROUP_CHANNELS = 32  # the cross-channel stage finds references within a lane's channels
SMALL_RECORDING = 1_000_000  # samples; below this, worker processes cost more than they save


def default_output(src: Path) -> Path:
    """INPUT's stem (last extension removed) + .bc.h5, beside it."""
    return src.with_name(src.stem + ".bc.h5")


def _native_codes(raw, recipe, whole: np.ndarray) -> dict[int, np.ndarray]:
    """Native-rate codes of the channels MNE resamples, where they rebuild MNE's view exactly."""
    found = {}
    for ch in edf_native.native_channels(raw):
        try:
            codes = edf_native.read_native_codes(raw, ch)
        except (OSError, ValueError):  # e.g. an in-memory Raw no longer matching its file
            continue
        view = edf_native.mne_view(recipe, codes, ch, raw.n_times)
        if (view.view(np.int64) == whole[ch].view(np.int64)).all():
            found[int(ch)] = codes
    return found


def _file_digest(path: Path) -> dict:
    return {"name": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}


def _source_files(src_path: Path | None, raw) -> list[Path]:
    paths = [src_path.resolve()] if src_path is not None and src_path.is_file() else []
    for f in raw.filenames or ():
        p = Path(f).resolve() if f else None
        if p is not None and p.is_file() and p not in paths:
            paths.append(p)
    for p in list(paths):  # data files of header-based formats
        for ext in {".vhdr": (".eeg", ".vmrk"), ".set": (".fdt",), ".lay": (".dat",)}.get(p.suffix.lower(), ()):
            side = p.with_suffix(ext)
            if side.is_file() and side not in paths:
                paths.append(side)
    return paths


def _encode(raw, writer: ArchiveWriter, lanes, block, progress, whole, pool: BlockPool) -> str:
    """Encode the recording through ``lanes`` into ``writer``; return the SHA-256 of its samples."""
    sha = hashlib.sha256()

    def chunks():  # read, hashed and counted as the encoder asks for them
        for chunk in raw_chunks(raw, block, whole):
            sha.update(sample_buffer(chunk.values))
            yield chunk
            progress(chunk.stop - chunk.start)

    for coded in StreamEncoder(lanes, pool).encode(chunks()):
        writer.add(coded)
    return sha.hexdigest()


def _stored_samples(raw, native: dict) -> np.ndarray:
    stored = np.full(raw.info["nchan"], raw.n_times, np.int64)
    for ch, codes in native.items():
        stored[ch] = codes.size
    return stored


def compress(src, dst=None, mode: str = "lossless", *, overwrite: bool = False,
             block_samples: int = BLOCK_SAMPLES, group_channels: int = GROUP_CHANNELS,
             workers: int | None = None, progress: bool = False, verify: bool = True,
             quality: int | None = None, max_error_uv: float | None = None, model=None,
             level: str = "default", stream=None, max_prdn: float | None = None,
             bitrate: float | None = None) -> Path:
    """Compress a recording (a path MNE reads, an XDF file, or an ``mne.io.Raw``) into an archive.

    An XDF file (``.xdf``, ``.xdfz``) becomes one archive holding every stream, losslessly,
    with its exact timestamps: the main stream (``stream``: its number, name or type; default
    the EEG stream with the most channels) at the root, the others reachable with
    ``Archive(path, stream=...)`` (docs/FORMAT.md §5.6).

    ``mode``: "lossless" (default), "lossy" (autoencoder, ``quality`` 1…5, 1 smallest; or
    ``max_prdn``: a target, no channel's PRDN above it, stored and checked by ``verify``)
    or ``bitrate``: coded bits per sample, the fidelity stated in the archive), or "near-lossless"
    (every sample within ``max_error_uv`` µV; 0 = lossless).
    ``level``: effort of the lossless integer coder, as flac and zstd users know it:
    "fast" (bulk conversion, live streams), "default", "max" (much slower, the last percent).
    ``model``: a model file from ``biocompress train`` (default: the shipped model).
    A lossy archive is never larger than the lossless one: channel groups whose lossless coding
    takes no more bytes are stored losslessly (named in the archive's fidelity figures,
    ``stored_exactly``), and where that is every channel the archive is the lossless one
    (mode ``lossless``).

    The archive is written under a temporary name beside ``dst``, decoded and
    compared with the source, and only then renamed to ``dst``.

    Blocks hold ``block_samples`` samples of up to ``group_channels`` channels;
    larger groups give the cross-channel stage more references, smaller ones make
    reading a few channels cheaper. Blocks are encoded on ``workers`` processes
    (default: every core; recordings under ~1 M samples stay in-process).

    Returns
    -------
    Path of the archive.

    Raises
    ------
    BadInputError
        The recording cannot be read or used, or the output is refused before any work:
        it exists (without ``overwrite``), it is one of the recording's files, it is not
        a regular file, its extension names a recording format, or ``overwrite`` would
        replace a file that is not an archive.
    WriteError
        The output cannot be written: disk full, permission denied, read-only file
        system, file size limit. Nothing is left at ``dst``.
    VerificationError
        The archive decoded differs from the source; nothing is written.
    """
    if block_samples < 1 or group_channels < 1:
        raise BadInputError(None, "block_samples and group_channels must be positive")
    if block_samples * group_channels > MAX_BLOCK_ELEMENTS:
        raise BadInputError(None, f"blocks of {block_samples} samples × {group_channels} channels exceed "
                            f"the format's {MAX_BLOCK_ELEMENTS} samples per block")
    if mode not in MODES:
        raise BadInputError(None, f"mode must be one of {MODES}, got {mode!r}")
    if max_prdn is not None and (problem := mode_problem(mode, quality, max_error_uv, max_prdn)):
        raise BadInputError(None, f"max_prdn={max_prdn!r}: {problem}")
    if bitrate is not None and (problem := mode_problem(mode, quality, max_error_uv, max_prdn, bitrate)):
        raise BadInputError(None, f"bitrate={bitrate!r}: {problem}")
    if level not in LEVELS:
        raise BadInputError(None, f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    source_warnings: list[str] = []
    if not isinstance(src, mne.io.BaseRaw) and is_xdf_path(src):
        if mode != "lossless" and not (mode == "near-lossless" and max_error_uv == 0):
            raise BadInputError(src, f"XDF files are compressed losslessly only (every stream, exact timestamps); "
                                f"--mode {mode} is not available for them")
        from .compress_xdf import compress_xdf

        return compress_xdf(src, dst, stream=stream, overwrite=overwrite, block_samples=block_samples,
                            group_channels=group_channels, workers=workers, progress=progress, verify=verify)
    if stream is not None:
        raise BadInputError(src if not isinstance(src, mne.io.BaseRaw) else None,
                            "stream= picks one stream of an XDF file; this recording is not one")
    if isinstance(src, mne.io.BaseRaw):
        raw, src_path = src, Path(src.filenames[0]) if src.filenames and src.filenames[0] else None
        if dst is None:
            raise BadInputError(None, "dst is required when compressing an in-memory Raw")
    else:
        src_path = Path(src)
        raw, source_warnings = open_source(src_path)
    write_metadata = partial(_write_metadata, source_warnings=source_warnings)
    dst = check_output(dst if dst is not None else default_output(src_path), _source_files(src_path, raw),
                       force=overwrite, kind="archive")
    exact_edf = src_path is not None and not isinstance(src, mne.io.BaseRaw) and edf_file.is_edf(src_path) \
        and edf_native.samples_per_record(raw) is not None
    with writing(dst), one_blas_thread():
        return _compress_checked(raw, src_path, dst, mode, exact_edf, overwrite=overwrite,
                                 block_samples=block_samples, group_channels=group_channels, workers=workers,
                                 progress=progress, verify=verify, quality=quality, max_error_uv=max_error_uv,
                                 model=model, write_metadata=write_metadata, level=level, max_prdn=max_prdn,
                                 bitrate=bitrate)


def _compress_checked(raw, src_path, dst, mode, exact_edf, *, overwrite, block_samples, group_channels, workers,
                      progress, verify, quality, max_error_uv, model, write_metadata, level, max_prdn=None,
                      bitrate=None) -> Path:
    if mode == "near-lossless" and max_error_uv == 0:
        mode = "lossless"
    if mode != "lossless":
        from .compress_lossy import compress_lossy

        path = compress_lossy(raw, src_path, dst, mode=mode, quality=quality, max_error_uv=max_error_uv,
                              model=model, overwrite=overwrite, block_samples=block_samples, progress=progress,
                              write_metadata=write_metadata, max_prdn=max_prdn, bitrate=bitrate)
        if path is not None:
            return path
        mode = "lossless"  # coded losslessly, every channel takes no more bytes than lossily
    recipe = scaling.recipe_for(raw)
    whole = raw.get_data() if needs_whole_read(raw) else None
    native = _native_codes(raw, recipe, whole) if whole is not None else {}
    first = whole[:, :block_samples] if whole is not None else raw.get_data(start=0, stop=min(raw.n_times, block_samples))
    kinds = scaling.detect_kinds(recipe, first)
    kinds[list(native)] = scaling.NATIVE
    stored = _stored_samples(raw, native)
    label = src_path.name if src_path else "recording"
    if workers is None:
        workers = 1 if raw.n_times * raw.info["nchan"] < SMALL_RECORDING else None
    with BlockPool(workers) as pool:  # encodes, then decodes for the verification
        with progress_bar(f"compress {label}", raw.n_times, enabled=progress) as advance:
            while True:
                writer = ArchiveWriter(dst, mode=mode)
                try:
                    matcher = edf_exact.SignalMatcher(src_path, raw, native) if exact_edf else None
                    lanes = lossless_lanes(kinds, recipe, block_samples, group_channels, native,
                                           observe=matcher.observe if matcher else None, level=level)
                    sha = _encode(raw, writer, lanes, block_samples, advance, whole, pool)
                    break
                except scaling.KindMismatch as exc:  # a later chunk broke a kind: demote, restart
                    writer.discard()
                    kinds[exc.channels] += 1
                except BaseException:
                    writer.discard()
                    raise
        with writer:
            write_metadata(writer.h5, raw, recipe, kinds, stored, src_path)
            if matcher is not None:
                matcher.write(writer.h5)
            writer.finish({
                "n_samples": raw.n_times, "n_channels": raw.info["nchan"],
                "sfreq": float(raw.info["sfreq"]), "first_samp": int(raw.first_samp),
                "block_samples": block_samples, "samples_sha256": sha,
                "samples_hash_layout": "sha256 of float64 little-endian samples, time-major",
            })
            if verify:
                with Archive(writer.tmp) as arc, progress_bar(f"verify {label}", raw.n_times, enabled=progress) as adv:
                    if matcher is not None:  # one decode of every block for both checks
                        result, rebuild = edf_exact.verify_with_file(arc, progress=adv, pool=pool)
                    else:
                        result = arc.verify(progress=adv, pool=pool)
                    if not result["ok"]:
                        raise VerificationError(
                            f"{label}: decoded archive differs from the source "
                            f"(sha256 {result['samples_sha256']} != {result['expected']})"
                        )
                    if matcher is not None:
                        rebuilt = rebuild.finish()
                        if rebuilt != arc.source["sha256"]:
                            raise VerificationError(f"{label}: the EDF/BDF file rebuilt from the archive differs "
                                                    f"from the source (sha256 {rebuilt} != {arc.source['sha256']})")
            return writer.publish(overwrite=overwrite)


def source_description(src_path: Path | None, raw, source_warnings=()) -> dict:
    """Provenance of an archive made from a file: its files' names, sizes and SHA-256, the MNE
    reader, and what MNE warned about when opening it (docs/FORMAT.md §3)."""
    files = [_file_digest(p) for p in _source_files(src_path, raw)]
    return {
        "file_name": src_path.name if src_path else None,
        "file_size": files[0]["size"] if files else None,
        "sha256": files[0]["sha256"] if files else None,
        "files": files,
        "reader": type(raw).__name__,
        "mne_version": mne.__version__,
        "source_bytes": sum(f["size"] for f in files),
        "warnings": list(source_warnings),  # what MNE said on opening the source (truncated file, …)
    }


def _write_metadata(h5, raw, recipe, kinds, stored, src_path, source_warnings=()) -> None:
    write_description(h5, info=raw.info, ch_types=raw.get_channel_types(), recipe=recipe, kinds=kinds,
                      stored=stored, annotations=raw.annotations,
                      source=source_description(src_path, raw, source_warnings))
