"""One archive, one content: a lazy Raw never returns samples of a file put at its path later."""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest

import biocompress
from biocompress.errors import CorruptArchiveError
from conftest import SAMPLES_DIR, assert_bitwise_equal, synthetic_codes, synthetic_raw


def _two_recordings():
    a = synthetic_raw(synthetic_codes(seed=1), annotations=False)
    b = synthetic_raw(synthetic_codes(seed=2), annotations=False)
    return a, b


def test_replaced_archive_raises_instead_of_mixing(tmp_path):
    a, b = _two_recordings()
    path = biocompress.compress(a, tmp_path / "rec.bc.h5")
    raw = biocompress.read_raw(path)
    assert_bitwise_equal(raw.get_data(stop=100), a.get_data(stop=100))
    biocompress.compress(b, path, overwrite=True)  # compress --force onto the same path
    with pytest.raises(CorruptArchiveError, match="replaced"):
        raw.get_data(start=200, stop=300)
    assert_bitwise_equal(biocompress.read_raw(path).get_data(stop=100), b.get_data(stop=100))  # reopened: fine


def test_copies_and_pickles_keep_reading_and_keep_the_check(tmp_path):
    a, b = _two_recordings()
    path = biocompress.compress(a, tmp_path / "rec.bc.h5")
    raw = biocompress.read_raw(path)
    clones = [raw.copy(), copy.deepcopy(raw), pickle.loads(pickle.dumps(raw))]
    for clone in clones:
        assert_bitwise_equal(clone.get_data(start=10, stop=900), a.get_data(start=10, stop=900))
    biocompress.compress(b, path, overwrite=True)
    for clone in clones:
        with pytest.raises(CorruptArchiveError, match="replaced"):
            clone.get_data(stop=10)


def test_archive_rewritten_in_place_is_detected(tmp_path):
    src = SAMPLES_DIR / "chtypes_edf.edf"
    path = biocompress.compress(src, tmp_path / "rec.bc.h5")
    raw = biocompress.read_raw(path)
    x = raw.get_data(stop=50)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # what a write in place does
    with pytest.raises(CorruptArchiveError, match="modified"):
        raw.get_data(stop=50)
    assert np.array_equal(biocompress.read_raw(path).get_data(stop=50), x)
