"""Output checks, writer-named temporaries and their removal, errno messages, exit codes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress import cli
from biocompress.system import os_errors, outputs
from biocompress.errors import BadInputError, WriteError
from biocompress.system.guarded_file import GuardedFile, hdf5_for_writing
from biocompress.system.processes import process_start_time
from conftest import SAMPLES_DIR, copy_sample


# --- check_output ------------------------------------------------------------------------------
def test_check_output_accepts_new_archive_and_force_over_archive(tmp_path):
    src = copy_sample("test_bdf_stim_channel.bdf", tmp_path)
    dst = tmp_path / "a.bc.h5"
    assert outputs.check_output(dst, [src]) == dst
    biocompress.compress(src, dst)
    with pytest.raises(BadInputError, match="exists"):
        outputs.check_output(dst, [src])
    assert outputs.check_output(dst, [src], force=True) == dst
    for name in ("b.h5", "c.hdf5", "d.archive"):
        assert outputs.check_output(tmp_path / name, [src]) == tmp_path / name


@pytest.mark.parametrize("name", ["x.edf", "x.BDF", "x.fif", "x.fif.gz", "x.vhdr", "x.eeg", "x.set", "x.cnt"])
def test_check_output_refuses_recording_extensions_for_archives(tmp_path, name):
    with pytest.raises(BadInputError, match="recording format"):
        outputs.check_output(tmp_path / name)
    assert outputs.check_output(tmp_path / name, kind="recording") == tmp_path / name


def test_check_output_refuses_every_file_of_a_brainvision_input(tmp_path):
    header = copy_sample("test_NO.vhdr", tmp_path)
    raw_files = [header, header.with_suffix(".eeg"), header.with_suffix(".vmrk")]
    for f in raw_files:
        os.link(f, tmp_path / (f.name + ".bc.h5"))
        with pytest.raises(BadInputError, match="is the input"):
            outputs.check_output(tmp_path / (f.name + ".bc.h5"), raw_files, force=True)


def test_check_output_export_companions(tmp_path):
    (tmp_path / "x.eeg").write_bytes(b"data")
    with pytest.raises(BadInputError, match="x.eeg: exists"):
        outputs.check_output(tmp_path / "x.vhdr", kind="recording")
    assert outputs.check_output(tmp_path / "x.vhdr", kind="recording", force=True) == tmp_path / "x.vhdr"
    archive = tmp_path / "x.vmrk"
    archive.write_bytes(b"the archive being read")
    with pytest.raises(BadInputError, match="is the input"):
        outputs.check_output(tmp_path / "x.vhdr", [archive], kind="recording", force=True)


def test_is_archive(tmp_path, sample_archive):
    assert outputs.is_archive(sample_archive(SAMPLES_DIR / "test_bdf_stim_channel.bdf"))
    assert not outputs.is_archive(SAMPLES_DIR / "chtypes_edf.edf")
    assert not outputs.is_archive(tmp_path / "missing.h5")
    assert not outputs.is_archive(tmp_path)


# --- temporaries -------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no such process (until the PID is reused)


def test_temporary_names_the_writer_and_is_recognised(tmp_path):
    tmp = outputs.temporary(tmp_path / "rec.bc.h5")
    assert tmp.is_file() and tmp.parent == tmp_path
    assert tmp.name.startswith(f".rec.bc.h5.{os.getpid()}@") and tmp.name.endswith(".bctmp")
    assert outputs.is_temporary(tmp.name)
    folder = outputs.temporary(tmp_path / "x.vhdr", folder=True)
    assert folder.is_dir() and outputs.is_temporary(folder.name)
    assert outputs.remove_stale_temporaries(tmp_path) == []  # ours: kept
    assert tmp.exists() and folder.exists()


def test_stale_temporaries_removed_and_nothing_else(tmp_path):
    host = outputs._HOST
    dead = _dead_pid()
    stale_file = tmp_path / f".a.bc.h5.{dead}@{host}.abc123_x.bctmp"
    stale_dir = tmp_path / f".b.vhdr.{dead}@{host}.q1w2e3r4.bctmp"
    stale_file.write_bytes(b"partial archive")
    stale_dir.mkdir()
    (stale_dir / "b.vhdr").write_text("partial export")
    # PID 1 is alive and started before this file was written: its writer may still be at work
    live = tmp_path / f".c.bc.h5.1@{host}.zzzzzzzz.bctmp"
    live.write_bytes(b"")
    # the same PID, but the file was last written before that process started: the PID was reused
    reused = tmp_path / f".d.bc.h5.1@{host}.yyyyyyyy.bctmp"
    reused.write_bytes(b"")
    started = process_start_time(1)
    if started is None or started == float("-inf"):
        pytest.skip("PID 1's start time cannot be read here")
    os.utime(reused, (started - 3600, started - 3600))
    other_host = tmp_path / f".e.bc.h5.{dead}@some-other-host.xxxxxxxx.bctmp"
    other_host.write_bytes(b"")
    unrelated = [tmp_path / n for n in (".f.bc.h5.tmp", f".g.{dead}.bctmp", "h.bctmp", f"i.bc.h5.{dead}@{host}.ab.bctmp")]
    for p in unrelated:
        p.write_bytes(b"keep")
    link = tmp_path / f".j.bc.h5.{dead}@{host}.abcdefgh.bctmp"
    link.symlink_to(tmp_path / "h.bctmp")

    removed = outputs.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir, reused])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {live.name, other_host.name, link.name} | {p.name for p in unrelated}
    assert all(p.read_bytes() == b"keep" for p in unrelated)


def test_next_compress_sweeps_its_folder(tmp_path):
    stale = tmp_path / f".old.bc.h5.{_dead_pid()}@{outputs._HOST}.abcdefgh.bctmp"
    stale.write_bytes(b"left by a killed run")
    biocompress.compress(SAMPLES_DIR / "test_bdf_stim_channel.bdf", tmp_path / "new.bc.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.bc.h5"]


# --- errno messages ---------------------------------------------------------------------------------
H5_ENOSPC = ("Can't synchronously write data (file write failed: time = Mon Jan  1 00:00:00 2024\n, filename = "
             "'/data/.x.bc.h5.1@h.abc.bctmp', file descriptor = 3, errno = 28, error message = 'No space left "
             "on device', buf = 0x1, total write size = 8, bytes this sub-write = 8, offset = 0)")


@pytest.mark.parametrize("exc, says, path", [
    (OSError(errno.ENOSPC, "No space left on device", "/d/x"), "no space left", "/d/x"),
    (OSError(H5_ENOSPC), "no space left", "/data/.x.bc.h5.1@h.abc.bctmp"),  # h5py: errno only in the text
    (RuntimeError("Can't decrement id ref count (unable to extend file properly, errno = 27, error message = "
                  "'File too large')"), "file size limit", None),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "quota", None),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "permission denied", "/root/x"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/x"), "read-only", "/mnt/x"),
    (OSError(errno.ELOOP, "Too many levels of symbolic links", "/l"), "symbolic link loop", "/l"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "/n"), "too long", "/n"),
    (OSError(errno.ENOTDIR, "Not a directory", "/f/x"), "not a folder", "/f/x"),
])
def test_os_error_descriptions(exc, says, path):
    assert says in os_errors.problem(exc)
    assert os_errors.path_of(exc) == path
    described = os_errors.describe(exc)
    assert described.startswith(f"{path}: ") if path else described == os_errors.problem(exc)


def test_non_os_errors_are_not_described():
    assert os_errors.describe(ValueError("errno = 28")) is None
    assert os_errors.describe(OSError("Unable to open file (file signature not found)")) is None
    assert os_errors.describe(RuntimeError("errno = 0")) is None


def test_writing_names_the_output_and_passes_other_errors(tmp_path):
    dst = tmp_path / "x.bc.h5"
    with pytest.raises(WriteError, match="no space left") as info:
        with outputs.writing(dst):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".x.bc.h5.1@h.a.bctmp"))
    assert info.value.path == str(dst)
    with pytest.raises(FileNotFoundError):  # an input's file: not a write error
        with outputs.writing(dst):
            raise FileNotFoundError(errno.ENOENT, "No such file", "/elsewhere/input.edf")
    with pytest.raises(ValueError):
        with outputs.writing(dst):
            raise ValueError("not an OS error")


# --- guarded HDF5 writes -------------------------------------------------------------------------
class _FailingFile:
    """Stands for a disk that fills after ``room`` bytes."""

    def __init__(self, real, room):
        self._real, self.room = real, room

    def write(self, data):
        n = len(memoryview(data).cast("B"))
        if self._real.tell() + n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._real.write(data)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_guarded_file_hides_a_failed_write_from_hdf5_and_reports_it(tmp_path):
    import h5py

    path = tmp_path / "x.h5"
    guarded = GuardedFile(path, "w")
    guarded._file = _FailingFile(guarded._file, 4096)
    h5 = h5py.File(guarded, "w")
    h5.create_dataset("x", data=np.arange(100_000))
    h5.close()  # HDF5 saw every write succeed: it closes cleanly
    with pytest.raises(OSError) as info:
        guarded.close()
    assert info.value.errno == errno.ENOSPC


def test_hdf5_for_writing_round_trip(tmp_path):
    import h5py

    path = tmp_path / "x.h5"
    h5py.File(path, "w").close()
    with hdf5_for_writing(path, "r+") as h5:
        h5["x"] = np.arange(10)
    with h5py.File(path, "r") as h5:
        assert h5["x"][()].tolist() == list(range(10))


# --- exit codes --------------------------------------------------------------------------------
def _broken_info(monkeypatch):
    def boom(path):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "archive_summary", boom)


def test_internal_error_exit_3_one_line(tmp_path, monkeypatch):
    _broken_info(monkeypatch)
    res = CliRunner().invoke(cli.app, ["info", str(tmp_path / "x.bc.h5")])
    assert res.exit_code == 3
    assert "internal error: ZeroDivisionError: a bug" in res.output and "--debug" in res.output
    assert "Traceback" not in res.output


def test_debug_prints_the_traceback(tmp_path, monkeypatch):
    _broken_info(monkeypatch)
    res = CliRunner().invoke(cli.app, ["--debug", "info", str(tmp_path / "x.bc.h5")])
    assert res.exit_code == 3
    assert "Traceback" in res.output and "ZeroDivisionError" in res.output


def test_keyboard_interrupt_exit_130(tmp_path, monkeypatch):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "archive_summary", interrupted)
    res = CliRunner().invoke(cli.app, ["info", str(tmp_path / "x.bc.h5")])
    assert res.exit_code == 130 and "interrupted" in res.output


def _caused_by(cause: BaseException, exc: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:  # noqa: BLE001
        return raised


def test_interrupt_inside_compiled_code_exit_130(tmp_path, monkeypatch):
    """A signal handled while a numba function returns surfaces as a SystemError whose cause
    is the KeyboardInterrupt (sometimes through a second SystemError): still an interrupt."""
    dispatcher = "CPUDispatcher(<function _unpack_symbols>) returned a result with an exception set"
    inner = _caused_by(KeyboardInterrupt(), SystemError(dispatcher))

    def interrupted(path):
        raise SystemError(dispatcher) from inner

    monkeypatch.setattr(cli, "archive_summary", interrupted)
    res = CliRunner().invoke(cli.app, ["info", str(tmp_path / "x.bc.h5")])
    assert res.exit_code == 130 and "interrupted" in res.output and "internal error" not in res.output
    assert cli.exit_status(_caused_by(ValueError("v"), SystemError(dispatcher)))[0] == 3


@pytest.mark.parametrize("exc, code", [
    (biocompress.VerificationError("v"), 1), (biocompress.CorruptArchiveError("c"), 1),
    (BadInputError("p", "bad"), 2), (WriteError("p", "full"), 2),
    (OSError(errno.ENOSPC, "No space left on device"), 2), (MemoryError(), 2),
    (FileExistsError("x: exists"), 2), (KeyError("k"), 3),
])
def test_exit_status(exc, code):
    assert cli.exit_status(exc)[0] == code


def test_sigterm_handler_turns_into_keyboard_interrupt():
    """The handler main() installs: raises KeyboardInterrupt once, then ignores repeats."""
    import signal

    from biocompress.system import signals

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(KeyboardInterrupt):
            cli._interrupt(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        with pytest.raises(KeyboardInterrupt):  # remembered: no writer publishes after it
            signals.check_interrupted()
    finally:
        signals.clear_interrupt()
        for s, h in saved.items():
            signal.signal(s, h)


def test_cli_ignores_sigxfsz_and_reports_efbig(tmp_path):
    """Under `ulimit -f` a write fails with EFBIG: exit 2, not killed by SIGXFSZ, nothing left."""
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000)); "
            f"sys.argv = ['biocompress', 'compress', {str(SAMPLES_DIR / 'Subject00_2.edf')!r}, '-o', "
            f"{str(tmp_path / 'x.bc.h5')!r}]; runpy.run_module('biocompress.cli', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "file size limit" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
