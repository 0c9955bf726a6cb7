"""Recordings → archive → ``read_raw``: bit-exact samples and the same metadata."""

from __future__ import annotations

import datetime as dt

import mne
import numpy as np
import pytest

import biocompress
from biocompress.files.restore import restore
from biocompress.errors import BadInputError
from biocompress.io import edf_native
from biocompress.io.source import open_raw
from conftest import (
    SAMPLES_DIR, assert_bitwise_equal, assert_same_annotations, corpus_path, corpus_recordings, leftovers,
    sample_recordings, synthetic_codes, synthetic_raw,
)

SAMPLES = sample_recordings()
CORPUS = corpus_recordings()


def check_same_recording(got: mne.io.BaseRaw, ref: mne.io.BaseRaw) -> None:
    """Samples bitwise, and the metadata the archive promises to keep."""
    assert got.ch_names == ref.ch_names
    assert got.get_channel_types() == ref.get_channel_types()
    assert got.info["sfreq"] == ref.info["sfreq"]
    assert got.info["meas_date"] == ref.info["meas_date"]
    assert (got.first_samp, got.n_times) == (ref.first_samp, ref.n_times)
    assert got.info["bads"] == ref.info["bads"]
    assert_same_annotations(got.annotations, ref.annotations)
    assert_bitwise_equal(got.get_data(), ref.get_data())


# --- (a) bundled samples -------------------------------------------------------------
def test_samples_are_present():
    names = {p.name for p in SAMPLES}
    assert {"chtypes_edf.edf", "Subject00_2.edf", "test_NO.vhdr", "test_bdf_stim_channel.bdf",
            "MB0400FU.EDF", "test_utf8_annotations.edf", "mixed_rate.edf"} <= names
    assert not any(p.suffix.lower() in (".eeg", ".vmrk") for p in SAMPLES)  # sidecars are not recordings


@pytest.mark.parametrize("src", SAMPLES, ids=lambda p: p.name)
def test_sample_roundtrip(src, sample_archive):
    archive = sample_archive(src)
    check_same_recording(biocompress.read_raw(archive), open_raw(src))
    # preloaded reads decode the same samples as lazy ones
    assert_bitwise_equal(biocompress.read_raw(archive, preload=True).get_data(), open_raw(src).get_data())


# --- (b) the real corpus ---------------------------------------------------------------
@pytest.mark.parametrize("src", CORPUS or [None],
                         ids=lambda p: str(p.relative_to(corpus_path())) if p else "corpus-absent")
def test_corpus_roundtrip(src, corpus_dir, tmp_path):
    if src is None:
        pytest.skip(f"no recordings found under {corpus_dir}")
    try:
        ref = open_raw(src)
    except BadInputError as exc:
        pytest.skip(f"not readable by MNE: {exc}")
    archive = biocompress.compress(src, tmp_path / "rec.bc.h5")
    check_same_recording(biocompress.read_raw(archive), ref)
    if src.suffix.lower() in (".edf", ".bdf"):  # every EDF/BDF comes back byte for byte
        back = restore(archive, tmp_path / src.name)
        assert back["exact"] == "bytes" and (tmp_path / src.name).read_bytes() == src.read_bytes()
    assert leftovers(tmp_path) == []


# --- (c) read_raw random access ------------------------------------------------------------
def test_read_raw_window_across_block_boundary(samples_dir, sample_archive):
    src = samples_dir / "Subject00_2.edf"  # 31000 samples: blocks [0, 16384) and [16384, 31000)
    archive = sample_archive(src)
    with biocompress.open(archive) as arc:
        assert 16384 in set(arc.index["t_start"].tolist())
    ref, got = open_raw(src), biocompress.read_raw(archive)
    picks = [0, 3, 7, 8, 9, 15, 16, 20]  # across channel groups of 8
    for start, stop in [(16000, 17000), (16383, 16385), (16384, 16385), (0, 31000), (30999, 31000)]:
        assert_bitwise_equal(got.get_data(start=start, stop=stop, picks=picks),
                             ref.get_data(start=start, stop=stop, picks=picks), f"window [{start}, {stop})")
    names = [ref.ch_names[i] for i in (20, 2, 11)]  # unordered names
    assert_bitwise_equal(got.get_data(picks=names, start=16300, stop=16500),
                         ref.get_data(picks=names, start=16300, stop=16500))
    assert_bitwise_equal(got.get_data(picks="eeg", start=100, stop=20000),
                         ref.get_data(picks="eeg", start=100, stop=20000))


