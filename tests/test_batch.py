"""``biocompress batch`` and the batch package: discovery, names, resume, failures, reverse, lock."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from pathlib import Path

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.batch import run_batch
from biocompress.batch.discover import find_units
from biocompress.batch.manifest import Manifest
from biocompress.batch.plan import compressed_names
from biocompress.cli import app
from biocompress.errors import BadInputError
from biocompress.files.verify import verify_archive
from biocompress.io.source import open_raw
from conftest import SAMPLES_DIR, assert_bitwise_equal

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return "".join(text.split())


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".bctmp"))


def report_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["source"]: r for r in csv.DictReader(f)}


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A small tree: EDF and BDF in sub-folders, a BrainVision recording, a text file and an
    unreadable 'EDF'."""
    src = tmp_path / "src"
    (src / "site-a" / "day1").mkdir(parents=True)
    (src / "site-b").mkdir()
    shutil.copyfile(SAMPLES_DIR / "chtypes_edf.edf", src / "site-a" / "day1" / "rec1.edf")
    shutil.copyfile(SAMPLES_DIR / "test_bdf_stim_channel.bdf", src / "site-a" / "rec2.bdf")
    for ext in (".vhdr", ".eeg", ".vmrk"):
        shutil.copyfile(SAMPLES_DIR / f"test_NO{ext}", src / "site-b" / f"test_NO{ext}")
    (src / "site-b" / "notes.txt").write_text("session notes\n")
    (src / "broken.edf").write_text("this is not an EDF file\n")
    return src


# --- discovery and names ---------------------------------------------------------------
def test_discovery_groups_multi_file_and_folder_recordings(tmp_path):
    root = tmp_path / "d"
    (root / "bv").mkdir(parents=True)
    (root / "bv" / "x.vhdr").write_text("[Common Infos]\nDataFile=other.eeg\nMarkerFile=x.vmrk\n")
    for name in ("bv/other.eeg", "bv/x.vmrk", "a.set", "a.fdt", "orphan.fdt", "n.EEG", "n.PNT", "n.21E", "n.LOG",
                 "r.fif", "r-1.fif", "r-2.fif", "sub-01_split-01_meg.fif", "sub-01_split-02_meg.fif", "foo-epo.fif",
                 "notes.txt", "p.dat", "rec.ds/rec.meg4", "rec.ds/rec.res4", ".x.edf.1@h.abc.bctmp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "p.lay").write_text("[FileInfo]\nFile=p.dat\n")
    os.symlink(root / "bv", root / "linked")
    found = find_units(root)
    units = {u.rel: (u.kind, set(u.members)) for u in found.units}
    assert units["bv/x.vhdr"] == ("recording", {"bv/x.vhdr", "bv/other.eeg", "bv/x.vmrk"})
    assert units["a.set"] == ("recording", {"a.set", "a.fdt"})
    assert units["n.EEG"] == ("recording", {"n.EEG", "n.PNT", "n.21E", "n.LOG"})
    assert units["r.fif"] == ("recording", {"r.fif", "r-1.fif", "r-2.fif"})
    assert units["sub-01_split-01_meg.fif"] == ("recording", {"sub-01_split-01_meg.fif", "sub-01_split-02_meg.fif"})
    assert units["p.lay"] == ("recording", {"p.lay", "p.dat"})
    assert units["rec.ds"] == ("recording", {"rec.ds/rec.meg4", "rec.ds/rec.res4"})
    for plain in ("orphan.fdt", "foo-epo.fif", "notes.txt"):
        assert units[plain] == ("file", {plain})
    claimed = {"bv/other.eeg", "bv/x.vmrk", "a.fdt", "n.PNT", "n.21E", "n.LOG", "r-1.fif", "r-2.fif",
               "sub-01_split-02_meg.fif", "p.dat", "rec.ds/rec.meg4"}
    assert not claimed & set(units), "a member file must not be a unit of its own"
    assert not any(r.endswith(".bctmp") for r in units)
    assert found.skipped == [("linked", "symbolic link to a folder: not followed")]
    only = find_units(root, include=["*.fif"], exclude=["foo*"])
    assert sorted(u.rel for u in only.units) == ["r.fif", "sub-01_split-01_meg.fif"]


def test_output_names_keep_whole_name_where_two_would_collide():
    from biocompress.batch.discover import Unit

    units = [Unit("recording", "a/x.edf", ("a/x.edf",)), Unit("recording", "a/x.bdf", ("a/x.bdf",)),
             Unit("recording", "a/y.edf", ("a/y.edf",)), Unit("file", "a/z.bc.h5", ("a/z.bc.h5",)),
             Unit("recording", "a/z.EDF", ("a/z.EDF",)), Unit("recording", "b/x.edf", ("b/x.edf",))]
    names = compressed_names(units, {})
    assert names == {"a/x.edf": "a/x.edf.bc.h5", "a/x.bdf": "a/x.bdf.bc.h5", "a/y.edf": "a/y.bc.h5",
                     "a/z.bc.h5": "a/z.bc.h5", "a/z.EDF": "a/z.EDF.bc.h5", "b/x.edf": "b/x.bc.h5"}
    assert compressed_names(units, {"a/y.edf": "a/y-old.bc.h5"})["a/y.edf"] == "a/y-old.bc.h5"


# --- a batch, its failures, and resuming it -------------------------------------------------
def test_batch_mirrors_converts_reports_and_resumes(dataset, tmp_path):
    dst, report = tmp_path / "dst", tmp_path / "report.csv"
    res = invoke("batch", dataset, dst, "--workers", "2", "--report", report)
    assert res.exit_code == 2, res.output  # the unreadable file is bad input
    assert "broken.edf" in flat(res.output) and "FAILED" in res.output
    archives = {"site-a/day1/rec1.bc.h5": "site-a/day1/rec1.edf", "site-a/rec2.bc.h5": "site-a/rec2.bdf",
                "site-b/test_NO.bc.h5": "site-b/test_NO.vhdr"}
    made = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file() and ".biocompress" not in p.parts)
    assert made == sorted(list(archives) + ["site-b/notes.txt"])  # data files of BrainVision not copied
    for arc, src in archives.items():
        assert verify_archive(dst / arc, dataset / src)["ok"]
    assert (dst / "site-b" / "notes.txt").read_bytes() == (dataset / "site-b" / "notes.txt").read_bytes()
    assert temporaries(dst) == []
    rows = report_rows(report)
    assert rows["broken.edf"]["status"] == "failed" and "broken.edf" in rows["broken.edf"]["error"]
    assert {r for r, row in rows.items() if row["status"] == "done"} == set(archives.values()) | {"site-b/notes.txt"}
    assert all(float(rows[s]["ratio"]) > 1 for s in archives.values())

    # run again: nothing redone, the failure tried again and reported again
    before = {a: (dst / a).stat().st_mtime_ns for a in archives}
    res = invoke("batch", dataset, dst, "--workers", "2", "--report", report)
    assert res.exit_code == 2 and "broken.edf" in flat(res.output)
    assert {a: (dst / a).stat().st_mtime_ns for a in archives} == before
    assert report_rows(report)["site-a/rec2.bdf"]["this_run"] == "already done"

    # the broken file fixed, one source touched, another changed: only the changed ones are redone
    shutil.copyfile(SAMPLES_DIR / "test_utf8_annotations.edf", dataset / "broken.edf")
    os.utime(dataset / "site-a" / "rec2.bdf")
    shutil.copyfile(SAMPLES_DIR / "mixed_rate.edf", dataset / "site-a" / "day1" / "rec1.edf")
    res = invoke("batch", dataset, dst, "--workers", "2", "--report", report)
    assert res.exit_code == 0, res.output
    rows = report_rows(report)
    assert rows["broken.edf"]["this_run"] == "converted" and rows["site-a/day1/rec1.edf"]["this_run"] == "converted"
    assert rows["site-a/rec2.bdf"]["this_run"] == "unchanged"
    assert (dst / "site-a" / "rec2.bc.h5").stat().st_mtime_ns == before["site-a/rec2.bc.h5"]
    assert_bitwise_equal(biocompress.read_raw(dst / "site-a" / "day1" / "rec1.bc.h5").get_data(),
                         open_raw(SAMPLES_DIR / "mixed_rate.edf").get_data())
    assert verify_archive(dst / "broken.bc.h5")["ok"]
    with sqlite3.connect(dst / ".biocompress" / "batch.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM files WHERE status != 'done'").fetchone()[0] == 0
    assert temporaries(dst) == []


