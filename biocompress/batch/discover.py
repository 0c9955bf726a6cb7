"""Walk a dataset: which files make one recording, which are archives, which are plain files.

A recording may be several files (BrainVision .vhdr + .eeg + .vmrk, EEGLAB .set + .fdt,
Persyst .lay + .dat, Nihon Kohden .EEG + .PNT/.LOG/.21E, split FIF files) or a folder
(CTF .ds, EGI .mff, MEF3 .mefd); each is converted once, through its header or folder.
Files a header does not claim and that are no recording are plain files (copied).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..io.source import FOLDER_FORMATS
from ..system.outputs import is_temporary

ARCHIVE_SUFFIX = ".bc.h5"
STATE_FOLDER = ".biocompress"  # a batch's manifest, lock and kept originals, at its destination's root
# Single-file recordings MNE reads (headers of multi-file formats included), and LSL's XDF files
RECORDING_SUFFIXES = {".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".ahdr", ".set", ".lay", ".cnt", ".con",
                      ".sqd", ".ns3", ".nxe", ".nedf", ".snirf", ".xdf", ".xdfz"}
# FIF files that hold something other than a continuous recording (MNE's naming conventions)
NOT_RAW_FIF = re.compile(r"[-_](epo|ave|cov|fwd|inv|trans|sol|ica|proj|src|bem|tfr|annot|eve)\.fif(\.gz)?$", re.I)
_BIDS_SPLIT = re.compile(r"_split-(?P<n>\d+)_", re.I)
_NIHON_SIDECARS = (".pnt", ".log", ".21e", ".11d", ".cmt")


@dataclass(frozen=True)
class Unit:
    """What one task works on. ``kind``: "recording", "archive" or "file"; ``rel``: the path
    of the recording's header, folder or file relative to the dataset root (POSIX);
    ``members``: every file it reads, relative paths (its own among them)."""

    kind: str
    rel: str
    members: tuple[str, ...]

    @property
    def is_folder(self) -> bool:
        return len(self.members) > 0 and self.members[0] != self.rel


@dataclass
class Found:
    units: list[Unit]
    folders: list[str]  # every folder below the root that was walked (relative, POSIX)
    skipped: list[tuple[str, str]]  # (relative path, why)


def suffix_of(name: str) -> str:
    lower = name.lower()
    return ".fif.gz" if lower.endswith(".fif.gz") else os.path.splitext(lower)[1]


def matches(rel: str, patterns) -> bool:
    """A glob matches the relative path (``*`` crosses folders) or, without a ``/``, the name."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or ("/" not in p and fnmatch.fnmatchcase(name, p)) for p in patterns)


def find_units(root, *, archives: bool = False, include=(), exclude=()) -> Found:
    """Walk ``root``: recordings (or, with ``archives``, ``*.bc.h5`` archives) and plain files,
    in a stable order. ``include``/``exclude``: globs over paths relative to ``root``."""
    root = Path(root)
    units, folders, skipped = [], [], []
    for here, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_here = Path(here).relative_to(root).as_posix()
        prefix = "" if rel_here == "." else rel_here + "/"
        if prefix == "":
            dirnames[:] = [d for d in dirnames if d != STATE_FOLDER]
        kept = []
        for d in dirnames:
            full = Path(here) / d
            if full.is_symlink():
                skipped.append((prefix + d, "symbolic link to a folder: not followed"))
            elif not archives and suffix_of(d) in FOLDER_FORMATS:
                members = tuple(sorted(p.relative_to(root).as_posix() for p in full.rglob("*") if p.is_file()))
                units.append(Unit("recording", prefix + d, members))
            elif is_temporary(d):
                continue
            else:
                kept.append(d)
                folders.append(prefix + d)
        dirnames[:] = kept
        names = sorted(n for n in filenames if not is_temporary(n))
        units += _units_in(Path(here), prefix, names, archives)
    if include:
        units = [u for u in units if matches(u.rel, include)]
    if exclude:
        units = [u for u in units if not matches(u.rel, exclude)]
    return Found(units, folders, skipped)


