"""A BIDS dataset (made with mne-bids from the bundled recordings) converts to a tree that
mne-bids still reads, and restores to the dataset it was."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mne
import pytest

import biocompress
from biocompress import __version__
from biocompress.batch import run_batch
from conftest import SAMPLES_DIR, assert_bitwise_equal

mne_bids = pytest.importorskip("mne_bids")

RECORDINGS = [("01", "arith", "Subject00_2.edf"), ("02", "rest", "test_NO.vhdr"),
              ("03", "stim", "test_bdf_stim_channel.bdf")]


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bids") / "ds"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no events found" for recordings without annotations
        for sub, task, name in RECORDINGS:
            raw = mne.io.read_raw(SAMPLES_DIR / name, verbose="ERROR")
            path = mne_bids.BIDSPath(subject=sub, task=task, datatype="eeg", root=root)
            mne_bids.write_raw_bids(raw, path, verbose=False)
    return root


def _bids_path(root, sub, task, **kw):
    return mne_bids.BIDSPath(root=root, subject=sub, task=task, datatype="eeg", suffix="eeg", **kw)


def _read_bids(root, sub, task):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mne_bids.read_raw_bids(_bids_path(root, sub, task), verbose=False)


def test_bids_dataset_converts_to_a_tree_mne_bids_reads_and_restores(bids_root, tmp_path):
    arcs = tmp_path / "arcs"
    summary = run_batch(bids_root, arcs, workers=2)
    assert summary.failed == [], summary.failed

    # the description records the conversion; the original one is kept aside
    desc = json.loads((arcs / "dataset_description.json").read_text())
    before = json.loads((bids_root / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    ours = [g for g in desc["GeneratedBy"] if g["Name"] == "biocompress"]
    assert len(ours) == 1 and ours[0]["Version"] == __version__ and "mode lossless" in ours[0]["Description"]
    assert desc["GeneratedBy"][:-1] == before.get("GeneratedBy", []) and desc["Name"] == before["Name"]

    # mne-bids finds every recording, its entities and its sidecars in the converted tree
    assert mne_bids.get_entity_vals(arcs, "subject") == ["01", "02", "03"]
    assert mne_bids.get_entity_vals(arcs, "task") == ["arith", "rest", "stim"]
    assert mne_bids.get_datatypes(arcs) == ["eeg"]
    for sub, task, name in RECORDINGS:
        found = _bids_path(arcs, sub, task, check=False).match()
        assert [p.basename for p in found] == [f"sub-{sub}_task-{task}_eeg.bc.h5"]
        channels = _bids_path(arcs, sub, task, check=False).find_matching_sidecar(suffix="channels", extension=".tsv")
        assert Path(channels).read_bytes() == Path(_bids_path(bids_root, sub, task).find_matching_sidecar(
            suffix="channels", extension=".tsv")).read_bytes()
        # the scans file names the archive, which holds what mne-bids reads from the source
        scans = (arcs / f"sub-{sub}" / f"sub-{sub}_scans.tsv").read_text().splitlines()
        assert scans[1].split("\t")[0] == f"eeg/sub-{sub}_task-{task}_eeg.bc.h5"
        assert_bitwise_equal(biocompress.read_raw(found[0].fpath).get_data(),
                             _read_bids(bids_root, sub, task).get_data())
    assert not list(arcs.rglob("*.vmrk")) and not list(arcs.rglob("*_eeg.eeg"))  # BrainVision data inside its archive

    # and back: the dataset as it was, which mne-bids reads as before
    back = tmp_path / "back"
    summary = run_batch(arcs, back, restore=True, workers=2)
    assert summary.failed == [], summary.failed
    for name in ("dataset_description.json", "participants.tsv", "README", "sub-01/sub-01_scans.tsv",
                 "sub-02/sub-02_scans.tsv", "sub-01/eeg/sub-01_task-arith_eeg.edf",
                 "sub-03/eeg/sub-03_task-stim_eeg.bdf", "sub-01/eeg/sub-01_task-arith_events.tsv"):
        assert (back / name).read_bytes() == (bids_root / name).read_bytes(), name
    for sub, task, _ in RECORDINGS:
        x, y = _read_bids(back, sub, task), _read_bids(bids_root, sub, task)
        assert x.ch_names == y.ch_names and x.get_channel_types() == y.get_channel_types()
        tol = 1e-6 if task == "rest" else 0  # BrainVision comes back through MNE (float32 written by pybv)
        assert abs(x.get_data() - y.get_data()).max() <= tol * abs(y.get_data()).max()