@pytest.mark.parametrize("src", SAMPLES, ids=lambda p: p.name)
def test_read_raw_random_windows(src, sample_archive):
    ref, got = open_raw(src), biocompress.read_raw(sample_archive(src))
    # MNE resamples mixed-rate EDF signals over whatever it reads, so its partial reads have
    # edge artifacts; the archive serves windows of the whole-file view instead
    whole = ref.get_data() if edf_native.native_channels(ref).size else None
    rng = np.random.default_rng(len(src.name))
    for _ in range(6):
        a, b = np.sort(rng.integers(0, ref.n_times + 1, 2))
        b = max(b, a + 1) if a < ref.n_times else b
        if a >= b:
            continue
        picks = np.sort(rng.choice(ref.info["nchan"], size=min(5, ref.info["nchan"]), replace=False))
        expected = whole[picks, a:b] if whole is not None else ref.get_data(picks=picks, start=a, stop=b)
        assert_bitwise_equal(got.get_data(picks=picks, start=a, stop=b), expected,
                             f"window [{a}, {b}) picks {picks.tolist()}")


@pytest.mark.parametrize("preload", [False, True])
def test_read_raw_crop_then_get_data(samples_dir, sample_archive, preload):
    src = samples_dir / "Subject00_2.edf"
    got = biocompress.read_raw(sample_archive(src), preload=preload).crop(tmin=30.0, tmax=40.0)
    ref = open_raw(src).crop(tmin=30.0, tmax=40.0)
    assert (got.first_samp, got.n_times) == (ref.first_samp, ref.n_times) == (15000, 5001)
    assert_bitwise_equal(got.get_data(), ref.get_data())
    assert_bitwise_equal(got.get_data(start=1000, stop=1500, picks=[1, 19]),
                         ref.get_data(start=1000, stop=1500, picks=[1, 19]))
    assert_same_annotations(got.annotations, ref.annotations)


def test_read_raw_pick_then_load(samples_dir, sample_archive):
    src = samples_dir / "chtypes_edf.edf"
    got = biocompress.read_raw(sample_archive(src)).pick([5, 1, 30]).load_data()
    ref = open_raw(src).pick([5, 1, 30]).load_data()
    assert got.ch_names == ref.ch_names
    assert_bitwise_equal(got.get_data(), ref.get_data())


def test_read_raw_lazy_projection(samples_dir, sample_archive):
    src = samples_dir / "Subject00_2.edf"
    got = biocompress.read_raw(sample_archive(src))
    ref = open_raw(src)
    for raw in (got, ref):
        raw.set_eeg_reference(projection=True)
        raw.apply_proj()
    np.testing.assert_allclose(got.get_data(start=0, stop=2000), ref.get_data(start=0, stop=2000),
                               rtol=1e-12, atol=1e-18)


# --- (d) low-level Archive.read --------------------------------------------------------------
def test_archive_read_windows_and_picks(samples_dir, sample_archive):
    src = samples_dir / "Subject00_2.edf"
    ref = open_raw(src)
    x = ref.get_data()
    with biocompress.open(sample_archive(src)) as arc:
        assert (arc.n_channels, arc.n_samples) == x.shape
        assert arc.ch_names == ref.ch_names
        assert_bitwise_equal(arc.read(), x)
        assert_bitwise_equal(arc.read(16000, 17000, picks=[20, 0, 8]), x[[20, 0, 8], 16000:17000])
        assert_bitwise_equal(arc.read(5, 6, picks=3), x[[3], 5:6])
        assert_bitwise_equal(arc.read(stop=10), x[:, :10])
        assert arc.read(100, 100).shape == (x.shape[0], 0)
        assert_bitwise_equal(arc.read(0, 31000, picks=[4, 4]), x[[4, 4]])  # repeated picks
        for bad in [(-1, 10), (10, 5), (0, x.shape[1] + 1)]:
            with pytest.raises(ValueError):
                arc.read(*bad)


