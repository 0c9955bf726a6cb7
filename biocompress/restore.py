"""Hand back an archived recording as a file.

EDF/BDF sources come back byte for byte (the SHA-256 recorded at compression is
checked before the file gets its name). Other sources are written through MNE in
the format the output's extension names; the samples read back from that file
are compared with the archive's and the result says whether they are identical.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from . import edf_exact
from .container import edf_source
from .container.reader import Archive, sample_bytes
from .errors import BadInputError, VerificationError
from .outputs import check_output, temporary, writing

EXPORT_FORMATS = {".fif": "fif", ".edf": "edf", ".bdf": "bdf", ".vhdr": "brainvision", ".set": "eeglab"}


def _check_output(output: Path, overwrite: bool, archive) -> None:
    check_output(output, [archive], force=overwrite, kind="recording")


def restore(archive, output, *, overwrite: bool = False, progress=None) -> dict:
    """Write the archived recording to ``output``; return what was written and how exact.

    Returns a dict with ``path``, ``method`` ("edf-bytes" or "mne-export"), ``exact``
    ("bytes", "samples" or "no") and, for EDF/BDF, the checked ``sha256``.

    Raises ``BadInputError`` (an unusable archive, or an output refused before any work:
    it exists without ``overwrite``, it is the archive, it is not a regular file),
    ``WriteError`` (disk full, permission denied...), ``CorruptArchiveError`` and
    ``VerificationError`` (nothing is written).
    """
    output = Path(output)
    _check_output(output, overwrite, archive)
    with writing(output):
        with Archive(archive) as arc:
            if edf_source.GROUP in arc.h5:
                return _restore_edf(arc, output, progress)
            source_name = arc.source.get("file_name") or "recording"
        return _export(Path(archive), output, source_name)


def _restore_edf(arc: Archive, output: Path, progress) -> dict:
    stored = edf_source.StoredEdf(arc.h5, str(arc.path))
    want = Path(arc.source.get("file_name") or "").suffix.lower()
    if want and output.suffix.lower() != want:
        raise BadInputError(output, f"the archived file is {stored.kind} ({want}); give the output that extension")
    tmp = temporary(output)
    try:
        with open(tmp, "wb") as f:
            sha = edf_exact.write_file(arc, f, progress=progress)
        if sha != stored.sha256:
            raise VerificationError(f"{arc.path}: rebuilt {stored.kind} file has sha256 {sha}, "
                                    f"the source had {stored.sha256}; nothing written")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"path": output, "method": "edf-bytes", "exact": "bytes", "kind": stored.kind, "sha256": sha,
            "gaps": stored.gaps()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _export(archive: Path, output: Path, source_name: str) -> dict:
    import mne

    from .raw_archive import read_raw

    ext = output.suffix.lower()
    if ext not in EXPORT_FORMATS:
        raise BadInputError(output, f"unsupported output extension {ext!r}; use one of {sorted(EXPORT_FORMATS)}")
    raw = read_raw(archive, preload=True, verbose="ERROR")
    # Export under the final name inside a private folder, then move the file(s):
    # BrainVision headers refer to their data files by name.
    tmpdir = temporary(output, folder=True)
    try:
        target = tmpdir / output.name
        try:
            if ext == ".fif":
                raw.save(target, fmt="double", overwrite=True, verbose="ERROR")
            else:
                # one physical range per channel: per-type ranges flatten small EEG next to large channels
                extra = {"physical_range": "channelwise"} if ext in (".edf", ".bdf") else {}
                mne.export.export_raw(target, raw, fmt=EXPORT_FORMATS[ext], overwrite=True, verbose="ERROR", **extra)
        except Exception as exc:  # noqa: BLE001 - MNE's exporters raise many types
            raise BadInputError(output, f"export failed: {exc}") from exc
        back = mne.io.read_raw(target, preload=True, verbose="ERROR")
        x, y = raw.get_data(), back.get_data()
        same = x.shape == y.shape and hashlib.sha256(sample_bytes(x)).digest() == hashlib.sha256(sample_bytes(y)).digest()
        max_err = float(np.max(np.abs(x - y))) if x.shape == y.shape and x.size else None
        for produced in tmpdir.iterdir():
            os.replace(produced, output.parent / produced.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"path": output, "method": "mne-export", "exact": "samples" if same else "no",
            "max_abs_error": max_err, "source": source_name}
