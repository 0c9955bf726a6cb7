"""The bad-input catalogue: one row per input or output a user may get wrong.

Every row runs the real CLI (in-process, or in a subprocess where a resource limit is
involved) and checks: the exit code (2 for bad input, usage or environment; 1 for a
damaged archive), a message naming the file and the problem, no traceback, nothing
partial left and nothing changed in the folder (every file hashed before and after).
Rows that are not errors (one sample, 10,000 channels, unusual names, NaN kept
losslessly) must round-trip exactly.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.system import outputs
from biocompress.cli import app
from biocompress.container import writer as writer_mod
from biocompress.io.source import open_raw
from conftest import REPO, SAMPLES_DIR, assert_bitwise_equal, copy_sample

EDF = SAMPLES_DIR / "chtypes_edf.edf"


@dataclass
class Case:
    args: list
    names: object = None  # the path the message must name (None: the row succeeds)
    says: str = ""  # words the message must hold (the problem)
    code: int = 2
    source: Path | None = None  # rows that succeed: the recording the archive must equal
    archive: Path | None = None
    fsize_limit: int | None = None  # run in a subprocess under this RLIMIT_FSIZE (bytes)


@pytest.fixture(scope="module")
def archive_of_edf(tmp_path_factory) -> Path:
    return biocompress.compress(EDF, tmp_path_factory.mktemp("archive") / "rec.bc.h5")


def _copy(src: Path, work: Path, name: str | None = None) -> Path:
    out = work / (name or src.name)
    shutil.copyfile(src, out)
    return out


def _fif(work: Path, name: str, x: np.ndarray, names=None) -> Path:
    info = mne.create_info(names or [f"C{i}" for i in range(x.shape[0])], 250.0, "eeg")
    path = work / name
    mne.io.RawArray(x, info, verbose="ERROR").save(path, fmt="double", verbose="ERROR")
    return path


def _edf_bytes() -> bytearray:
    return bytearray(EDF.read_bytes())


def _header_size(data: bytes) -> int:
    return int(data[184:192])


# --- inputs ----------------------------------------------------------------------------------
def missing(work, arc, mp):
    return Case(["compress", work / "missing.edf"], work / "missing.edf", "no such file")


def directory(work, arc, mp):
    (work / "session").mkdir()
    return Case(["compress", work / "session"], work / "session", "folder")


def empty(work, arc, mp):
    (work / "empty.edf").write_bytes(b"")
    return Case(["compress", work / "empty.edf"], work / "empty.edf", "empty")


def text_as_txt(work, arc, mp):
    (work / "notes.txt").write_text("subject 12, eyes closed\n" * 40)
    return Case(["compress", work / "notes.txt"], work / "notes.txt", "text file")


def text_as_fif(work, arc, mp):
    (work / "notes.fif").write_text("subject 12, eyes closed\n" * 40)
    return Case(["compress", work / "notes.fif"], work / "notes.fif", "text file")


def edf_zero_records(work, arc, mp):
    data = _edf_bytes()
    path = work / "zero_records.edf"
    path.write_bytes(bytes(data[: _header_size(data)]))
    return Case(["compress", path], path, "no data record")


def edf_cut_in_header(work, arc, mp):
    data = _edf_bytes()
    path = work / "cut_header.edf"
    path.write_bytes(bytes(data[: _header_size(data) // 2]))
    return Case(["compress", path], path, "header is cut")


def edf_cut_in_fixed_header(work, arc, mp):
    path = work / "cut_fixed.edf"
    path.write_bytes(bytes(_edf_bytes()[:100]))
    return Case(["compress", path], path, "header is cut")


def sidecar_given(work, arc, mp):
    copy_sample("test_NO.vhdr", work)
    return Case(["compress", work / "test_NO.eeg"], work / "test_NO.eeg", ".vhdr")


def archive_given_as_recording(work, arc, mp):
    path = _copy(arc, work)
    return Case(["compress", path, "-o", work / "again.bc.h5"], path, "biocompress archive")


def symlink_loop(work, arc, mp):
    os.symlink(work / "b.edf", work / "a.edf")
    os.symlink(work / "a.edf", work / "b.edf")
    return Case(["compress", work / "a.edf", "-o", work / "a.bc.h5"], work / "a.edf", "symbolic link loop")


def broken_symlink(work, arc, mp):
    os.symlink(work / "gone.edf", work / "link.edf")
    return Case(["compress", work / "link.edf", "-o", work / "a.bc.h5"], work / "link.edf", "broken symbolic link")


def nan_inf_lossy(work, arc, mp):
    x = np.random.default_rng(0).standard_normal((4, 3000)) * 1e-5
    x[1, 1500], x[2, 10] = np.nan, np.inf
    path = _fif(work, "nan_raw.fif", x)
    return Case(["compress", path, "-o", work / "nan.bc.h5", "--mode", "lossy", "--quality", "3"], path,
                "finite samples")


def nan_inf_near_lossless(work, arc, mp):
    x = np.random.default_rng(0).standard_normal((4, 3000)) * 1e-5
    x[0, 0] = np.nan
    path = _fif(work, "nan_raw.fif", x)
    return Case(["compress", path, "-o", work / "nan.bc.h5", "--mode", "near-lossless", "--max-error", "1"], path,
                "lossless")


def nan_inf_lossless(work, arc, mp):
    x = np.random.default_rng(0).standard_normal((4, 3000)) * 1e-5
    x[1, 1500], x[2, 10], x[3, 7] = np.nan, np.inf, -np.inf
    path = _fif(work, "nan_raw.fif", x)
    return Case(["compress", path, "-o", work / "nan.bc.h5"], code=0, source=path, archive=work / "nan.bc.h5")


def one_sample(work, arc, mp):
    path = _fif(work, "one_raw.fif", np.array([[1e-6], [-2e-6], [3.5e-6]]))
    return Case(["compress", path, "-o", work / "one.bc.h5"], code=0, source=path, archive=work / "one.bc.h5")


def ten_thousand_channels(work, arc, mp):
    x = np.random.default_rng(1).standard_normal((10_000, 40)) * 1e-5
    path = _fif(work, "wide_raw.fif", x)
    return Case(["compress", path, "-o", work / "wide.bc.h5"], code=0, source=path, archive=work / "wide.bc.h5")


def non_ascii_names(work, arc, mp):
    header = copy_sample("test_NO.vhdr", work)
    text = header.read_text(encoding="utf-8-sig")
    for old, new in (("Ch1=1,,", "Ch1=Fž,,"), ("Ch2=2,,", "Ch2=Ωmega,,"), ("Ch3=3,,", "Ch3=日本,,")):
        text = text.replace(old, new)
    header.write_text(text, encoding="utf-8")
    return Case(["compress", header, "-o", work / "names.bc.h5"], code=0, source=header,
                archive=work / "names.bc.h5")


def duplicate_names(work, arc, mp):
    data = _edf_bytes()
    for i in range(3):
        data[256 + 16 * i : 256 + 16 * (i + 1)] = b"Fz".ljust(16)
    path = work / "dups.edf"
    path.write_bytes(bytes(data))
    return Case(["compress", path, "-o", work / "dups.bc.h5"], code=0, source=path, archive=work / "dups.bc.h5")


# --- outputs ---------------------------------------------------------------------------------
def output_is_input(work, arc, mp):
    src = _copy(EDF, work)
    return Case(["compress", src, "-o", src, "--force"], src, "is the input")


def output_hard_link_to_input(work, arc, mp):
    src = _copy(EDF, work)
    os.link(src, work / "link.bc.h5")
    return Case(["compress", src, "-o", work / "link.bc.h5", "--force"], work / "link.bc.h5", "is the input")


def output_symlink_to_input(work, arc, mp):
    src = _copy(EDF, work)
    os.symlink(src, work / "link.bc.h5")
    return Case(["compress", src, "-o", work / "link.bc.h5", "--force"], work / "link.bc.h5", "is the input")


def output_is_data_file_of_input(work, arc, mp):
    header = copy_sample("test_NO.vhdr", work)
    return Case(["compress", header, "-o", work / "test_NO.eeg", "--force"], work / "test_NO.eeg", "is the input")


def output_existing_dir_force(work, arc, mp):
    src = _copy(EDF, work)
    (work / "out.bc.h5").mkdir()
    (work / "out.bc.h5" / "keep.txt").write_text("keep")
    return Case(["compress", src, "-o", work / "out.bc.h5", "--force"], work / "out.bc.h5", "folder")


def output_device(work, arc, mp):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    return Case(["compress", _copy(EDF, work), "-o", "/dev/null", "--force"], "/dev/null", "device")


def output_dev_stdout_link(work, arc, mp):
    if not Path("/dev/stdout").is_symlink():
        pytest.skip("/dev/stdout is not a symbolic link here")
    return Case(["compress", _copy(EDF, work), "-o", "/dev/stdout", "--force"], "/dev/stdout", "symbolic link")


def output_fifo(work, arc, mp):
    os.mkfifo(work / "pipe.bc.h5")
    return Case(["compress", _copy(EDF, work), "-o", work / "pipe.bc.h5", "--force"], work / "pipe.bc.h5", "FIFO")


def output_recording_extension(work, arc, mp):
    return Case(["compress", _copy(EDF, work), "-o", work / "copy.edf"], work / "copy.edf", "recording format")


def output_exists(work, arc, mp):
    (work / "rec.bc.h5").write_bytes(b"old")
    return Case(["compress", _copy(EDF, work), "-o", work / "rec.bc.h5"], work / "rec.bc.h5", "--force")


def force_over_non_archive(work, arc, mp):
    with h5py.File(work / "results.h5", "w") as f:
        f["x"] = np.arange(5)
    return Case(["compress", _copy(EDF, work), "-o", work / "results.h5", "--force"], work / "results.h5",
                "not a biocompress archive")


def output_folder_missing(work, arc, mp):
    return Case(["compress", _copy(EDF, work), "-o", work / "no" / "x.bc.h5"], work / "no", "does not exist")


def output_name_too_long(work, arc, mp):
    out = work / ("x" * 300 + ".bc.h5")
    return Case(["compress", _copy(EDF, work), "-o", out], out, "too long")


def _deny_writes(mp, folder: Path, read_only: bool) -> None:
    """Make the OS answer, for ``folder``, as it does for a user without write permission
    (or on a read-only file system) even when the tests run as root."""
    real_access, real_statvfs = os.access, os.statvfs

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    class _ReadOnly:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, name):
            return os.ST_RDONLY if name == "f_flag" else getattr(self._st, name)

    def statvfs(path):
        st = real_statvfs(path)
        return _ReadOnly(st) if read_only and Path(path) == folder else st

    mp.setattr(outputs.os, "access", access)
    mp.setattr(outputs.os, "statvfs", statvfs)


def unwritable_folder(work, arc, mp):
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root: permissions do not apply to it
        _deny_writes(mp, locked, read_only=False)
    return Case(["compress", _copy(EDF, work), "-o", locked / "x.bc.h5"], locked, "permission denied")


def read_only_folder(work, arc, mp):
    folder = work / "ro"
    folder.mkdir()
    _deny_writes(mp, folder, read_only=True)
    return Case(["compress", _copy(EDF, work), "-o", folder / "x.bc.h5"], folder, "read-only file system")


def _fail_temporary(mp, code: int) -> None:
    def mkstemp(prefix="", suffix="", dir=None):
        raise OSError(code, os.strerror(code), os.path.join(dir, prefix + "xxxx" + suffix))

    mp.setattr(outputs.tempfile, "mkstemp", mkstemp)


def permission_denied_when_writing(work, arc, mp):
    _fail_temporary(mp, errno.EACCES)
    return Case(["compress", _copy(EDF, work), "-o", work / "x.bc.h5"], work / "x.bc.h5", "permission denied")


def read_only_when_writing(work, arc, mp):
    _fail_temporary(mp, errno.EROFS)
    return Case(["restore", _copy(arc, work), "-o", work / "back.edf"], work / "back.edf", "read-only")


def disk_full(work, arc, mp):
    """h5py's own report of ENOSPC, raised where the archive is completed."""
    def finish(self, data_attrs):
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = Mon Jan 1 00:00:00 "
                      f"2024\n, filename = '{self.tmp}', file descriptor = 3, errno = 28, error message = 'No space "
                      "left on device', buf = 0x1, total write size = 4096, bytes this sub-write = 4096, offset = 0)")

    mp.setattr(writer_mod.ArchiveWriter, "finish", finish)
    return Case(["compress", _copy(EDF, work), "-o", work / "x.bc.h5"], work / "x.bc.h5", "no space left")