def test_archive_read_rejects_out_of_range_picks(samples_dir, sample_archive):
    with biocompress.open(sample_archive(samples_dir / "chtypes_edf.edf")) as arc:
        with pytest.raises((IndexError, ValueError)):
            arc.read(0, 10, picks=[arc.n_channels])


@pytest.mark.parametrize("src", SAMPLES, ids=lambda p: p.name)
def test_archive_iter_chunks_tile_the_recording(src, sample_archive):
    x = open_raw(src).get_data()
    with biocompress.open(sample_archive(src)) as arc:
        parts = list(arc.iter_chunks())
    assert parts[0][0] == 0 and parts[-1][1] == x.shape[1]
    assert all(p[1] == q[0] for p, q in zip(parts, parts[1:]))
    assert_bitwise_equal(np.concatenate([p[2] for p in parts], axis=1), x)


# --- (e) synthetic recordings ------------------------------------------------------------------
CAL = 1e-7


def _counter_ok(got: mne.io.BaseRaw, start: int = 0, stop: int | None = None) -> None:
    c = got.get_data(picks=["counter"], start=start, stop=stop)[0]
    stop = got.n_times if stop is None else stop
    assert np.array_equal(np.rint(c / CAL).astype(np.int64), np.arange(start, stop))
    assert_bitwise_equal(c[np.newaxis], (np.arange(start, stop) * CAL)[np.newaxis], "counter")


