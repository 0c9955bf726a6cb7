"""Hand back an archived recording as a file.

EDF/BDF sources come back byte for byte (the SHA-256 recorded at compression is
checked before the file gets its name). Other sources are written through MNE in
the format the output's extension names; the file is read back and compared with
the archive channel by channel (:mod:`.export_check`), and an export that would change
trigger codes or clip values is refused unless asked for.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from . import edf_exact, export_check
from ..system import os_errors
from ..container.reader import Archive
from ..errors import BadInputError, VerificationError
from ..system.outputs import check_output, temporary, writing
from ..system.signals import check_interrupted

EXPORT_FORMATS = {".fif": "fif", ".edf": "edf", ".bdf": "bdf", ".vhdr": "brainvision", ".set": "eeglab"}


def _check_output(output: Path, overwrite: bool, archive) -> None:
    check_output(output, [archive], force=overwrite, kind="recording")


def restore(archive, output, *, overwrite: bool = False, progress=None, allow_changes: bool = False) -> dict:
    """Write the archived recording to ``output``; return what was written and how exact.

    Returns a dict with ``path``, ``method`` ("edf-bytes", "mne-export" or "xdf"), ``exact``
    ("bytes", "samples", "streams" or "no") and, for EDF/BDF, the checked ``sha256``; for exports,
    ``channels`` (per channel: bit-exact or its max |error|) and ``changes``. An archive of an
    XDF file restored to ``.xdf`` gives every stream back (samples, timestamps, clock offsets,
    markers, header XML exact; see :mod:`.restore_xdf`); to another format, its main stream
    through MNE.
    ``allow_changes``: write an export that changes trigger codes or clips values.

    Raises ``BadInputError`` (an unusable archive, or an output refused before any work:
    it exists without ``overwrite``, it is the archive, it is not a regular file, or an
    export would change values without ``allow_changes``), ``WriteError`` (disk full,
    permission denied...), ``CorruptArchiveError`` and ``VerificationError`` (nothing is
    written).
    """
    output = Path(output)
    _check_output(output, overwrite, archive)
    with writing(output):
        if output.suffix.lower() == ".xdf":  # an XDF file's archive: every stream back as an XDF file
            from .restore_xdf import restore_xdf

            return restore_xdf(archive, output)
        with Archive(archive) as arc:
            if arc.stored_edf is not None:
                return _restore_edf(arc, output, progress)
            source_name = arc.source.get("file_name") or "recording"
        return _export(Path(archive), output, source_name, allow_changes=allow_changes)


def _restore_edf(arc: Archive, output: Path, progress) -> dict:
    stored = arc.stored_edf
    want = Path(arc.source.get("file_name") or "").suffix.lower()
    if want and output.suffix.lower() != want:
        raise BadInputError(output, f"the archived file is {stored.kind} ({want}); give the output that extension")
    gaps = stored.gaps()  # every part restore reports on is checked before anything is written
    tmp = temporary(output)
    try:
        with open(tmp, "wb") as f:
            sha = edf_exact.write_file(arc, f, progress=progress)
        if sha != stored.sha256:
            raise VerificationError(f"{arc.path}: rebuilt {stored.kind} file has sha256 {sha}, "
                                    f"the source had {stored.sha256}; nothing written")
        os.chmod(tmp, 0o666 & ~_umask())
        check_interrupted()
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"path": output, "method": "edf-bytes", "exact": "bytes", "kind": stored.kind, "sha256": sha,
            "gaps": gaps}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export(archive, output, *, overwrite: bool = False, allow_changes: bool = False) -> dict:
    """Write the archive's recording through MNE in the format of ``output``'s extension
    (.fif, .edf, .bdf, .vhdr, .set) and report, per channel, what the file holds exactly.

    Raises :class:`BadInputError` (nothing written) where the format would change trigger
    codes, clip values or lose channels or samples, unless ``allow_changes``.
    """
    output = Path(output)
    _check_output(output, overwrite, archive)
    with writing(output):
        if output.suffix.lower() == ".xdf":
            from .restore_xdf import restore_xdf

            return restore_xdf(archive, output)
        return _export(Path(archive), output, "", allow_changes=allow_changes)


def _export(archive: Path, output: Path, source_name: str, *, allow_changes: bool = False) -> dict:
    """Write the archive's recording through MNE, read the file back and compare channel by
    channel (:mod:`.export_check`). A file that would change trigger codes, clip values or lose
    channels or samples is not written unless ``allow_changes``."""
    import mne

    from .read import read_raw

    ext = output.suffix.lower()
    if ext not in EXPORT_FORMATS:
        raise BadInputError(output, f"unsupported output extension {ext!r}; use one of {sorted(EXPORT_FORMATS)}")
    fmt = EXPORT_FORMATS[ext]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a lossy archive's note: the export reports its own figures
        raw = read_raw(archive, preload=True, verbose="ERROR")
    # Export under the final name inside a private folder, then move the file(s):
    # BrainVision headers refer to their data files by name.
    tmpdir = temporary(output, folder=True)
    try:
        target = tmpdir / output.name
        recalibrated = []
        try:
            if ext == ".fif":
                recalibrated = _exact_fif_calibrations(raw)
                raw.save(target, fmt="double", overwrite=True, verbose="ERROR")
            else:
                # one physical range per channel: per-type ranges flatten small EEG next to large channels
                extra = {"physical_range": "channelwise"} if ext in (".edf", ".bdf") else {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # what they warn about is compared below
                    mne.export.export_raw(target, raw, fmt=fmt, overwrite=True, verbose="ERROR", **extra)
            back = mne.io.read_raw(target, preload=True, verbose="ERROR")
        except Exception as exc:  # noqa: BLE001 - MNE's exporters and readers raise many types
            if os_errors.errno_of(exc) is not None:
                raise  # disk full, permission...: writing() names the output
            raise BadInputError(output, f"export failed: {exc}") from exc
        outcomes, notes = export_check.compare(raw, back, fmt)
        changes = [o for o in outcomes if o.change]
        if changes and not allow_changes:
            first = changes[0]
            raise BadInputError(output, f"{ext[1:].upper()} cannot hold this recording unchanged: {first.name} "
                                f"({first.ch_type}): {first.change}" + (f"; and {len(changes) - 1} more channel(s)"
                                                                       if len(changes) > 1 else "")
                                + "; nothing written (--allow-changes writes it anyway; .fif keeps every sample)")
        if recalibrated:
            notes.append(f"calibration factor set to 1 on {len(recalibrated)} channel(s) so that FIF stores their "
                         "float64 samples exactly")
        check_interrupted()
        for produced in tmpdir.iterdir():
            os.replace(produced, output.parent / produced.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    errors = [o.max_abs_error for o in outcomes]
    return {"path": output, "method": "mne-export", "format": fmt,
            "exact": "samples" if all(o.exact for o in outcomes) else "no",
            "max_abs_error": max(errors) if errors else 0.0, "source": source_name,
            "channels": [o.as_dict() for o in outcomes], "changes": [o.as_dict() for o in changes],
            "notes": notes, "summary": export_check.summary(outcomes)}


def _exact_fif_calibrations(raw) -> list[str]:
    """FIF stores float64 samples divided by each channel's calibration factor, and that
    factor as float32; reading multiplies back. Channels for which this does not give the
    same float64 samples (a factor float32 cannot hold, or a division that does not undo)
    get factor 1. Returns their names."""
    x = raw._data
    changed = []
    for i, ch in enumerate(raw.info["chs"]):
        cal = float(ch["cal"])
        with np.errstate(all="ignore"):
            same = float(np.float32(cal)) == cal and cal != 0 and np.array_equal(
                ((x[i] / cal) * cal).view(np.int64), x[i].view(np.int64))
        if not same:
            ch["cal"] = 1.0
            changed.append(ch["ch_name"])
    return changed
