"""--max-prdn's calibration of the wavelet coders on the recording itself: stretches cut as the
stream cuts blocks, each channel's largest step within the aim, and what the archive then holds."""

from __future__ import annotations

import mne
import numpy as np
import pytest

import biocompress
from biocompress.codecs.base import WAVELET_IDS
from biocompress.codecs.lossy.rate import NEAR_AIM, Moments, Stretches, largest_steps, prdn_per_channel
from biocompress.codecs.lossy.wavelet import ContextWaveletCodec
from biocompress.errors import BadInputError
from biocompress.files import compress_lossy


def _signals(n_ch: int, n: int, seed: int = 0) -> np.ndarray:
    """Random walks with some alpha and a little noise, each channel at its own scale (volts)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 250.0
    x = np.cumsum(rng.standard_normal((n_ch, n)), axis=1) * 0.05
    x += np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, (n_ch, 1))) + 0.3 * rng.standard_normal((n_ch, n))
    return x * np.geomspace(5e-6, 60e-6, n_ch)[:, None]


def test_stretches_measure_the_prdn_of_blocks_coded_alone():
    x = _signals(5, 3000)
    blocks = [x[:, :1024], x[:, 1024:2048], x[:, 2048:]]
    codec = ContextWaveletCodec(6, x.std(axis=1) * 0.4, x.mean(axis=1))
    decoded = np.concatenate([codec.decode(codec.encode(b)) for b in blocks], axis=1)
    p, size = Stretches(blocks, whole=True).prdn(codec, 0, 5)
    np.testing.assert_allclose(p, prdn_per_channel(x, decoded), rtol=1e-12)
    assert size == sum(len(codec.encode(b)) for b in blocks)
    p_some, _ = Stretches(blocks, whole=True).prdn(ContextWaveletCodec(6, codec.steps[1:3], codec.means[1:3]), 1, 3)
    np.testing.assert_allclose(p_some, p[1:3], rtol=1e-12)
    flat = np.vstack([x[:2], np.full((1, 3000), 4e-6)])
    p_flat, _ = Stretches([flat], whole=True).prdn(ContextWaveletCodec(6, [1e-6] * 3, [0.0] * 3), 0, 3)
    assert np.isnan(p_flat[2]) and np.isfinite(p_flat[:2]).all()


def test_moments_merged_block_by_block_are_those_of_the_whole_even_far_from_zero():
    x = _signals(3, 5000) + np.array([[0.0], [0.5], [-200.0]])  # volts: offsets far above the µV signal
    m = Moments(3)
    for t0 in range(0, 5000, 1024):
        m.add(x[:, t0 : t0 + 1024])
    assert m.n == 5000
    np.testing.assert_allclose(m.mean, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(m.centred, ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1), rtol=1e-6)


def test_sampled_stretches_weigh_their_error_against_the_whole_recording():
    """Blocks 0 and 2 of a recording that drifts up, then down, its middle block at its mean:
    the error per sample they show, over all the samples, against the whole recording's
    centred energy (judged alone, they would see the drift's energy and not the middle's error)."""
    x = _signals(4, 3 * 1024, seed=2)
    x -= x.mean(axis=1, keepdims=True)
    x[:, :1024] += 3 * x.std(axis=1, keepdims=True)
    x[:, 2048:] -= 3 * x.std(axis=1, keepdims=True)
    blocks = [x[:, t0 : t0 + 1024] for t0 in (0, 1024, 2048)]
    codec = ContextWaveletCodec(6, x.std(axis=1) * 0.3, x.mean(axis=1))
    moments = Moments(4)
    for b in blocks:
        moments.add(b)
    sampled, _ = Stretches([blocks[0], blocks[2]], whole=False, moments=moments).prdn(codec, 0, 4)
    e2 = sum(((codec.decode(codec.encode(b)) - b) ** 2).sum(axis=1) for b in (blocks[0], blocks[2]))
    expected = 100 * np.sqrt(e2 * 1.5 / moments.centred)
    np.testing.assert_allclose(sampled, expected, rtol=1e-9)
    alone, _ = Stretches([blocks[0], blocks[2]], whole=False).prdn(codec, 0, 4)
    truth = prdn_per_channel(x, np.concatenate([codec.decode(codec.encode(b)) for b in blocks], axis=1))
    assert (np.abs(sampled - truth) < np.abs(alone - truth)).all()  # nearer than the blocks judged alone


@pytest.mark.parametrize("exponent", [1.0, 0.6, 0.3])
def test_largest_steps_home_in_under_the_aim(exponent):
    """Channels whose PRDN grows as step^exponent (coarse steps: slower than the step), each
    from its own scale; a flat channel (NaN) takes any step."""
    scale = np.array([0.5, 3.0, 40.0, 1.0])
    calls = []

    def judge(steps):
        calls.append(steps.copy())
        p = scale * steps**exponent
        p[3] = np.nan
        return p

    aim = 10.0
    steps = largest_steps(judge, np.full(4, 2.0), aim, rounds=8)
    p = scale[:3] * steps[:3] ** exponent
    assert (p <= aim).all() and (p >= 0.97 * NEAR_AIM * aim).all(), p
    assert len(calls) == 8 and steps[3] >= 2.0


def test_largest_steps_fall_back_where_no_step_held():
    steps = largest_steps(lambda s: np.full(s.shape, 1e9), np.array([8.0, 2.0]), 5.0, rounds=3)
    np.testing.assert_allclose(steps, [2.0, 0.5])


def _raw(x, sfreq=250.0):
    return mne.io.RawArray(x, mne.create_info([f"E{i}" for i in range(len(x))], sfreq, "eeg"), verbose="ERROR")


def test_stretches_cover_a_short_recording_whole_and_sample_a_long_one(monkeypatch):
    raw = _raw(_signals(4, 5000))
    whole = compress_lossy._stretches(raw, None, 1024, None)
    assert whole.whole and [b.shape[1] for b in whole.blocks] == [1024] * 4 + [904]
    np.testing.assert_array_equal(np.concatenate(whole.blocks, axis=1), raw.get_data())
    monkeypatch.setattr(compress_lossy, "CALIBRATION_VALUES", 3 * 4 * 1024)  # room for three blocks of five
    some = compress_lossy._stretches(raw, None, 1024, None)
    assert not some.whole and len(some.blocks) == 3
    np.testing.assert_array_equal(some.blocks[0], raw.get_data()[:, :1024])  # the first and the last included
    np.testing.assert_array_equal(some.blocks[-1], raw.get_data()[:, 4096:])


def test_a_sample_not_finite_later_in_the_recording_is_named_before_anything_is_written(tmp_path):
    x = _signals(4, 5000)
    x[2, 4500] = np.nan
    with pytest.raises(BadInputError, match="E2.*4500"):
        biocompress.compress(_raw(x), tmp_path / "t.bc.h5", mode="lossy", max_prdn=10.0, block_samples=1024)
    assert not list(tmp_path.iterdir())


def _drifting(seed: int = 3) -> np.ndarray:
    x = _signals(6, 5 * 1024, seed=seed)
    x[:, 2048:] *= np.linspace(1.0, 3.0, x.shape[1] - 2048)  # louder later: the first block is not typical
    return x


@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("target", [5.0, 10.0])
def test_wavelet_coders_calibrated_on_every_block_put_each_channel_just_under_the_target(target, tmp_path):
    """Five blocks whose level drifts: fitted to the first block alone, the steps would miss the
    target on the others or fall well under it."""
    x = _drifting()
    dst = biocompress.compress(_raw(x), tmp_path / "t.bc.h5", mode="lossy", max_prdn=target, block_samples=1024)
    y = biocompress.read_raw(dst, verbose="ERROR").get_data()
    with biocompress.open(dst) as arc:
        ids = {c["id"] for c in arc.codec_configs}
    p = prdn_per_channel(x, y)
    assert p.max() <= target
    if ids & set(WAVELET_IDS):
        assert p.mean() >= 0.9 * target, (ids, p)


@pytest.mark.filterwarnings("ignore:.*approximate the source")
def test_calibrated_on_blocks_spread_over_a_longer_recording_the_target_still_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(compress_lossy, "CALIBRATION_VALUES", 2 * 6 * 1024)  # two blocks of five
    x = _drifting(seed=4)
    dst = biocompress.compress(_raw(x), tmp_path / "t.bc.h5", mode="lossy", max_prdn=10.0, block_samples=1024)
    p = prdn_per_channel(x, biocompress.read_raw(dst, verbose="ERROR").get_data())
    with biocompress.open(dst) as arc:
        assert arc.mode == "lossy" and float(arc.lossy_attrs["max_prdn"]) == 10.0
    assert p.max() <= 10.0 and p.mean() >= 0.8 * 10.0


@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("values", [None, 3 * 6 * 1024])  # every block; three of eight (block 2 left out)
def test_a_channel_flat_where_calibrated_but_not_elsewhere_is_coded_within_the_target(values, tmp_path,
                                                                                       monkeypatch):
    """A DC channel that holds one value for a while, then moves (sEEG recordings have them):
    flat on the stretches, its spread there is float rounding. It must neither overflow the
    wavelet coders' steps nor escape the target."""
    if values:
        monkeypatch.setattr(compress_lossy, "CALIBRATION_VALUES", values)
    x = _signals(6, 8 * 1024, seed=5)
    x[5] = 8.804346074617048e-3 + np.where(np.arange(x.shape[1]) % 2, 1.7e-18, 0.0)  # a float's last bits
    x[5, 2048:3072] -= np.linspace(0, 1.5e-3, 1024)  # moves in block 2 only
    dst = biocompress.compress(_raw(x), tmp_path / "t.bc.h5", mode="lossy", max_prdn=10.0, block_samples=1024)
    p = prdn_per_channel(x, biocompress.read_raw(dst, verbose="ERROR").get_data())
    assert p.max() <= 10.0


