"""Must-show checks of the foundation: exact round-trips, bad input, properties."""

import os
from pathlib import Path

import mne
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

import biocompress
from biocompress.cli import app
from biocompress.codecs.lossless import LPCCodec
from biocompress.files.demo import recordings_in
from biocompress.io.source import open_raw

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
CORPUS = Path(os.environ.get("BIOCOMPRESS_CORPUS", ROOT.parent / "shared" / "corpus"))


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _check_roundtrip(src, tmp_path):
    dst = tmp_path / (src.name + ".bc.h5")
    biocompress.compress(src, dst)
    ref, got = open_raw(src), biocompress.read_raw(dst)
    assert _same_bits(got.get_data(), ref.get_data())
    assert got.ch_names == ref.ch_names
    assert got.get_channel_types() == ref.get_channel_types()
    assert got.info["sfreq"] == ref.info["sfreq"]
    assert got.info["meas_date"] == ref.info["meas_date"]
    a, b = got.annotations, ref.annotations
    assert np.array_equal(a.onset, b.onset) and np.array_equal(a.duration, b.duration)
    assert list(a.description) == list(b.description) and a.orig_time == b.orig_time


@pytest.mark.parametrize("src", recordings_in(SAMPLES), ids=lambda p: p.name)
def test_samples_roundtrip_bit_exact(src, tmp_path):
    _check_roundtrip(src, tmp_path)


def _corpus_files():
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not present at {CORPUS}"))]
    return recordings_in(CORPUS)


@pytest.mark.parametrize("src", _corpus_files(), ids=lambda p: p.name if p else "absent")
def test_corpus_roundtrip_bit_exact(src, tmp_path):
    _check_roundtrip(src, tmp_path)


int_arrays = st.integers(1, 3).flatmap(
    lambda n_ch: st.integers(1, 3000).flatmap(
        lambda n: st.sampled_from(["const", "walk", "full32", "bits24", "saturate"]).map(
            lambda kind: (kind, n_ch, n))))


@settings(max_examples=40, deadline=None)
@given(int_arrays, st.integers(0, 2**32 - 1))
def test_lpc_codec_exact_on_synthetic_signals(spec, seed):
    kind, n_ch, n = spec
    rng = np.random.default_rng(seed)
    if kind == "const":
        x = np.full((n_ch, n), rng.integers(-2**31, 2**31), np.int64)
    elif kind == "walk":
        x = np.cumsum(rng.integers(-50, 51, (n_ch, n)), axis=1)
        x[:, rng.integers(0, n, 3)] += 30000  # spikes
    elif kind == "full32":
        x = rng.integers(-2**31, 2**31, (n_ch, n))
        x[:, ::2] = 2**31 - 1
    elif kind == "bits24":
        x = rng.integers(-2**23, 2**23, (n_ch, n))
    else:
        x = np.clip(np.cumsum(rng.integers(-3000, 3001, (n_ch, n)), axis=1), -32768, 32767)
    codec = LPCCodec()
    assert np.array_equal(codec.decode(codec.encode(x)), x)


def _assert_rejected(args, bad, tmp_path):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert bad.name in result.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".bc.h5", ".tmp", ".bctmp"))]


def test_cli_missing_path(tmp_path):
    _assert_rejected(["compress", str(tmp_path / "nope.edf")], tmp_path / "nope.edf", tmp_path)


def test_cli_truncated_edf(tmp_path):
    bad = tmp_path / "cut.edf"
    bad.write_bytes((SAMPLES / "Subject00_2.edf").read_bytes()[:300])
    _assert_rejected(["compress", str(bad)], bad, tmp_path)


def test_cli_text_named_edf(tmp_path):
    bad = tmp_path / "notes.edf"
    bad.write_text("this is not an EDF file\n" * 20)
    _assert_rejected(["compress", str(bad)], bad, tmp_path)


def test_cli_zero_channels(tmp_path):
    head = bytearray((SAMPLES / "Subject00_2.edf").read_bytes()[:256])
    head[184:192] = b"256     "  # header bytes
    head[252:256] = b"0   "  # number of signals
    bad = tmp_path / "empty.edf"
    bad.write_bytes(bytes(head))
    _assert_rejected(["compress", str(bad)], bad, tmp_path)


def test_source_files_listed_once(tmp_path, monkeypatch):
    """The source file (given relative or absolute) and BrainVision companions each appear once."""
    import biocompress
    from conftest import SAMPLES_DIR

    monkeypatch.chdir(SAMPLES_DIR)
    dst = biocompress.compress("test_NO.vhdr", tmp_path / "no.bc.h5")
    with biocompress.open(dst) as arc:
        names = [f["name"] for f in arc.source["files"]]
    assert sorted(names) == ["test_NO.eeg", "test_NO.vhdr", "test_NO.vmrk"]
    assert arc.source["source_bytes"] == sum((SAMPLES_DIR / n).stat().st_size for n in names)