def test_batch_restores_and_exports_a_tree(dataset, tmp_path):
    (dataset / "broken.edf").unlink()
    arcs = tmp_path / "arcs"
    assert run_batch(dataset, arcs, workers=2).failed == []
    back = tmp_path / "back"
    summary = run_batch(arcs, back, restore=True, workers=2)
    assert summary.failed == [] and summary.converted == 3 and summary.copied == 1
    for name in ("site-a/day1/rec1.edf", "site-a/rec2.bdf", "site-b/notes.txt"):
        assert (back / name).read_bytes() == (dataset / name).read_bytes()  # EDF/BDF byte for byte
    np.testing.assert_allclose(mne.io.read_raw(back / "site-b" / "test_NO.vhdr").get_data(),  # through MNE (pybv)
                               open_raw(dataset / "site-b" / "test_NO.vhdr").get_data(), rtol=1e-6, atol=0)
    fif = tmp_path / "fif"
    summary = run_batch(arcs, fif, export_format="fif", workers=2)
    assert summary.failed == [] and summary.converted == 3
    for arc, src in (("site-a/day1/rec1.fif", "site-a/day1/rec1.edf"), ("site-b/test_NO.fif", "site-b/test_NO.vhdr")):
        assert_bitwise_equal(mne.io.read_raw_fif(fif / arc).get_data(), open_raw(dataset / src).get_data())
    assert temporaries(back) == [] and temporaries(fif) == []


