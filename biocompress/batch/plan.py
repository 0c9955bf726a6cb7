"""Output names: archives ``<name>.bc.h5`` beside where the recording was, in a mirrored tree.

* compress: ``rec.edf`` → ``rec.bc.h5``; two recordings of one folder that would get the
  same name (``rec.edf`` and ``rec.bdf``), or a name a copied file already takes, keep
  their whole name instead (``rec.edf.bc.h5``, ``rec.bdf.bc.h5``).
* restore: ``rec.bc.h5`` → ``rec`` + the archived file's extension (``rec.edf``); where
  MNE cannot write that format (CTF, EGI, Persyst …), ``rec.fif``.
* export: ``rec.bc.h5`` → ``rec.<format's extension>``.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from pathlib import Path

from .discover import ARCHIVE_SUFFIX, Unit

EXPORT_EXTENSIONS = {"fif": ".fif", "edf": ".edf", "bdf": ".bdf", "brainvision": ".vhdr", "vhdr": ".vhdr",
                     "eeglab": ".set", "set": ".set"}
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def compressed_names(units: list[Unit], previous: dict[str, str]) -> dict[str, str]:
    """Output path (relative) of every unit: recordings → archives, plain files → themselves.
    ``previous``: outputs recorded by an earlier run, kept so that names never change."""
    wanted = {}
    for u in units:
        if u.kind == "recording":
            name = u.rel.rsplit("/", 1)[-1]
            stem = name[: -len(".fif.gz")] if name.lower().endswith(".fif.gz") else posixpath.splitext(name)[0]
            wanted[u.rel] = posixpath.join(posixpath.dirname(u.rel), stem + ARCHIVE_SUFFIX)
        else:
            wanted[u.rel] = u.rel
    taken = Counter(v.lower() for v in wanted.values())
    out = {}
    for u in units:
        name = wanted[u.rel]
        if u.kind == "recording" and taken[name.lower()] > 1:
            name = u.rel + ARCHIVE_SUFFIX
        out[u.rel] = previous.get(u.rel, name)
    return out


def restored_name(root: Path, rel: str) -> str:
    """Where the recording of archive ``rel`` goes back to (relative path)."""
    base = rel[: -len(ARCHIVE_SUFFIX)] if rel.lower().endswith(ARCHIVE_SUFFIX) else rel
    suffix, exact = archived_format(root / rel)
    from ..files.restore import EXPORT_FORMATS

    if not exact and suffix.lower() not in EXPORT_FORMATS:
        suffix = ".fif"
    if base.lower().endswith(suffix.lower()):
        return base
    return base + suffix


def exported_name(rel: str, fmt: str) -> str:
    base = rel[: -len(ARCHIVE_SUFFIX)] if rel.lower().endswith(ARCHIVE_SUFFIX) else rel
    return base + EXPORT_EXTENSIONS[fmt]


def archived_format(path: Path) -> tuple[str, bool]:
    """(extension of the archived file, whether restore gives that format back: EDF/BDF byte for byte,
    an XDF file with every stream): read from the archive's
    provenance (its metadata checked, no sample read). Anything unreadable gives (".fif", False):
    the task that restores the archive reports what is wrong with it."""
    from ..container.reader import Archive

    try:
        with Archive(path) as arc:
            name = arc.source.get("file_name") or ""
            exact = "edf" in arc.h5 or "xdf_header" in arc.source  # EDF/BDF bytes; an XDF file's every stream
    except Exception:  # noqa: BLE001 - an untrusted file: the restore task reports its problem
        return ".fif", False
    suffix = Path(str(name)).suffix  # as the file had it (MB0400FU.EDF)
    return (suffix, exact) if _SAFE_SUFFIX.match(suffix) else (".fif", False)
