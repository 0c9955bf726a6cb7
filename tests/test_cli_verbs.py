"""Verbs as flac and zstd users expect: several inputs and folders, -o DIR, -q, --workers,
--version; ``decompress`` gives the original recording back (``restore`` is the same),
``export`` converts through MNE (``decompress`` still converts, with a note)."""

from __future__ import annotations

import shutil

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.cli import app
from biocompress.io.source import open_raw
from conftest import SAMPLES_DIR, assert_bitwise_equal, copy_sample, folder_names, leftovers

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def words(text: str) -> str:
    return " ".join(text.split())


def test_version():
    for args in (["--version"], ["compress", "--version"]):
        res = invoke(*args)
        assert res.exit_code == 0 and res.output.strip() == f"biocompress {biocompress.__version__}"


def test_compress_several_inputs_beside_each_and_decompress_them_back(tmp_path):
    a = copy_sample("chtypes_edf.edf", tmp_path)
    b = copy_sample("test_bdf_stim_channel.bdf", tmp_path)
    res = invoke("compress", a, b, "--workers", "2")
    assert res.exit_code == 0, res.output
    assert "compressed 2 of 2 file(s)" in words(res.output)
    for src in (a, b):
        assert_bitwise_equal(biocompress.read_raw(src.with_suffix(".bc.h5")).get_data(), open_raw(src).get_data())
    out = tmp_path / "back"
    res = invoke("decompress", a.with_suffix(".bc.h5"), b.with_suffix(".bc.h5"), "-o", out, "-q")
    assert res.exit_code == 0 and res.output == ""
    assert (out / a.name).read_bytes() == a.read_bytes() and (out / b.name).read_bytes() == b.read_bytes()
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_compress_recursive_mirrors_into_output_folder(tmp_path):
    src = tmp_path / "data"
    (src / "x" / "y").mkdir(parents=True)
    shutil.copyfile(SAMPLES_DIR / "chtypes_edf.edf", src / "x" / "y" / "r1.edf")
    for ext in (".vhdr", ".eeg", ".vmrk"):
        shutil.copyfile(SAMPLES_DIR / f"test_NO{ext}", src / f"test_NO{ext}")
    (src / "notes.txt").write_text("not a recording")
    res = invoke("compress", src)
    assert res.exit_code == 2 and "-r" in res.output
    out = tmp_path / "out"
    res = invoke("compress", "-r", src, "-o", out, "-q")
    assert res.exit_code == 0, res.output
    assert res.output == ""
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["test_NO.bc.h5",
                                                                                       "x/y/r1.bc.h5"]
    res = invoke("compress", "-r", src, "-o", out)  # outputs exist: each fails, by name
    assert res.exit_code == 2 and "exists" in res.output and "r1.bc.h5" in "".join(res.output.split())
    res = invoke("compress", "-r", src, "-o", out, "--force", "--workers", "1")
    assert res.exit_code == 0, res.output
    res = invoke("decompress", "-r", out, "-o", tmp_path / "back")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "back" / "x" / "y" / "r1.edf").read_bytes() == (src / "x" / "y" / "r1.edf").read_bytes()


def test_two_inputs_for_one_output_are_refused_before_work(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = copy_sample("chtypes_edf.edf", tmp_path / "a")
    two = copy_sample("chtypes_edf.edf", tmp_path / "b")
    res = invoke("compress", one, two, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "would both be written" in words(res.output)
    assert folder_names(tmp_path / "out") == []


def test_several_inputs_one_unreadable_named_others_done(tmp_path):
    good = copy_sample("chtypes_edf.edf", tmp_path)
    bad = tmp_path / "bad.edf"
    bad.write_text("not an EDF")
    res = invoke("compress", good, bad)
    assert res.exit_code == 2
    assert "bad.edf" in "".join(res.output.split()) and "1 failed" in res.output
    assert good.with_suffix(".bc.h5").is_file() and not bad.with_suffix(".bc.h5").exists()
    assert leftovers(tmp_path) == []


def test_decompress_gives_the_archived_file_back_by_default(tmp_path):
    src = copy_sample("MB0400FU.EDF", tmp_path)
    assert invoke("compress", src, "-o", tmp_path / "a.bc.h5").exit_code == 0
    src.rename(tmp_path / "original.EDF")
    res = invoke("decompress", tmp_path / "a.bc.h5")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a.EDF").read_bytes() == (tmp_path / "original.EDF").read_bytes()
    assert "byte for byte" in words(res.output)
    res = invoke("restore", tmp_path / "a.bc.h5")  # the same command
    assert res.exit_code == 2 and "exists" in res.output


def test_decompress_to_another_format_still_converts_with_a_note_restore_refuses(tmp_path):
    src = copy_sample("Subject00_2.edf", tmp_path)
    arc = tmp_path / "s.bc.h5"
    assert invoke("compress", src, "-o", arc).exit_code == 0
    res = invoke("decompress", arc, "-o", tmp_path / "x.fif")
    assert res.exit_code == 0, res.output
    assert "biocompress export" in words(res.output)
    assert_bitwise_equal(mne.io.read_raw_fif(tmp_path / "x.fif").get_data(), open_raw(src).get_data())
    res = invoke("restore", arc, "-o", tmp_path / "y.fif")
    assert res.exit_code == 2 and ".edf" in res.output
    res = invoke("export", arc, "-o", tmp_path / "y.bdf")
    assert res.exit_code == 0, res.output
    y = mne.io.read_raw(tmp_path / "y.bdf").get_data()
    x = open_raw(src).get_data()
    assert y.shape == x.shape and np.abs(x - y).max() <= 2 * (x.max() - x.min()) / 2**24


@pytest.mark.parametrize("args", [["--workers", "0"], ["--mode", "lossy"]])
def test_bad_options_exit_2(tmp_path, args):
    src = copy_sample("chtypes_edf.edf", tmp_path)
    res = invoke("compress", src, *args)
    assert res.exit_code == 2
    assert folder_names(tmp_path) == ["chtypes_edf.edf"]