def test_include_exclude_and_files_it_did_not_write(dataset, tmp_path):
    dst = tmp_path / "dst"
    (dst / "site-b").mkdir(parents=True)
    (dst / "site-b" / "notes.txt").write_text("someone else's notes\n")
    summary = run_batch(dataset, dst, workers=1, include=["site-*"], exclude=["*.bdf"])
    assert [rel for rel, _ in summary.failed] == ["site-b/notes.txt"]
    assert "exists" in summary.failed[0][1] and "--force" in summary.failed[0][1]
    assert (dst / "site-b" / "notes.txt").read_text() == "someone else's notes\n"
    assert not (dst / "site-a" / "rec2.bc.h5").exists() and not (dst / "broken.bc.h5").exists()
    assert (dst / "site-a" / "day1" / "rec1.bc.h5").is_file()
    summary = run_batch(dataset, dst, workers=1, include=["site-*"], exclude=["*.bdf"], force=True)
    assert summary.failed == [] and summary.already_done == 2
    assert (dst / "site-b" / "notes.txt").read_text() == "session notes\n"


def test_refusals_before_any_work(dataset, tmp_path):
    with pytest.raises(BadInputError, match="inside one another"):
        run_batch(dataset, dataset / "out")
    assert not (dataset / "out").exists()
    with pytest.raises(BadInputError, match="not a folder"):
        run_batch(dataset / "broken.edf", tmp_path / "x")
    res = invoke("batch", dataset, tmp_path / "y", "--mode", "lossy")
    assert res.exit_code == 2 and "--quality" in res.output and not (tmp_path / "y").exists()
    res = invoke("batch", dataset, tmp_path / "y", "--export", "mat")
    assert res.exit_code == 2 and "--export must be one of" in res.output
    dst = tmp_path / "dst"
    run_batch(dataset, dst, workers=1, include=["*.bdf"])
    with pytest.raises(BadInputError, match="holds a batch with direction compress"):
        run_batch(dataset, dst, restore=True)


def test_a_second_batch_on_the_same_destination_is_refused(dataset, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    with Manifest(dst):  # a batch running
        res = invoke("batch", dataset, dst)
        assert res.exit_code == 2
        assert "another batch is writing to this destination" in " ".join(res.output.split())
        assert f"pid {os.getpid()}" in res.output
    assert not any(p.suffix == ".h5" for p in dst.rglob("*"))


def test_large_recordings_spread_their_blocks_over_the_workers(dataset, tmp_path, monkeypatch):
    """A recording over LARGE_BYTES runs alone, its blocks encoded on every worker (a pool
    inside the batch's worker); the archives are the same as those made one per worker."""
    import biocompress.batch.runner as runner_module

    (dataset / "broken.edf").unlink()
    plain = run_batch(dataset, tmp_path / "plain", workers=2)
    monkeypatch.setattr(runner_module, "LARGE_BYTES", 90_000)  # rec1 (96 kB) and test_NO (584 kB) count as large
    spread = run_batch(dataset, tmp_path / "spread", workers=2)
    assert plain.failed == spread.failed == [] and spread.converted == 3
    for rel in ("site-a/day1/rec1.bc.h5", "site-b/test_NO.bc.h5", "site-a/rec2.bc.h5"):
        with biocompress.open(tmp_path / "plain" / rel) as a, biocompress.open(tmp_path / "spread" / rel) as b:
            assert a.attrs["samples_sha256"] == b.attrs["samples_sha256"]
            assert_bitwise_equal(a.read(), b.read())


# --- lossy targets over a whole dataset ----------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*approximate the source")
def test_batch_and_several_inputs_take_prdn_and_bitrate_targets(dataset, tmp_path):
    (dataset / "broken.edf").unlink()
    dst = tmp_path / "dst"
    res = invoke("batch", dataset, dst, "--mode", "lossy", "--max-prdn", "10", "--workers", "1")
    assert res.exit_code == 0, res.output
    for arc in ("site-a/day1/rec1.bc.h5", "site-b/test_NO.bc.h5"):
        with biocompress.open(dst / arc) as a:
            if a.mode == "lossy":  # else lossless was the smaller
                assert float(a.lossy_attrs["max_prdn"]) == 10.0
        assert verify_archive(dst / arc, dataset / {"site-a/day1/rec1.bc.h5": "site-a/day1/rec1.edf",
                                                    "site-b/test_NO.bc.h5": "site-b/test_NO.vhdr"}[arc])["ok"]
    out = tmp_path / "many"
    res = invoke("compress", dataset / "site-a" / "day1" / "rec1.edf", dataset / "site-b" / "test_NO.vhdr",
                 "-o", out, "--mode", "lossy", "--bitrate", "1", "--workers", "1")
    assert res.exit_code == 0, res.output
    with biocompress.open(out / "test_NO.bc.h5") as a:
        assert float(a.lossy_attrs["bitrate"]) == 1.0
    res = invoke("batch", dataset, tmp_path / "bad", "--mode", "lossy", "--max-prdn", "5", "--quality", "3")
    assert res.exit_code == 2 and "--max-prdn" in res.output and not (tmp_path / "bad").exists()
