"""The ``biocompress`` command line: exit codes 0 ok, 1 verification failed, 2 bad input/usage."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import h5py
import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.cli import app
from biocompress.container.layout import segment_path
from biocompress.io.source import open_raw
from conftest import SAMPLES_DIR, assert_bitwise_equal, copy_sample, folder_names, leftovers, sample_recordings

runner = CliRunner()

INFO_KEYS = {"mode", "n_channels", "sfreq", "n_samples", "duration_s", "source_bytes", "archive_bytes",
             "ratio", "codec", "source_sha256"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def words(text: str) -> str:
    """Output with every run of whitespace as one space (rich wraps at the console width)."""
    return " ".join(text.split())


def flat(text: str) -> str:
    """Output without whitespace: rich wraps long paths at the console width."""
    return "".join(text.split())


def compressed(tmp_path, name="chtypes_edf.edf"):
    src = copy_sample(name, tmp_path)
    res = invoke("compress", src, "-o", tmp_path / "rec.bc.h5")
    assert res.exit_code == 0, res.output
    return src, tmp_path / "rec.bc.h5"


# --- compress ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [("chtypes_edf.edf", "chtypes_edf.bc.h5"),
                                            ("test_NO.vhdr", "test_NO.bc.h5"),
                                            ("MB0400FU.EDF", "MB0400FU.bc.h5")])
def test_compress_default_output_beside_input(tmp_path, name, expected):
    src = copy_sample(name, tmp_path)
    before = folder_names(tmp_path)
    res = invoke("compress", src)
    assert res.exit_code == 0, res.output
    out = tmp_path / expected
    assert out.is_file()
    assert folder_names(tmp_path) == sorted(before + [expected])  # nothing else, no temp file
    assert "wrote" in res.output and expected in flat(res.output)
    assert_bitwise_equal(biocompress.read_raw(out).get_data(), open_raw(src).get_data())


def test_compress_default_output_keeps_dotted_stem(tmp_path):
    src = SAMPLES_DIR / "test_bdf_stim_channel.bdf"
    for name in ("run.1.bdf", "run.2.bdf"):
        shutil.copyfile(src, tmp_path / name)
        res = invoke("compress", tmp_path / name)
        assert res.exit_code == 0, res.output
    assert (tmp_path / "run.1.bc.h5").is_file() and (tmp_path / "run.2.bc.h5").is_file()


def test_compress_refuses_to_overwrite_without_force(tmp_path):
    src, out = compressed(tmp_path)
    first = out.read_bytes()
    res = invoke("compress", src, "-o", out)
    assert res.exit_code == 2
    assert str(out) in flat(res.output) and "--force" in res.output
    assert out.read_bytes() == first
    assert leftovers(tmp_path) == []


def test_compress_force_overwrites(tmp_path):
    _, out = compressed(tmp_path)
    other = copy_sample("test_bdf_stim_channel.bdf", tmp_path)
    res = invoke("compress", other, "-o", out, "--force")
    assert res.exit_code == 0, res.output
    with biocompress.open(out) as arc:
        assert arc.source["file_name"] == "test_bdf_stim_channel.bdf"
        assert arc.n_channels == 4
    assert_bitwise_equal(biocompress.read_raw(out).get_data(), open_raw(other).get_data())
    assert leftovers(tmp_path) == []


def test_compress_rejects_unknown_mode_and_missing_output_folder(tmp_path):
    src = copy_sample("test_bdf_stim_channel.bdf", tmp_path)
    res = invoke("compress", src, "--mode", "lossy")
    assert res.exit_code == 2 and "mode" in words(res.output)
    res = invoke("compress", src, "-o", tmp_path / "no" / "such" / "x.bc.h5")
    assert res.exit_code == 2 and "does not exist" in words(res.output)
    assert folder_names(tmp_path) == ["test_bdf_stim_channel.bdf"]


# --- bad input -----------------------------------------------------------------------------
def _truncated_edf(folder):
    p = folder / "truncated.edf"
    p.write_bytes((SAMPLES_DIR / "chtypes_edf.edf").read_bytes()[:300])
    return p


def _text_edf(folder):
    p = folder / "notes.edf"
    p.write_text("this is a text file, not a recording\n" * 20)
    return p


def _zero_signal_edf(folder, keep_data=False):
    data = bytearray((SAMPLES_DIR / "chtypes_edf.edf").read_bytes())
    data[252:256] = b"0   "  # number of signals
    data[184:192] = b"256     "  # header bytes
    p = folder / ("zero_signals_data.edf" if keep_data else "zero_signals.edf")
    p.write_bytes(bytes(data if keep_data else data[:256]))
    return p


def _missing(folder):
    return folder / "missing.edf"


def _empty_edf(folder):
    p = folder / "empty.edf"
    p.write_bytes(b"")
    return p


BAD_INPUTS = {
    "missing": _missing,
    "empty": _empty_edf,
    "truncated": _truncated_edf,
    "text": _text_edf,
    "zero-signals": _zero_signal_edf,
    "zero-signals-with-data": lambda f: _zero_signal_edf(f, keep_data=True),
}


@pytest.mark.parametrize("explicit_output", [False, True], ids=["default-output", "explicit-output"])
@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_compress_bad_input_exit_2(tmp_path, kind, explicit_output):
    src = BAD_INPUTS[kind](tmp_path)
    before = folder_names(tmp_path)
    args = ["compress", src] + (["-o", tmp_path / "out.bc.h5"] if explicit_output else [])
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert str(src) in flat(res.output), f"message does not name the file: {res.output!r}"
    assert "Traceback" not in res.output
    assert folder_names(tmp_path) == before  # no archive, no temporary file
    assert not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob("*.bc.h5"))


def test_sidecar_data_file_is_bad_input(tmp_path):
    copy_sample("test_NO.vhdr", tmp_path)
    res = invoke("compress", tmp_path / "test_NO.eeg")
    assert res.exit_code == 2 and ".vhdr" in res.output
    assert not list(tmp_path.glob("*.bc.h5"))


# --- info ---------------------------------------------------------------------------------
def test_info_json(tmp_path):
    src, out = compressed(tmp_path)
    res = invoke("info", out, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert INFO_KEYS <= set(info)
    size = src.stat().st_size
    assert info["mode"] == "lossless"
    assert (info["n_channels"], info["sfreq"], info["n_samples"]) == (42, 200.0, 1000)
    assert info["duration_s"] == pytest.approx(5.0)
    assert info["source_bytes"] == size
    assert info["archive_bytes"] == out.stat().st_size
    assert info["ratio"] == pytest.approx(size / out.stat().st_size, rel=1e-3)
    assert "lpc-v4" in info["codec"].split(",")
    assert info["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_info_json_console_script(tmp_path):
    """One real subprocess: the installed console script prints the same JSON."""
    _, out = compressed(tmp_path)
    exe = shutil.which("biocompress")
    cmd = [exe] if exe else [sys.executable, "-m", "biocompress.cli"]
    proc = subprocess.run(cmd + ["info", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info == json.loads(invoke("info", out, "--json").stdout)
    assert INFO_KEYS <= set(info)


def test_info_table_and_bad_archives(tmp_path):
    _, out = compressed(tmp_path)
    res = invoke("info", out)
    assert res.exit_code == 0 and "n_channels" in res.output and "lpc-v4" in res.output
    res = invoke("info", tmp_path / "missing.bc.h5")
    assert res.exit_code == 2 and "missing.bc.h5" in flat(res.output)
    res = invoke("info", tmp_path / "chtypes_edf.edf")  # not HDF5
    assert res.exit_code == 2 and "chtypes_edf.edf" in flat(res.output)


# --- verify ---------------------------------------------------------------------------------
def test_verify_ok(tmp_path):
    src, out = compressed(tmp_path)
    res = invoke("verify", out)
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and "CRC-32 ok" in words(res.output)
    res = invoke("verify", out, src)
    assert res.exit_code == 0, res.output
    assert "bit-exact" in words(res.output) and "matches" in words(res.output)


@pytest.mark.parametrize("name", ["mixed_rate.edf", "Subject00_2.edf"])
def test_verify_against_source_window_by_window(tmp_path, name):
    """Comparison with the source reads it in windows (whole, where MNE resamples), several blocks here."""
    src = SAMPLES_DIR / name
    out = tmp_path / "a.bc.h5"
    biocompress.compress(src, out, block_samples=1000)
    res = invoke("verify", out, src)
    assert res.exit_code == 0, res.output
    assert "bit-exact" in words(res.output)


def _flip_payload_byte(archive, position=None):
    with h5py.File(archive, "r+") as f:
        ds = f[segment_path("data", 0)]
        i = ds.shape[0] // 2 if position is None else position
        ds[i] = ds[i] ^ 0xFF


def test_verify_corrupted_payload_exit_1(tmp_path):
    _, out = compressed(tmp_path)
    _flip_payload_byte(out)
    res = invoke("verify", out)
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output and "CRC" in res.output


def test_verify_against_modified_source_exit_1(tmp_path):
    src, out = compressed(tmp_path)
    data = bytearray(src.read_bytes())
    header = int(data[184:192])
    data[header + 101] ^= 0x55  # a sample of the first data record
    changed = tmp_path / "changed.edf"
    changed.write_bytes(bytes(data))
    res = invoke("verify", out, changed)
    assert res.exit_code == 1, res.output
    assert "differ" in words(res.output) and "DIFFERS" in words(res.output)


def test_verify_against_other_recording_exit_1(tmp_path):
    _, out = compressed(tmp_path)
    res = invoke("verify", out, copy_sample("test_bdf_stim_channel.bdf", tmp_path))
    assert res.exit_code == 1 and "differs" in words(res.output)


# --- decompress --------------------------------------------------------------------------------
def test_decompress_fif_bit_exact(tmp_path):
    src, out = compressed(tmp_path)
    fif = tmp_path / "x.fif"
    res = invoke("decompress", out, "-o", fif)
    assert res.exit_code == 0, res.output
    back = mne.io.read_raw(fif, preload=True)
    ref = open_raw(src)
    assert back.ch_names == ref.ch_names
    assert back.info["sfreq"] == ref.info["sfreq"]
    assert_bitwise_equal(back.get_data(), ref.get_data())
    assert leftovers(tmp_path) == []
    # refuses to overwrite without --force, overwrites with it
    res = invoke("decompress", out, "-o", fif)
    assert res.exit_code == 2 and "x.fif" in flat(res.output)
    assert invoke("decompress", out, "-o", fif, "--force").exit_code == 0


def test_decompress_edf_close(tmp_path):
    src, out = compressed(tmp_path, "Subject00_2.edf")
    edf = tmp_path / "x.edf"
    res = invoke("decompress", out, "-o", edf)
    assert res.exit_code == 0, res.output
    back = mne.io.read_raw(edf)
    x = biocompress.read_raw(out).get_data()
    y = back.get_data()
    assert back.ch_names == biocompress.read_raw(out).ch_names
    assert y.shape == x.shape
    step = (x.max() - x.min()) / 65534  # EDF re-quantizes to 16 bits over the physical range
    assert np.abs(x - y).max() <= 2 * step
    assert leftovers(tmp_path) == []


def test_decompress_bdf_readable(tmp_path):
    _, out = compressed(tmp_path, "Subject00_2.edf")
    bdf = tmp_path / "x.bdf"
    res = invoke("decompress", out, "-o", bdf)
    assert res.exit_code == 0, res.output
    y = mne.io.read_raw(bdf).get_data()
    x = biocompress.read_raw(out).get_data()
    assert y.shape == x.shape
    assert np.abs(x - y).max() <= 2 * (x.max() - x.min()) / 2**24


def test_decompress_bad_usage_exit_2(tmp_path):
    _, out = compressed(tmp_path)
    res = invoke("decompress", out, "-o", tmp_path / "x.mat")
    assert res.exit_code == 2 and "unsupported" in words(res.output)
    res = invoke("decompress", tmp_path / "missing.bc.h5", "-o", tmp_path / "x.fif")
    assert res.exit_code == 2 and "missing.bc.h5" in flat(res.output)
    assert not (tmp_path / "x.fif").exists() and leftovers(tmp_path) == []


def test_decompress_missing_output_folder_exit_2(tmp_path):
    _, out = compressed(tmp_path)
    res = invoke("decompress", out, "-o", tmp_path / "nowhere" / "x.fif")
    assert res.exit_code == 2
    assert "nowhere" in flat(res.output)


def test_decompress_corrupt_archive_exit_1(tmp_path):
    _, out = compressed(tmp_path)
    _flip_payload_byte(out, position=3)
    res = invoke("decompress", out, "-o", tmp_path / "x.fif")
    assert res.exit_code == 1, res.output
    assert "CRC" in res.output
    assert not (tmp_path / "x.fif").exists() and leftovers(tmp_path) == []


# --- demo ------------------------------------------------------------------------------------
def test_demo_on_samples():
    res = invoke("demo", SAMPLES_DIR)
    assert res.exit_code == 0, res.output
    assert "bit-exact" in res.output
    lossless, lossy = res.output.split("lossy and near-lossless")
    rows = [line for line in lossless.splitlines() if any(p.name in line for p in sample_recordings())]
    assert len(rows) == len(sample_recordings())
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("│┃|").split("│")]
        assert cells[-1] == "yes", line
    assert " NO" not in res.output
    ladder = [line for line in lossy.splitlines() if "quality" in line or "max 1" in line or "max 5" in line]
    assert len(ladder) == 7, lossy  # qualities 1-5, near-lossless at 1 and 5 µV


def test_demo_missing_folder_exit_2(tmp_path):
    res = invoke("demo", tmp_path / "nothing-here")
    assert res.exit_code == 2
    res = invoke("demo", tmp_path)  # exists, holds no recordings
    assert res.exit_code == 2 and "no recordings" in words(res.output)


@pytest.mark.parametrize("args, expected", [
    (("info",), "Missing argument"),
    (("report", "x.bc.h5", "-o", "x.png"), "Missing option"),
    (("compress", "--mode"), "requires an argument"),
    (("verify", "--no-such-option"), "No such option"),
])
def test_usage_errors_are_usage_errors_not_internal_ones(args, expected):
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert expected in res.output and "internal error" not in res.output
