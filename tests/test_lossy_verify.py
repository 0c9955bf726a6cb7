"""`verify` of lossy and near-lossless archives: deterministic decoding, the fingerprint and its
tolerance, and the stored claims (error bound, exact channels, fidelity figures) against the source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.container import fingerprint
from biocompress.files import lossy_verify
from biocompress.codecs import pool as parallel
from biocompress.cli import app
from biocompress.codecs.lossy import near_lossless, spatial
from biocompress.codecs.lossy.ae_codec import AECodec
from biocompress.io.source import open_raw
from biocompress.files.verify import verify_archive
from conftest import REPO, SAMPLES_DIR, crafted

EEG = SAMPLES_DIR / "Subject00_2.edf"
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lossy_verify")
    return {
        "lossy": biocompress.compress(EEG, folder / "q3.bc.h5", mode="lossy", quality=3),
        "near-lossless": biocompress.compress(EEG, folder / "nl.bc.h5", mode="near-lossless", max_error_uv=2.0),
    }


@pytest.fixture
def copy_of(archives, tmp_path):
    def make(kind):
        return shutil.copyfile(archives[kind], tmp_path / archives[kind].name)
    return make


@pytest.fixture
def in_process(monkeypatch):
    """Decode in this process (the read pool's workers would not see a monkeypatched decoder)."""
    monkeypatch.setattr(parallel, "read_pool", lambda: None)


def _cli(args, one_thread: bool):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    prefix = []
    if one_thread:
        env.update(ONE_THREAD)
        prefix = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    return subprocess.run(prefix + [sys.executable, "-m", "biocompress.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.parametrize("one_thread", [False, True], ids=["default-threads", "one-cpu-one-thread"])
@pytest.mark.parametrize("kind", ["lossy", "near-lossless"])
def test_clean_lossy_archive_verifies_bit_identical_on_any_thread_count(archives, kind, one_thread):
    """The decoder gives the same floats on one CPU and BLAS/torch thread as with the defaults."""
    res = _cli(["verify", archives[kind]], one_thread)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bit-identical" in words(res.stdout)
    res = _cli(["verify", archives[kind], EEG], one_thread)
    assert res.returncode == 0, res.stdout + res.stderr
    out = words(res.stdout)
    assert "stored figures agree with the source" in out and "source file sha256: matches" in out
    if kind == "near-lossless":
        assert "every sample of 21 channel(s) within 2 µV" in out


def test_fixed_order_product_matches_blas_and_ignores_thread_count():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, z = rng.standard_normal((37, 37)), rng.standard_normal((37, 5000))
    got = spatial.fixed_order_product(a, z)
    np.testing.assert_allclose(got, a @ z, rtol=0, atol=1e-12)
    with threadpool_limits(1):
        assert np.array_equal(spatial.fixed_order_product(a, z), got)
    expected = np.zeros_like(got)  # the documented order: k = 0, 1, … for every output
    for k in range(a.shape[1]):
        expected += a[:, k : k + 1] * z[k]
    assert np.array_equal(got, expected)


def test_float_rounding_elsewhere_is_within_tolerance(archives, in_process, monkeypatch):
    """A machine whose floats differ in the last places: sha256 differs, fingerprint holds, exit 0."""
    decode = AECodec.decode
    monkeypatch.setattr(AECodec, "decode", lambda self, payload: decode(self, payload) * (1 + 1e-12))
    res = invoke("verify", archives["lossy"])
    assert res.exit_code == 0, res.output
    assert "within tolerance (max deviation" in words(res.output) and "bit-identical" not in res.output


def test_decoded_value_outside_tolerance_fails(archives, in_process, monkeypatch):
    decode = AECodec.decode

    def off(self, payload):
        y = decode(self, payload)
        y[3] += 1e-3 * y[3].std()  # far below the lossy error, far above float rounding
        return y
    monkeypatch.setattr(AECodec, "decode", off)
    res = invoke("verify", archives["lossy"])
    assert res.exit_code == 1, res.output
    out = words(res.output)
    assert "samples MISMATCH" in out and "FAILED" in out


def test_near_lossless_codes_one_off_are_within_tolerance_more_are_not(archives, in_process, monkeypatch):
    """FORMAT.md §8.8: a sketch rounded one code off elsewhere moves decoded codes by at most one."""
    rounded = near_lossless._rounded
    rng = np.random.default_rng(1)
    monkeypatch.setattr(near_lossless, "_rounded", lambda x: rounded(x) + rng.integers(0, 2, x.shape))
    res = invoke("verify", archives["near-lossless"], EEG)
    assert res.exit_code == 0, res.output
    assert "within tolerance" in words(res.output) and "within 2 µV" in words(res.output)
    monkeypatch.setattr(near_lossless, "_rounded", lambda x: rounded(x) + 4)
    res = invoke("verify", archives["near-lossless"])
    assert res.exit_code == 1 and "samples MISMATCH" in words(res.output)


def test_corrupted_fingerprint_fails(copy_of):
    arc = copy_of("lossy")
    with crafted(arc) as f:  # resealed: the fingerprint check itself must catch it
        ds = f["fidelity/fingerprint"]
        row = ds[1]
        row[5, 1] *= 1.01
        ds[1] = row
    res = invoke("verify", arc)
    assert res.exit_code == 1 and "FAILED" in res.output
    assert not verify_archive(arc)["ok"]


def test_fingerprint_layout(archives):
    with biocompress.open(archives["lossy"]) as arc:
        n_samples, n_ch = arc.n_samples, arc.n_channels
        fp, window = fingerprint.read(arc)
    assert fp.shape == (-(-n_samples // window), n_ch, 2)
    x = biocompress.open(archives["lossy"]).read(0, min(window, n_samples))
    np.testing.assert_allclose(fp[0, :, 0], x.mean(axis=1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(fp[0, :, 1], x.std(axis=1), rtol=1e-9, atol=0)


def test_window_stats_in_pieces_agree_with_one_pass():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((5, 10000)) * 1e-5 + np.array([[0], [1e-2], [-3.0], [0], [40.0]])
    stats = fingerprint.WindowStats()
    for a in range(0, 10000, 3333):
        stats.add(y[:, a : a + 3333])
    got = stats.result()
    spread = y.std(axis=1)
    assert (np.abs(got[:, 0] - y.mean(axis=1)) <= 1e-12 * spread).all()  # far below the 1e-5 tolerance
    assert (np.abs(got[:, 1] - spread) <= 1e-9 * spread).all()


def test_fingerprint_declaring_more_than_the_file_is_corrupt(copy_of):
    arc = copy_of("lossy")
    with crafted(arc) as f:
        f["fidelity/fingerprint"].attrs["window"] = np.int64(1)  # 31,000 windows declared: shape mismatch
    res = invoke("verify", arc)
    assert res.exit_code == 1 and "fingerprint" in res.output


def test_archive_without_fingerprint_still_verifies_bit_exact(copy_of):
    """Archives written before fingerprints: the hash alone."""
    arc = copy_of("lossy")
    with crafted(arc) as f:
        del f["fidelity/fingerprint"]
    res = invoke("verify", arc)
    assert res.exit_code == 0 and "bit-identical" in res.output


def test_source_check_fails_on_a_bound_exceeded_or_a_false_figure(archives, in_process, monkeypatch):
    with biocompress.open(archives["near-lossless"]) as arc:
        raw = open_raw(EEG)
        ok, lines = lossy_verify.check_claims(arc, raw)
        assert ok, lines
        arc.fidelity["overall"]["prdn"] *= 0.9  # a claim the source does not support
        ok, lines = lossy_verify.check_claims(arc, raw)
        assert not ok and "DISAGREE" in lines[-1] and "prdn" in lines[-1]
    decode = near_lossless.NearLosslessCodec.decode

    def beyond(self, payload):
        out = decode(self, payload)
        out[2, 100] += self.deltas[2] + 1  # one code beyond the channel's bound
        return out
    monkeypatch.setattr(near_lossless.NearLosslessCodec, "decode", beyond)
    res = invoke("verify", archives["near-lossless"], EEG)
    assert res.exit_code == 1
    assert "error bound EXCEEDED" in words(res.output)


def test_lossy_trigger_channels_checked_exact_against_source(tmp_path):
    src = SAMPLES_DIR / "test_bdf_stim_channel.bdf"
    arc = biocompress.compress(src, tmp_path / "s.bc.h5", mode="lossy", quality=2)
    res = invoke("verify", arc, src)
    assert res.exit_code == 0, res.output
    assert "exact channels: 1 bit-exact" in words(res.output)