def _units_in(folder: Path, prefix: str, names: list[str], archives: bool) -> list[Unit]:
    if archives:
        return [Unit("archive" if n.lower().endswith(ARCHIVE_SUFFIX) else "file", prefix + n, (prefix + n,))
                for n in names]
    by_lower = {n.lower(): n for n in names}
    claimed: dict[str, str] = {}  # member name → header name
    headers = []
    for n in names:
        ext = suffix_of(n)
        if ext in (".vhdr", ".ahdr"):
            headers.append((n, _brainvision_members(folder / n, by_lower)))
        elif ext == ".set":
            headers.append((n, _same_stem(n, (".fdt",), by_lower)))
        elif ext == ".lay":
            headers.append((n, _persyst_members(folder / n, by_lower)))
        elif ext == ".fif" and not NOT_RAW_FIF.search(n):
            headers.append((n, _fif_parts(n, by_lower)))
    for header, members in headers:
        for m in members:
            claimed.setdefault(m, header)
    for n in names:  # Nihon Kohden: an .EEG no BrainVision header claims, beside its .PNT/.21E
        if suffix_of(n) == ".eeg" and n not in claimed:
            sidecars = _same_stem(n, _NIHON_SIDECARS, by_lower)
            if any(suffix_of(s) in (".pnt", ".21e") for s in sidecars):
                headers.append((n, sidecars))
                for m in sidecars:
                    claimed.setdefault(m, n)
    members_of = {h: m for h, m in headers if h not in claimed}
    units = []
    for n in names:
        if n in claimed:
            continue
        ext = suffix_of(n)
        if n in members_of:
            units.append(Unit("recording", prefix + n, tuple(prefix + m for m in [n, *members_of[n]])))
        elif ext in RECORDING_SUFFIXES and not (ext in (".fif", ".fif.gz") and NOT_RAW_FIF.search(n)):
            units.append(Unit("recording", prefix + n, (prefix + n,)))
        else:
            units.append(Unit("file", prefix + n, (prefix + n,)))
    return units


def _same_stem(name: str, suffixes, by_lower: dict[str, str]) -> list[str]:
    stem = os.path.splitext(name)[0].lower()
    return [by_lower[stem + s] for s in suffixes if stem + s in by_lower]


def _header_entries(path: Path, keys: tuple[str, ...]) -> list[str]:
    """Values of ``key=value`` lines of a small text header (BrainVision, Persyst)."""
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20).decode("latin-1")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in keys and value.strip():
            found.append(value.strip())
    return found


def _named_files(entries: list[str], by_lower: dict[str, str]) -> list[str]:
    """Files named by a header that lie in the header's folder."""
    out = []
    for e in entries:
        name = PurePosixPath(e.replace("\\", "/")).name.lower()
        if name in by_lower and by_lower[name] not in out:
            out.append(by_lower[name])
    return out


def _brainvision_members(path: Path, by_lower: dict[str, str]) -> list[str]:
    named = _named_files(_header_entries(path, ("datafile", "markerfile")), by_lower)
    return named or _same_stem(path.name, (".eeg", ".vmrk"), by_lower)


def _persyst_members(path: Path, by_lower: dict[str, str]) -> list[str]:
    named = _named_files(_header_entries(path, ("file",)), by_lower)
    return named or _same_stem(path.name, (".dat",), by_lower)


def _fif_parts(name: str, by_lower: dict[str, str]) -> list[str]:
    """Later parts of a split FIF recording: ``x-1.fif``, ``x-2.fif`` … of ``x.fif``, or BIDS
    ``_split-02_`` … of ``_split-01_``."""
    m = _BIDS_SPLIT.search(name)
    if m is not None:
        width = len(m["n"])
        names = (_BIDS_SPLIT.sub(f"_split-{k:0{width}d}_", name, count=1) for k in range(2, 1000))
        if int(m["n"]) != 1:
            return []
    else:
        names = (f"{name[:-len('.fif')]}-{k}.fif" for k in range(1, 1000))
    parts = []
    for other in names:
        if other.lower() not in by_lower:
            break
        parts.append(by_lower[other.lower()])
    return parts