@pytest.mark.parametrize("n_samples, block", [(5003, 1000), (4096, 4096), (1, 16384), (20000, 16384)])
@pytest.mark.parametrize("first_samp", [0, 1234])
def test_synthetic_roundtrip_counter(tmp_path, n_samples, block, first_samp):
    codes = synthetic_codes(11, n_samples, seed=n_samples)  # 11 channels: groups of 8 + 3
    raw = synthetic_raw(codes, cal=CAL, first_samp=first_samp, annotations=n_samples > 1000)
    dst = biocompress.compress(raw, tmp_path / "syn.bc.h5", block_samples=block)
    got = biocompress.read_raw(dst)
    check_same_recording(got, raw)
    _counter_ok(got)
    with biocompress.open(dst) as arc:
        assert (arc.value_kind == 0).all(), "integer codes × cal must be stored as int codes"
        assert {c["id"] for c in arc.codec_configs} == {"lpc-v4"}
        assert arc.index.size == -(-n_samples // block)  # 11 channels: one group
        assert arc.first_samp == first_samp
        assert arc.source["file_name"] is None
    # windows across every block boundary
    for t in range(block, n_samples, block):
        _counter_ok(got, t - 3, min(n_samples, t + 3))
    assert leftovers(tmp_path) == []


def test_synthetic_roundtrip_without_meas_date(tmp_path):
    raw = synthetic_raw(synthetic_codes(4, 3000), meas_date=None)
    dst = biocompress.compress(raw, tmp_path / "nodate.bc.h5")
    got = biocompress.read_raw(dst)
    assert got.info["meas_date"] is None and got.annotations.orig_time is None
    check_same_recording(got, raw)


def test_synthetic_annotations_without_meas_date_and_first_samp(tmp_path):
    raw = synthetic_raw(synthetic_codes(3, 3000), meas_date=None, first_samp=1234)
    dst = biocompress.compress(raw, tmp_path / "nodate_fs.bc.h5")
    got = biocompress.read_raw(dst)
    assert_bitwise_equal(got.get_data(), raw.get_data())  # samples are fine
    np.testing.assert_array_equal(got.annotations.onset, raw.annotations.onset)


def test_synthetic_int_meas_date_microseconds(tmp_path):
    when = dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    raw = synthetic_raw(synthetic_codes(2, 500), meas_date=when)
    got = biocompress.read_raw(biocompress.compress(raw, tmp_path / "d.bc.h5"))
    assert got.info["meas_date"] == when
    assert got.annotations.orig_time == when


def test_synthetic_kind_demoted_after_first_block(tmp_path):
    """A channel that is integer in the first block but not later is demoted and still exact."""
    codes = synthetic_codes(4, 6000, seed=9)
    data = codes * CAL
    data[2, 4500] += CAL / 3  # breaks the integer kind of channel 2, after the first block
    info = mne.create_info(["counter", "a", "b", "c"], 500.0, ["misc", "eeg", "eeg", "eeg"])
    for ch in info["chs"]:
        ch["cal"] = CAL
    raw = mne.io.RawArray(data, info)
    dst = biocompress.compress(raw, tmp_path / "demote.bc.h5", block_samples=2048)
    got = biocompress.read_raw(dst)
    assert_bitwise_equal(got.get_data(), raw.get_data())
    _counter_ok(got)
    with biocompress.open(dst) as arc:
        assert arc.value_kind[2] != 0
        assert list(arc.value_kind[[0, 1, 3]]) == [0, 0, 0]
    assert leftovers(tmp_path) == []


def test_synthetic_float_channels_keep_special_values(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    f32 = np.cumsum(rng.normal(0, 1e-6, n)).astype(np.float32).astype(np.float64)  # float32 samples
    f64 = np.cumsum(rng.normal(0, 1e-6, n))
    special = f64.copy()
    nan_payload = np.array([0x7FF8000000000ABC], np.uint64).view(np.float64)[0]
    special[[10, 11, 12, 13, 14, 2999]] = [np.nan, np.inf, -np.inf, -0.0, nan_payload, 0.0]
    info = mne.create_info(["counter", "f32", "f64", "special"], 1000.0, ["misc", "eeg", "eeg", "eeg"])
    for ch in info["chs"]:
        ch["cal"] = 1.0
    data = np.vstack([np.arange(n, dtype=np.float64), f32, f64, special])
    raw = mne.io.RawArray(data, info)
    dst = biocompress.compress(raw, tmp_path / "floats.bc.h5", block_samples=1024)
    got = biocompress.read_raw(dst).get_data()
    assert_bitwise_equal(got, raw.get_data())
    assert np.array_equal(got[0], np.arange(n))
    with biocompress.open(dst) as arc:
        assert list(arc.value_kind) == [0, 1, 2, 2]
        assert {c["id"] for c in arc.codec_configs} == {"lpc-v4", "float-lpc-v1", "float-xor-zlib-v1"}


# --- mixed-rate EDF: signals stored at their own rates ----------------------------------
def test_mixed_rate_edf_stored_at_native_rates(tmp_path):
    src = SAMPLES_DIR / "mixed_rate.edf"
    ref = open_raw(src)
    dst = biocompress.compress(src, tmp_path / "mixed.bc.h5", block_samples=1000)
    per_record = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 128, 512, 128, 512, 512, 512])
    n_records = ref.n_times // 512
    with biocompress.open(dst) as arc:
        slow = per_record < 512
        assert (arc.value_kind[slow] == 3).all() and (arc.value_kind[~slow] == 0).all()
        assert arc.stored_samples.tolist() == (per_record * n_records).tolist()
        # the 1 Hz signal holds 6 codes: it is not upsampled before coding
        assert arc.stored_codes(0).size == n_records
        # windows and channel subsets are slices of MNE's whole-file view
        whole = ref.get_data()
        for a, b, picks in [(0, 10, [0]), (995, 1007, [0, 9, 10]), (3000, 3072, list(range(16)))]:
            assert_bitwise_equal(arc.read(a, b, picks=picks), whole[picks, a:b])
    check_same_recording(biocompress.read_raw(dst), ref)
    assert_bitwise_equal(biocompress.read_raw(dst).get_data(picks=[3, 11], start=100, stop=900),
                         ref.get_data(picks=[3, 11])[:, 100:900])


def test_mixed_rate_edf_packs_smaller_than_resampled(tmp_path):
    """Native storage must beat storing MNE's upsampled float64 view (the v1 fallback)."""
    src = SAMPLES_DIR / "mixed_rate.edf"
    dst = biocompress.compress(src, tmp_path / "mixed.bc.h5")
    with biocompress.open(dst) as arc:
        payload = int(arc.index["length"].sum())
    native_bytes = 2 * sum([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 128, 512, 128, 512, 512, 512]) * 6
    assert payload < native_bytes / 2.5
