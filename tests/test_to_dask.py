"""``biocompress.open(path).to_dask()``: an archive (or a folder of them) as lazy Dask arrays."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

import biocompress
from biocompress.errors import CorruptArchiveError
from conftest import SAMPLES_DIR, assert_bitwise_equal

da = pytest.importorskip("dask.array")


def test_archive_as_lazy_dask_array(sample_archive):
    path = sample_archive(SAMPLES_DIR / "mixed_rate.edf")  # native-rate channels too
    with biocompress.open(path) as arc:
        ref = arc.read()
        x = arc.to_dask(chunk_samples=1000)
    assert isinstance(x, da.Array) and x.shape == ref.shape and x.dtype == np.float64
    assert x.chunks[1][0] == 1000
    assert_bitwise_equal(x.compute(scheduler="sync"), ref)
    assert_bitwise_equal(x[2:9, 150:2999:7].compute(), ref[2:9, 150:2999:7])
    assert_bitwise_equal(x[[0, 5, 3], -500:].compute(), ref[[0, 5, 3], -500:])
    assert x[4, 17].compute() == ref[4, 17]
    assert np.isclose(float(x.std(axis=1).mean().compute()), ref.std(axis=1).mean(), rtol=1e-12)
    assert_bitwise_equal(pickle.loads(pickle.dumps(x)).compute(), ref)  # travels to cluster workers


def test_folder_of_archives_and_a_replaced_archive(tmp_path, sample_archive):
    for name in ("chtypes_edf.edf", "test_bdf_stim_channel.bdf"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        shutil.copyfile(sample_archive(SAMPLES_DIR / name), tmp_path / "sub" / (name.split(".")[0] + ".bc.h5"))
    arrays = biocompress.open(tmp_path).to_dask()
    assert sorted(arrays) == ["sub/chtypes_edf.bc.h5", "sub/test_bdf_stim_channel.bc.h5"]
    for rel, x in arrays.items():
        with biocompress.open(tmp_path / rel) as arc:
            assert_bitwise_equal(x.compute(), arc.read())
    x = arrays["sub/chtypes_edf.bc.h5"]
    shutil.copyfile(tmp_path / "sub" / "test_bdf_stim_channel.bc.h5", tmp_path / "sub" / "chtypes_edf.bc.h5")
    with pytest.raises(CorruptArchiveError, match="replaced or modified"):
        x.compute()