def file_size_limit_compress(work, arc, mp):
    return Case(["compress", _copy(EDF, work), "-o", work / "x.bc.h5"], work / "x.bc.h5", "file size limit",
                fsize_limit=20_000)


def file_size_limit_restore(work, arc, mp):
    return Case(["restore", _copy(arc, work), "-o", work / "back.edf"], work / "back.edf", "file size limit",
                fsize_limit=20_000)


# --- archives --------------------------------------------------------------------------------
def _newer(work, arc):
    path = _copy(arc, work, "newer.bc.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    return path


def newer_format_info(work, arc, mp):
    path = _newer(work, arc)
    return Case(["info", path], path, "version 99")


def newer_format_restore(work, arc, mp):
    path = _newer(work, arc)
    return Case(["restore", path, "-o", work / "back.edf"], path, "version 99")


def non_archive_hdf5(work, arc, mp):
    with h5py.File(work / "plain.h5", "w") as f:
        f["x"] = np.arange(5)
    return Case(["verify", work / "plain.h5"], work / "plain.h5", "not a biocompress archive")


def non_archive_hdf5_decompress(work, arc, mp):
    with h5py.File(work / "plain.h5", "w") as f:
        f["x"] = np.arange(5)
    return Case(["decompress", work / "plain.h5", "-o", work / "x.fif"], work / "plain.h5",
                "not a biocompress archive")


def recording_as_archive(work, arc, mp):
    src = _copy(EDF, work)
    return Case(["info", src], src, "")


def missing_archive(work, arc, mp):
    return Case(["verify", work / "missing.bc.h5"], work / "missing.bc.h5", "no such")


def restore_over_archive(work, arc, mp):
    path = _copy(arc, work)
    return Case(["restore", path, "-o", path, "--force"], path, "is the input")


def restore_into_folder(work, arc, mp):
    (work / "back.edf").mkdir()
    return Case(["restore", _copy(arc, work), "-o", work / "back.edf", "--force"], work / "back.edf", "folder")


def export_to_device(work, arc, mp):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    return Case(["decompress", _copy(arc, work), "-o", "/dev/null", "--force"], "/dev/null", "")


def export_companion_exists(work, arc, mp):
    (work / "copy.eeg").write_bytes(b"someone's data")
    return Case(["decompress", _copy(arc, work), "-o", work / "copy.vhdr"], work / "copy.eeg", "exists")


ROWS = {f.__name__.replace("_", "-"): f for f in [
    missing, directory, empty, text_as_txt, text_as_fif, edf_zero_records, edf_cut_in_header,
    edf_cut_in_fixed_header, sidecar_given, archive_given_as_recording, symlink_loop, broken_symlink,
    nan_inf_lossy, nan_inf_near_lossless, nan_inf_lossless, one_sample, ten_thousand_channels, non_ascii_names,
    duplicate_names, output_is_input, output_hard_link_to_input, output_symlink_to_input,
    output_is_data_file_of_input, output_existing_dir_force, output_device, output_dev_stdout_link, output_fifo,
    output_recording_extension, output_exists, force_over_non_archive, output_folder_missing,
    output_name_too_long, unwritable_folder, read_only_folder, permission_denied_when_writing,
    read_only_when_writing, disk_full, file_size_limit_compress, file_size_limit_restore, newer_format_info,
    newer_format_restore, non_archive_hdf5, non_archive_hdf5_decompress, recording_as_archive, missing_archive,
    restore_over_archive, restore_into_folder, export_to_device, export_companion_exists,
]}


# --- running and checking ----------------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: content hash of files, target of links, kind of the rest."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            st = os.lstat(p)
            key = str(p.relative_to(folder))
            if stat.S_ISREG(st.st_mode):
                found[key] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                found[key] = "link to " + os.readlink(p)
            else:
                found[key] = stat.filemode(st.st_mode)[0]
    return found


def _run(case: Case) -> tuple[int, str]:
    args = [str(a) for a in case.args]
    if case.fsize_limit is None:
        res = CliRunner().invoke(app, args)
        return res.exit_code, res.output
    # a subprocess under `ulimit -f`; the CLI itself must ignore SIGXFSZ and report EFBIG
    code = ("import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({case.fsize_limit}, {case.fsize_limit})); "
            f"sys.argv = ['biocompress'] + {args!r}; runpy.run_module('biocompress.cli', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def _flat(text: str) -> str:
    return "".join(str(text).split())


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_row(row, tmp_path, archive_of_edf, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    case = ROWS[row](work, archive_of_edf, monkeypatch)
    before = _snapshot(tmp_path)
    try:
        code, output = _run(case)
    finally:
        monkeypatch.undo()
        for p in work.iterdir():  # give back permissions a row took away, so pytest can clean up
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
    after = _snapshot(tmp_path)
    assert "Traceback" not in output, output
    assert code == case.code, output
    if case.names is None:
        _assert_round_trip(case, before, after)
        return
    assert _flat(case.names) in _flat(output), f"the message does not name {case.names}: {output!r}"
    assert " ".join(case.says.lower().split()) in " ".join(output.lower().split()), output
    assert after == before, "the folder changed: something partial left or an input altered"


def _assert_round_trip(case: Case, before: dict, after: dict) -> None:
    new = sorted(set(after) - set(before))
    assert new == [f"work/{case.archive.name}"], new
    assert {k: after[k] for k in before} == before, "an input changed"
    src = open_raw(case.source)
    back = biocompress.read_raw(case.archive)
    assert back.ch_names == src.ch_names
    assert_bitwise_equal(back.get_data(), src.get_data())
