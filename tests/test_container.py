"""The HDF5 container: block index, checksums, format checks, atomic writes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import biocompress
import importlib
from biocompress.codecs.base import _REGISTRY, Codec
from biocompress.codecs.lossless import LPCCodec
from biocompress.container.layout import FORMAT_VERSION, INDEX_DTYPE, get_text, put_text, segment_path
from biocompress.container.reader import Archive, sample_bytes
from biocompress.errors import BadInputError, CorruptArchiveError, VerificationError
from biocompress.io.source import open_raw
from conftest import (
    SAMPLES_DIR, assert_bitwise_equal, crafted, folder_names, leftovers, sample_recordings, synthetic_codes,
    synthetic_raw,
)

SAMPLES = sample_recordings()
# the package exports the function `compress`, which hides the module of the same name
lanes_mod = importlib.import_module("biocompress.stream.lanes")


@pytest.fixture
def small_archive(tmp_path):
    """A synthetic archive with several time windows and channel groups (11 channels, blocks of 700)."""
    raw = synthetic_raw(synthetic_codes(11, 2500, seed=1))
    return biocompress.compress(raw, tmp_path / "small.bc.h5", block_samples=700, group_channels=8), raw


# --- index --------------------------------------------------------------------------------
def _coverage(arc: Archive) -> np.ndarray:
    """How often each stored sample is in a block; -1 marks samples a channel does not store."""
    count = np.zeros((arc.n_channels, arc.n_samples), np.int64)
    for row in arc.index:
        count[row["ch_start"] : row["ch_stop"], row["t_start"] : row["t_stop"]] += 1
    for ch, n in enumerate(arc.stored_samples):  # int-native channels store fewer samples
        count[ch, n:] -= 1 if n < arc.n_samples else 0
        assert (count[ch, n:] == -1).all(), f"channel {ch}: blocks beyond its {n} stored samples"
        count[ch, n:] = 1
    return count


@pytest.mark.parametrize("src", SAMPLES, ids=lambda p: p.name)
def test_index_covers_every_sample_exactly_once(src, sample_archive):
    with biocompress.open(sample_archive(src)) as arc:
        assert arc.index.dtype == INDEX_DTYPE
        assert (_coverage(arc) == 1).all()
        idx = arc.index
        assert (idx["t_start"] < idx["t_stop"]).all() and (idx["ch_start"] < idx["ch_stop"]).all()
        for row in idx:  # one value kind per block
            assert np.unique(arc.value_kind[row["ch_start"] : row["ch_stop"]]).size == 1


def test_index_of_multi_block_archive(small_archive):
    path, _ = small_archive
    with biocompress.open(path) as arc:
        assert (_coverage(arc) == 1).all()
        assert sorted(set(arc.index["t_start"].tolist())) == [0, 700, 1400, 2100]
        assert sorted(set(zip(arc.index["ch_start"].tolist(), arc.index["ch_stop"].tolist()))) == [(0, 8), (8, 11)]
        assert arc.index.size == 8
        # blocks lie inside their payload segment, back to back, and pass their CRC
        for i, row in enumerate(arc.index):
            seg = arc.file[segment_path("data", int(row["segment"]))]
            assert row["offset"] + row["length"] <= seg.shape[0]
            assert len(arc.block_bytes(i)) == row["length"]
        assert arc.attrs["block_samples"] == 700


def test_block_decodes_to_index_shape(small_archive):
    path, raw = small_archive
    with biocompress.open(path) as arc:
        for i, row in enumerate(arc.index):
            codes = arc.decode_block(i)
            assert codes.shape == (row["ch_stop"] - row["ch_start"], row["t_stop"] - row["t_start"])
            if row["ch_start"] == 0:  # the counter channel's codes are the sample numbers
                assert np.array_equal(codes[0], np.arange(row["t_start"], row["t_stop"]))


def test_samples_sha256_matches_layout(small_archive):
    import hashlib

    path, raw = small_archive
    with biocompress.open(path) as arc:
        assert arc.attrs["samples_sha256"] == hashlib.sha256(sample_bytes(raw.get_data())).hexdigest()
        assert arc.verify()["ok"]


def test_archive_attributes(small_archive):
    path, raw = small_archive
    with h5py.File(path, "r") as outer:  # format 6: the file holds the payload segments and the sealed metadata
        assert get_text(outer.attrs, "format") == "biocompress"
        assert int(outer.attrs["format_version"]) == FORMAT_VERSION == 6
        assert sorted(outer.attrs) == ["format", "format_version"]
        assert sorted(outer) == ["data.000000", "meta"]
    with biocompress.open(path) as arc:
        f = arc.h5  # the metadata tree, unpacked
        assert get_text(f.attrs, "format") == "biocompress"
        assert int(f.attrs["format_version"]) == FORMAT_VERSION
        assert get_text(f.attrs, "mode") == "lossless"
        assert get_text(f.attrs, "created_by").startswith("biocompress ")
        assert all(not isinstance(v, str) for v in f.attrs.values()), "no variable-length (global heap) strings"
        d = f["data"].attrs
        assert (int(d["n_samples"]), int(d["n_channels"]), float(d["sfreq"])) == (2500, 11, 250.0)
        json.loads(bytes(f["info/json"][()]).decode("utf-8"))  # strict JSON
        assert json.loads(get_text(f["channels"].attrs, "value_kinds")) == ["int", "f32", "f64", "int-native", "lossy"]
        assert (f["channels/stored_samples"][()] == 2500).all()


def test_packed_metadata_is_checked_before_it_is_read(tmp_path, small_archive):
    """Any byte of /meta changed: the archive is refused (its SHA-256), never misread."""
    path, _ = small_archive
    with h5py.File(path, "r") as f:
        n = f["meta"].shape[0]
    for k in (0, n // 3, n - 1):
        damaged = tmp_path / f"m{k}.bc.h5"
        damaged.write_bytes(path.read_bytes())
        with h5py.File(damaged, "r+") as f:
            blob = f["meta"][()]
            blob[k] ^= 0x10
            f["meta"][...] = blob
        with pytest.raises(CorruptArchiveError, match="packed metadata is damaged"):
            biocompress.open(damaged)


# --- damaged and foreign files -------------------------------------------------------------------
def _flip(path, position):
    with h5py.File(path, "r+") as f:
        ds = f[segment_path("data", 0)]
        ds[position] = ds[position] ^ 0x01


def test_crc_mismatch_raises_corrupt_archive(small_archive):
    path, _ = small_archive
    with biocompress.open(path) as arc:
        row = arc.index[3]
        assert row["segment"] == 0
        target = int(row["offset"] + row["length"] // 2)
        t0, t1, c0 = int(row["t_start"]), int(row["t_stop"]), int(row["ch_start"])
    _flip(path, target)
    with biocompress.open(path) as arc:
        with pytest.raises(CorruptArchiveError, match="CRC"):
            arc.read(t0, t1, picks=[c0])
        with pytest.raises(CorruptArchiveError):
            arc.read()
        with pytest.raises(CorruptArchiveError):
            arc.verify()
        # blocks that were not damaged still read
        other = arc.index[0]
        assert arc.read(int(other["t_start"]), int(other["t_stop"]), picks=[0]).shape == (1, 700)
    with pytest.raises(CorruptArchiveError):
        biocompress.read_raw(path).get_data()


def test_block_outside_payload_is_corrupt(small_archive):
    path, _ = small_archive
    with crafted(path) as f:
        index = f["data/index"][()]
        index[0]["length"] = 10**9
        f["data/index"][...] = index
    with pytest.raises(CorruptArchiveError, match="outside the payload"):
        biocompress.open(path)


def test_index_gap_is_corrupt(small_archive):
    path, _ = small_archive
    with crafted(path) as f:
        index = f["data/index"][()]
        del f["data/index"]
        f["data"].create_dataset("index", data=index[1:])  # drop block 0
    with pytest.raises(CorruptArchiveError, match="does not tile"):
        biocompress.open(path)


def test_changed_index_fails_the_manifest(tmp_path, fixtures_dir):
    """Formats 3-4 (a manifest per part): a changed index fails its digest."""
    path = tmp_path / "v3.bc.h5"
    path.write_bytes((fixtures_dir / "archive-v3_edf_integrity.bc.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        index = f["data/index"][()]
        index[1]["t_stop"] += 1
        f["data/index"][...] = index
    with pytest.raises(CorruptArchiveError, match="/data/index is damaged"):
        biocompress.open(path)


def test_non_biocompress_hdf5_is_bad_input(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=np.arange(10))
    with pytest.raises(BadInputError, match="not a biocompress archive"):
        biocompress.open(p)
    with pytest.raises(BadInputError):
        biocompress.read_raw(p)


def test_not_hdf5_and_missing_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not an HDF5 file"):
        biocompress.open(SAMPLES_DIR / "chtypes_edf.edf")
    with pytest.raises(BadInputError, match="no such archive"):
        biocompress.open(tmp_path / "missing.bc.h5")


def _set_format_version(path, version):
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = version


def test_unsupported_format_version_is_bad_input(small_archive):
    path, _ = small_archive
    _set_format_version(path, 99)
    with pytest.raises(BadInputError, match="format version") as info:
        biocompress.open(path)
    assert str(path) in str(info.value) and "not supported" in str(info.value)
    with pytest.raises(BadInputError):
        biocompress.read_raw(path)


def test_unsupported_format_version_message_names_the_version(small_archive):
    path, _ = small_archive
    _set_format_version(path, 99)
    with pytest.raises(BadInputError, match="version 99"):
        biocompress.open(path)


def test_unknown_codec_id_in_archive_is_corrupt(small_archive):
    path, _ = small_archive
    with crafted(path) as f:
        f["data"].attrs["codecs"] = json.dumps([{"id": "lpc-v99"}])
    with pytest.raises(CorruptArchiveError, match="lpc-v99"):
        biocompress.open(path)


def test_missing_part_is_corrupt(small_archive):
    path, _ = small_archive
    with crafted(path) as f:
        del f["channels/value_kind"]
    with pytest.raises(CorruptArchiveError, match="missing"):
        biocompress.open(path)


# --- atomic writes ----------------------------------------------------------------------------
def test_no_temp_files_after_compress(tmp_path):
    for src in SAMPLES:
        biocompress.compress(src, tmp_path / (src.name + ".bc.h5"))
    assert leftovers(tmp_path) == []
    assert folder_names(tmp_path) == sorted(p.name + ".bc.h5" for p in SAMPLES)


def test_compress_api_refuses_overwrite(tmp_path):
    src = SAMPLES_DIR / "test_bdf_stim_channel.bdf"
    dst = biocompress.compress(src, tmp_path / "a.bc.h5")
    before = dst.read_bytes()
    with pytest.raises(BadInputError, match="exists"):
        biocompress.compress(src, dst)
    assert dst.read_bytes() == before
    biocompress.compress(SAMPLES_DIR / "chtypes_edf.edf", dst, overwrite=True)
    with biocompress.open(dst) as arc:
        assert arc.n_channels == 42
    assert leftovers(tmp_path) == []


def test_compress_api_bad_arguments(tmp_path):
    raw = synthetic_raw(synthetic_codes(2, 100))
    with pytest.raises(BadInputError, match="dst"):
        biocompress.compress(raw)
    with pytest.raises(BadInputError, match="mode"):
        biocompress.compress(raw, tmp_path / "x.bc.h5", mode="lousy")
    with pytest.raises(BadInputError, match="quality"):
        biocompress.compress(raw, tmp_path / "x.bc.h5", mode="lossy")
    with pytest.raises(BadInputError, match="max-error"):
        biocompress.compress(raw, tmp_path / "x.bc.h5", mode="near-lossless", max_error_uv=-1)
    with pytest.raises(BadInputError, match="does not exist"):
        biocompress.compress(raw, tmp_path / "no" / "x.bc.h5")
    assert folder_names(tmp_path) == []


class _ExplodingCodec(LPCCodec):
    codec_id = "test-exploding-v1"

    def encode(self, codes):
        raise RuntimeError("codec exploded")


@pytest.fixture
def exploding(monkeypatch):
    """Blocks are encoded by codec id (possibly in worker processes): register the test codec."""
    monkeypatch.setitem(_REGISTRY, _ExplodingCodec.codec_id, _ExplodingCodec)
    monkeypatch.setattr(lanes_mod, "lossless_codec_for", lambda kind, level="default": _ExplodingCodec())


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_codec_leaves_nothing(tmp_path, exploding, workers):
    with pytest.raises(RuntimeError, match="codec exploded"):
        biocompress.compress(SAMPLES_DIR / "chtypes_edf.edf", tmp_path / "out.bc.h5", workers=workers)
    assert folder_names(tmp_path) == []


def test_failing_codec_keeps_existing_output(tmp_path, monkeypatch):
    dst = biocompress.compress(SAMPLES_DIR / "test_bdf_stim_channel.bdf", tmp_path / "out.bc.h5")
    before = dst.read_bytes()
    monkeypatch.setitem(_REGISTRY, _ExplodingCodec.codec_id, _ExplodingCodec)
    monkeypatch.setattr(lanes_mod, "lossless_codec_for", lambda kind, level="default": _ExplodingCodec())
    with pytest.raises(RuntimeError):
        biocompress.compress(SAMPLES_DIR / "chtypes_edf.edf", dst, overwrite=True)
    assert dst.read_bytes() == before
    assert folder_names(tmp_path) == ["out.bc.h5"]


class _OffByOneCodec(Codec):
    """Encodes correctly, decodes every code + 1: verify-after-write must catch it."""

    codec_id = "test-off-by-one-v1"

    def encode(self, codes):
        return LPCCodec().encode(codes)

    def decode(self, payload):
        return LPCCodec().decode(payload) + 1


def test_verify_after_write_catches_wrong_decoder(tmp_path, monkeypatch):
    monkeypatch.setitem(_REGISTRY, _OffByOneCodec.codec_id, _OffByOneCodec)
    monkeypatch.setattr(lanes_mod, "lossless_codec_for", lambda kind, level="default": _OffByOneCodec())
    with pytest.raises(VerificationError, match="differs"):
        biocompress.compress(SAMPLES_DIR / "chtypes_edf.edf", tmp_path / "out.bc.h5")
    assert folder_names(tmp_path) == []


def test_verify_after_write_catches_wrong_decoding_on_workers(tmp_path, monkeypatch):
    """Blocks verified on the encoding processes (workers forked after the patch decode + 1)."""
    from biocompress.codecs.lossless.lpc_v4 import LPCV4Codec

    decode = LPCV4Codec.decode
    monkeypatch.setattr(LPCV4Codec, "decode", lambda self, payload: decode(self, payload) + 1)
    with pytest.raises(VerificationError, match="differs"):
        biocompress.compress(SAMPLES_DIR / "Subject00_2.edf", tmp_path / "out.bc.h5", workers=2)
    assert folder_names(tmp_path) == []


def test_verify_false_skips_check_but_archive_is_valid(tmp_path):
    src = SAMPLES_DIR / "chtypes_edf.edf"
    dst = biocompress.compress(src, tmp_path / "nv.bc.h5", verify=False)
    assert_bitwise_equal(biocompress.read_raw(dst).get_data(), open_raw(src).get_data())


def test_worker_processes_write_the_same_blocks(tmp_path):
    """Blocks encoded on worker processes come back in order and byte-identical."""
    src = SAMPLES_DIR / "Subject00_2.edf"
    one = biocompress.compress(src, tmp_path / "one.bc.h5", workers=1, block_samples=4096)
    two = biocompress.compress(src, tmp_path / "two.bc.h5", workers=2, block_samples=4096)
    with biocompress.open(one) as a, biocompress.open(two) as b:
        assert a.index.size > 4
        assert np.array_equal(a.index, b.index)
        assert all(a.block_bytes(i) == b.block_bytes(i) for i in range(a.index.size))


def test_unknown_codec_names_file_and_releases_it(small_archive):
    path, _ = small_archive
    with crafted(path) as f:
        put_text(f["data"].attrs, "codecs", json.dumps([{"id": "lpc-v99"}]))
    with pytest.raises(CorruptArchiveError, match=r"small\.bc\.h5.*unknown codec 'lpc-v99'"):
        biocompress.open(path)
    with h5py.File(path, "r+"):  # the reader closed it: it can be opened for writing again
        pass


def test_reads_on_worker_processes_match_in_process_reads(tmp_path, monkeypatch):
    """Frames decoded on the read pool give the same samples as decoding here."""
    from biocompress.codecs import pool as parallel

    if parallel.default_workers() < 2 or parallel.read_pool() is None:
        pytest.skip("one core (or no child processes): reads never use worker processes here")
    dst = biocompress.compress(SAMPLES_DIR / "Subject00_2.edf", tmp_path / "g.bc.h5",
                               block_samples=8192, group_channels=8)
    rng = np.random.default_rng(3)
    requests = [(int(s), int(s) + 5000, np.sort(rng.choice(21, 5, replace=False)))
                for s in rng.integers(0, 31000 - 5000, 6)]
    with Archive(dst) as arc:
        pooled = [arc.read(a, b, picks=p) for a, b, p in requests]
        assert len(arc._cache) > 2  # several blocks per request went through the pool
    monkeypatch.setattr(parallel, "read_pool", lambda: None)
    with Archive(dst) as arc:
        for (a, b, p), x in zip(requests, pooled):
            assert_bitwise_equal(x, arc.read(a, b, picks=p))


def test_damaged_frame_on_a_worker_raises_corrupt_archive():
    from biocompress.codecs import pool as parallel
    from biocompress.codecs.lossless import LosslessCodec

    codec = LosslessCodec()
    codes = np.cumsum(np.random.default_rng(0).integers(-40, 41, (4, 9000)), axis=1)
    parts, _ = codec.split_decode(codec.encode(codes))
    damaged = (parts[1][0][:40],) + parts[1][1:]
    jobs = [(codec.get_config(), parts[0]), (codec.get_config(), damaged), (codec.get_config(), parts[2])]
    with pytest.raises(CorruptArchiveError):
        parallel.decode_parts(jobs, cost=[100, 1, 1])  # the damaged part goes to the worker