def test_stretches_leave_channels_flat_but_for_rounding_out_of_the_prdn():
    x = _signals(3, 2048)
    x[2] = 8.804346074617048e-3 + np.where(np.arange(2048) % 2, 1.7e-18, 0.0)  # a float's last bits
    s = Stretches([x], whole=True)
    assert s.flat.tolist() == [False, False, True]
    p, _ = s.prdn(ContextWaveletCodec(6, [1e-6, 1e-6, 1e-6], x.mean(axis=1)), 0, 3)
    assert np.isnan(p[2]) and np.isfinite(p[:2]).all()


def _montage(n_ch: int = 64, n: int = 3 * 1024, seed: int = 6) -> np.ndarray:
    """A dense montage: every channel a mix of four sources, plus a little noise of its own."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_ch, 4)) @ _signals(4, n, seed) + 2e-7 * rng.standard_normal((n_ch, n))


@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("values", [None, 2 * 64 * 1024, 64 * 1024])  # every block; two of three; the first
def test_a_dense_montage_stores_only_the_components_it_codes_where_every_block_was_seen(values, tmp_path,
                                                                                         monkeypatch):
    """Calibrated on the whole recording, sdwt-v4 leaves out the rotation's columns of the
    components that round to zero everywhere; calibrated on some blocks, it keeps them all (a
    block not seen could need them). The target holds either way."""
    if values:
        monkeypatch.setattr(compress_lossy, "CALIBRATION_VALUES", values)
    x = _montage()
    dst = biocompress.compress(_raw(x), tmp_path / "t.bc.h5", mode="lossy", max_prdn=10.0, block_samples=1024)
    p = prdn_per_channel(x, biocompress.read_raw(dst, verbose="ERROR").get_data())
    with biocompress.open(dst) as arc:
        configs = {c["id"]: c for c in arc.codec_configs}
    assert p.max() <= 10.0 and len(configs) == 1 and set(configs) <= {"sdwt-v4", "sdwt-v5"}  # v5: with band gains
    (config,) = configs.values()
    if values is None:
        assert sum(config["kept"]) < 64 // 2, config["kept"]
    else:
        assert config["kept"] == config["blocks"]
