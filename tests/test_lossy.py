"""Lossy and near-lossless modes: codecs, streaming without seams, error bounds, archives, CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import biocompress
from biocompress.codecs.base import WAVELET_IDS
from biocompress.cli import app
from biocompress.errors import CorruptArchiveError
from biocompress.codecs.lossy import model_file
from biocompress.codecs import get_codec
from biocompress.codecs.lossy.ae_codec import QUALITY_STEPS, AECodec
from biocompress.codecs.lossy.grid import STEPS_PER_BOUND, GridCodec, grid_for
from biocompress.codecs.lossy.spatial_wavelet import (ContextSpatialWaveletCodec, EnergySpatialWaveletCodec,
                                                      PrunedSpatialWaveletCodec, SpatialWaveletCodec)
from biocompress.codecs.lossy import wavelet
from biocompress.codecs.lossy.wavelet import ContextWaveletCodec, WaveletCodec, steps_for
from biocompress.codecs.lossy.equalizer import encode_codes, with_gains
from biocompress.codecs.lossy.near_lossless import NearLosslessCodec, dpcm_decode, dpcm_encode
from biocompress.codecs.lossy.rate import prdn_per_channel
from biocompress.io.source import open_raw
from codec_conformance import check_lossy_codec
from conftest import SAMPLES_DIR, assert_bitwise_equal, copy_sample, leftovers, synthetic_raw

EEG = SAMPLES_DIR / "Subject00_2.edf"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def eeg_values(n: int = 12000) -> np.ndarray:
    return open_raw(EEG).get_data(start=0, stop=n)


def eeg_codes(n: int = 12000) -> np.ndarray:
    from biocompress.io.codes import read_codes

    return read_codes(EEG).codes[:, :n]


# --- codecs --------------------------------------------------------------------------------
@pytest.mark.parametrize("quality", sorted(QUALITY_STEPS))
def test_ae_codec_conformance(quality):
    x = eeg_values(6000)
    codec = AECodec.for_stream(x, quality=quality)
    check_lossy_codec(codec, x, max_prdn=40.0)


def test_near_lossless_codec_conformance():
    codes = eeg_codes(6000)
    deltas = np.full(codes.shape[0], 300)
    codec = NearLosslessCodec(AECodec.for_stream(codes.astype(float), step=2.0).get_config(), deltas)
    check_lossy_codec(codec, codes, max_error=deltas)


def test_grid_codec_conformance():
    x = eeg_values(6000)
    bounds = 0.05 * x.std(axis=1)
    grid, offsets = grid_for(x, bounds)
    codes = np.rint((x - offsets[:, None]) / grid[:, None])
    inner = NearLosslessCodec(AECodec.for_stream(codes, step=2.0).get_config(), [STEPS_PER_BOUND] * x.shape[0])
    codec = GridCodec(grid, offsets, inner.get_config())
    # within the bound in grid steps, plus half a step for the rounding onto the grid
    check_lossy_codec(codec, x, max_error=(STEPS_PER_BOUND + 0.5) * grid * (1 + 1e-9))


@pytest.mark.parametrize("change", [
    {"grid": [0.0, 1.0]}, {"grid": [float("nan"), 1.0]}, {"grid": [-1.0, 1.0]}, {"offsets": [0.0, float("inf")]},
    {"grid": [1.0, 1.0, 1.0]}, {"inner": {"id": "lpc-v4"}}, {"inner": "nl-v1"},
])
def test_grid_codec_refuses_configs_it_cannot_use(change):
    x = eeg_values(600)[:2]
    inner = NearLosslessCodec(AECodec.for_stream(x, step=2.0).get_config(), [4, 4]).get_config()
    config = {"id": "grid-v1", "grid": [1e-6, 1e-6], "offsets": [0.0, 0.0], "inner": inner, **change}
    with pytest.raises(CorruptArchiveError):
        get_codec(config)


def test_grid_codec_refuses_values_off_its_grid():
    x = eeg_values(600)[:2]
    inner = NearLosslessCodec(AECodec.for_stream(x, step=2.0).get_config(), [4, 4]).get_config()
    codec = GridCodec([1e-30, 1e-30], [0.0, 0.0], inner)
    with pytest.raises(ValueError):
        codec.encode(x)
    x[0, 5] = np.nan
    with pytest.raises(ValueError):
        GridCodec([1e-6, 1e-6], [0.0, 0.0], inner).encode(x)


@pytest.mark.parametrize("n", [6000, 700, 9, 2])  # 9, 2: too short for 5 levels (fewer, or none)
@pytest.mark.parametrize("cls", [WaveletCodec, ContextWaveletCodec])
def test_wavelet_codec_conformance(n, cls):
    x = eeg_values(6000)[:, :n]
    codec = cls(5, steps_for(x, 10.0), x.mean(axis=1))
    check_lossy_codec(codec, x, max_prdn=20.0)


@pytest.mark.parametrize("change", [
    {"levels": 0}, {"levels": 9}, {"levels": 2.0}, {"steps": [0.0, 1.0]}, {"steps": [float("nan"), 1.0]},
    {"means": [0.0, float("inf")]}, {"steps": [1.0, 1.0, 1.0]},
])
@pytest.mark.parametrize("codec_id", ["dwt-v1", "dwt-v2"])
def test_wavelet_codec_refuses_configs_it_cannot_use(change, codec_id):
    with pytest.raises(CorruptArchiveError):
        get_codec({"id": codec_id, "levels": 5, "steps": [1e-6, 1e-6], "means": [0.0, 0.0], **change})


@pytest.mark.parametrize("n", [6000, 700, 9, 2])
@pytest.mark.parametrize("channels", [1, 4, 40])  # 40: two blocks of the rotation (32 + 8)
@pytest.mark.parametrize("cls", [SpatialWaveletCodec, ContextSpatialWaveletCodec, EnergySpatialWaveletCodec,
                                 PrunedSpatialWaveletCodec])
def test_spatial_wavelet_codec_conformance(n, channels, cls):
    x = np.vstack([eeg_values(6000)] * 10)[:channels, :n] * np.linspace(1, 3, channels)[:, None]
    codec = cls.fit(x, 0.3, 8, np.linspace(0.8, 1.2, channels))
    check_lossy_codec(codec, x, max_prdn=20.0)


EEG_BANDS_500 = [[lo / 500, hi / 500] for lo, hi in ((1, 4), (4, 8), (8, 13), (13, 30), (30, 45), (45, 90), (90, 250))]


def _equalized(codec_id: str, x: np.ndarray):
    """``dwt-v3`` / ``sdwt-v5`` / ``ae-v2`` over ``x``'s channels with gains in every band but on channel 0."""
    codes = np.tile([3, -5, 0, 8, -20, 12, -40], (x.shape[0], 1))
    codes[0] = 0
    if codec_id == "dwt-v3":
        return with_gains(ContextWaveletCodec(5, steps_for(x, 5.0), x.mean(axis=1)), EEG_BANDS_500, encode_codes(codes))
    if codec_id == "ae-v2":
        return with_gains(AECodec.for_stream(x, quality=3), EEG_BANDS_500, encode_codes(codes))
    base = PrunedSpatialWaveletCodec.fit(x, 0.2, 8, np.linspace(0.8, 1.2, x.shape[0]))
    return with_gains(base, EEG_BANDS_500, encode_codes(codes))


@pytest.mark.parametrize("n", [6000, 700, 9, 2])  # 9, 2: shorter than the gains act on
@pytest.mark.parametrize("codec_id", ["dwt-v3", "sdwt-v5", "ae-v2"])
def test_equalized_codec_conformance(n, codec_id):
    x = np.vstack([eeg_values(6000)] * 2)[:6, :n] * np.linspace(1, 3, 6)[:, None]
    codec = _equalized(codec_id, x)
    payload = check_lossy_codec(codec, x, max_prdn=40.0 if n >= 700 else 200.0)  # the autoencoder on 2 samples: poor
    base = get_codec({k: v for k, v in codec.get_config().items() if k not in ("bands", "gains")}
                     | {"id": {"dwt-v3": "dwt-v2", "sdwt-v5": "sdwt-v4", "ae-v2": "ae-v1"}[codec_id]})
    plain, equalized = base.decode(payload), codec.decode(payload)
    assert np.array_equal(plain[0], equalized[0])  # a channel without gains: as decoded
    assert np.array_equal(plain, equalized) == (n < 16)


@pytest.mark.parametrize("change", [
    {"bands": []}, {"bands": [[0.1, 0.05]]}, {"bands": [[0.0, 0.6]]}, {"bands": [[0.1, 0.2], [0.15, 0.3]]},
    {"bands": [[0.1, float("nan")]]}, {"bands": [[0.1, True]]}, {"bands": "x"}, {"bands": [[0.1, 0.2, 0.3]]},
    {"gains": "not base64!"}, {"gains": ""},
])
@pytest.mark.parametrize("codec_id", ["dwt-v3", "sdwt-v5", "ae-v2"])
def test_equalized_codec_refuses_configs_it_cannot_use(change, codec_id):
    config = _equalized(codec_id, eeg_values(1000)).get_config()
    with pytest.raises(CorruptArchiveError):
        get_codec({**config, **change})


def test_equalized_codec_refuses_gains_out_of_range_or_of_another_count():
    config = _equalized("dwt-v3", eeg_values(1000)).get_config()
    n_ch, k = len(config["steps"]), len(config["bands"])
    for codes in (np.full((n_ch, k), 512), np.zeros((n_ch + 1, k), np.int64), np.zeros((n_ch, k - 1), np.int64)):
        with pytest.raises(CorruptArchiveError):
            get_codec({**config, "gains": encode_codes(codes)})


def test_spatial_wavelet_rotation_is_undone_exactly_whatever_its_rounding():
    """The encoder inverts the stored 8-bit rotation: at a fine step the values come back
    within the step's error, however far the rounded matrix is from orthonormal."""
    x = eeg_values(4000)
    codec = SpatialWaveletCodec.fit(x, 1e-4, 8)
    y = codec.decode(codec.encode(x))
    scales = x.std(axis=1)
    assert (np.abs(y - x).max(axis=1) < 1e-3 * scales).all()


def test_spatial_wavelet_gains_scale_each_channel_error():
    x = np.vstack([eeg_values(8000)] * 2)[:6]
    errors = []
    for gains in (np.ones(6), np.array([1, 1, 1, 1, 1, 3.0])):
        codec = SpatialWaveletCodec.fit(x, 0.2, 8, gains)
        errors.append(prdn_per_channel(x, codec.decode(codec.encode(x))))
    assert errors[1][5] > 1.5 * errors[0][5]


@pytest.mark.parametrize("change", [
    {"levels": 0}, {"levels": 9}, {"step": 0.0}, {"step": float("nan")}, {"step": True}, {"blocks": [3]},
    {"blocks": []}, {"blocks": [33]}, {"blocks": [2.0]}, {"rotation": "!!"}, {"scales": None},
    {"offsets": "AAAA"}, {"offsets": "AAAAAAAAAAAAAAAA"},
])
@pytest.mark.parametrize("cls", [SpatialWaveletCodec, ContextSpatialWaveletCodec, EnergySpatialWaveletCodec,
                                 PrunedSpatialWaveletCodec])
def test_spatial_wavelet_codec_refuses_configs_it_cannot_use(change, cls):
    config = cls.fit(eeg_values(500)[:2], 0.3, 5).get_config()
    with pytest.raises(CorruptArchiveError):
        get_codec({**config, **change})


def test_stream_blocks_decode_alone_and_without_seams():
    """Pushed in uneven chunks, cut in blocks: each block decodes on its own to what one
    continuous decode gives (so nothing jumps at block edges)."""
    x = eeg_values(9000)
    codec = AECodec.for_stream(x, quality=3)
    enc = codec.stream(block=2048)
    blocks = []
    for a, b in [(0, 700), (700, 701), (701, 5000), (5000, 9000)]:
        blocks += enc.push(x[:, a:b])
    blocks += enc.finish()
    assert [(a, b) for a, b, _ in blocks] == [(t, min(t + 2048, 9000)) for t in range(0, 9000, 2048)]
    pieces = np.concatenate([codec.decode(p) for _, _, p in blocks], axis=1)
    whole = codec.decode(codec.encode(x))
    scale = np.abs(x).max()
    assert np.abs(pieces - whole).max() <= 1e-5 * scale
    edges = [2048 * k for k in range(1, 5)]
    err = np.abs(pieces - x)
    near = max(err[:, e - 3 : e + 3].max() for e in edges)
    assert near <= 3 * np.percentile(err, 99.9)  # the edges are no worse than the rest


def test_higher_quality_costs_more_and_errs_less():
    x = eeg_values(8000)
    sizes, errors = [], []
    for q in sorted(QUALITY_STEPS):
        codec = AECodec.for_stream(x, quality=q)
        payload = codec.encode(x)
        sizes.append(len(payload))
        errors.append(np.linalg.norm(codec.decode(payload) - x))
    assert sizes == sorted(sizes) and errors == sorted(errors, reverse=True)


def test_every_channel_gets_a_like_relative_error_whatever_its_scale():
    """An auxiliary channel 500× larger than the EEG (a clinical montage's 50 mV channels) takes
    no more than its share: each channel is scaled by its own spread, so each EEG channel's
    PRDN stays near the others' (one scale per unit left them at ~100 %)."""
    x = eeg_values(8000)
    x[3] *= 500
    codec = AECodec.for_stream(x, quality=3)
    y = codec.decode(codec.encode(x))
    prdn = 100 * np.linalg.norm(y - x, axis=1) / np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=1)
    assert prdn.max() < 2 * np.median(prdn) and prdn.max() < 50, prdn.round(1)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delta=st.integers(0, 60), seed=st.integers(0, 2**16), spikes=st.booleans())
def test_near_lossless_never_exceeds_delta(delta, seed, spikes):
    rng = np.random.default_rng(seed)
    codes = np.cumsum(rng.integers(-80, 81, (3, 1500)), axis=1)
    if spikes:
        codes[1, rng.integers(0, 1500, 5)] += 20000
    codes[2] = np.arange(1500)  # a counter: with δ = 0 it must come back exactly
    codec = NearLosslessCodec(AECodec.for_stream(codes.astype(float), step=1.0).get_config(), [delta] * 3)
    back = codec.decode(codec.encode(codes))
    assert np.abs(back - codes).max() <= delta
    if delta == 0:
        assert np.array_equal(back, codes)


def test_dpcm_baseline_bound_and_round_trip():
    codes = eeg_codes(5000)
    for delta in (0, 7, 500):
        payload, recon = dpcm_encode(codes, delta)
        assert np.array_equal(dpcm_decode(payload), recon)
        assert np.abs(recon - codes).max() <= delta


# --- archives ----------------------------------------------------------------------------
def test_lossy_archive_fidelity_warning_and_info(tmp_path):
    src = copy_sample("Subject00_2.edf", tmp_path)
    dst = biocompress.compress(src, tmp_path / "q3.bc.h5", mode="lossy", quality=3)
    ref = open_raw(src).get_data()
    with pytest.warns(UserWarning, match="lossy archive") as record:
        raw = biocompress.read_raw(dst)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        biocompress.read_raw(dst)  # once per archive
    x = raw.get_data()
    prdn = 100 * np.linalg.norm(x - ref) / np.linalg.norm(ref - ref.mean(axis=1, keepdims=True))
    with biocompress.open(dst) as arc:
        stored = arc.fidelity["overall"]
        assert arc.mode == "lossy"
    assert stored["prdn"] == pytest.approx(prdn, rel=1e-6)
    assert 0 < prdn < 15
    assert src.stat().st_size / dst.stat().st_size > 8
    res = invoke("info", dst, "--json")
    summary = json.loads(res.output)
    assert summary["lossy"]["quality"] == 3 and summary["lossy"]["mode"] == "lossy"
    assert summary["fidelity"]["overall"]["prdn"] == pytest.approx(prdn, rel=1e-6)  # numbers, not text
    assert isinstance(summary["fidelity"]["headline"]["prdn_mean"], float)
    assert "quality 3" in invoke("info", dst).output
    assert invoke("verify", dst).exit_code == 0
    assert leftovers(tmp_path) == []


def test_near_lossless_archive_bound_and_counter(tmp_path):
    raw = synthetic_raw()  # integer codes × cal, channel 0 a counter
    cal_uv = 1e-7 * 1e6
    dst = biocompress.compress(raw, tmp_path / "nl.bc.h5", mode="near-lossless", max_error_uv=40 * cal_uv)
    back = biocompress.read_raw(dst).get_data()
    ref = raw.get_data()
    assert np.abs(back - ref).max() <= 40 * 1e-7 * (1 + 1e-9)
    exact = biocompress.compress(raw, tmp_path / "nl0.bc.h5", mode="near-lossless", max_error_uv=0.5 * cal_uv)
    counter = biocompress.read_raw(exact).get_data()[0]
    assert_bitwise_equal(counter, ref[0])  # δ below one code: every sample, none lost or moved


def test_cli_lossy_modes_and_clear_errors(tmp_path):
    src = copy_sample("Subject00_2.edf", tmp_path)
    res = invoke("compress", src, "--mode", "lossy")
    assert res.exit_code == 2 and "--quality" in res.output
    res = invoke("compress", src, "--mode", "lossy", "--quality", "9")
    assert res.exit_code == 2 and "quality" in res.output
    vhdr = copy_sample("test_NO.vhdr", tmp_path)
    res = invoke("compress", vhdr, "--mode", "near-lossless", "--max-error", "1")
    assert res.exit_code == 2 and "integer" in res.output and "test_NO.vhdr" in " ".join(res.output.split())
    assert not (tmp_path / "test_NO.bc.h5").exists()
    res = invoke("compress", src, "--mode", "near-lossless", "--max-error", "2", "-o", tmp_path / "nl.bc.h5")
    assert res.exit_code == 0, res.output
    res = invoke("report", tmp_path / "nl.bc.h5", "--source", src, "-o", tmp_path / "report.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(tmp_path) == []


def test_train_cli_and_model_stored_in_archive(tmp_path):
    """A (very short) training run on the samples; archives made with the model carry it."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("Subject00_2.edf", "MB0400FU.EDF"):
        copy_sample(name, data)
    model = tmp_path / "mine.pt"
    res = invoke("train", data, "-o", model, "--minutes", "0.05")
    assert res.exit_code == 0, res.output
    dst = biocompress.compress(data / "Subject00_2.edf", tmp_path / "m.bc.h5", mode="lossy", quality=2, model=model)
    mid = model_file.load(model)[2]["model_id"]
    model_file._BY_ID.pop(mid)
    model_file._CACHE.clear()
    with biocompress.open(dst) as arc:  # found inside the archive, not on disk
        assert "model" in arc.h5["lossy"] and arc.read(0, 100).shape == (21, 100)


def test_near_lossless_bound_survives_a_sketch_rounded_one_code_off(monkeypatch):
    """Another machine may round the autoencoder's output one code differently: the bound holds."""
    from biocompress.codecs.lossy import near_lossless

    codes = eeg_codes(4000)
    deltas = np.array([0, 1, 2, 50] + [300] * (codes.shape[0] - 4))
    codec = NearLosslessCodec(AECodec.for_stream(codes.astype(float), step=1.0).get_config(), deltas)
    payload = codec.encode(codes)
    rng = np.random.default_rng(0)
    rounded = near_lossless._rounded
    monkeypatch.setattr(near_lossless, "_rounded", lambda x: rounded(x) + rng.integers(-1, 2, x.shape))
    back = codec.decode(payload)
    assert (np.abs(back - codes) <= deltas[:, None]).all()
    assert np.array_equal(back[0], codes[0])  # δ = 0: exact


def test_lossy_keeps_trigger_channels_exact(tmp_path):
    """Stim channels are event codes, not signals: a lossy archive keeps them bit for bit."""
    src = copy_sample("test_bdf_stim_channel.bdf", tmp_path)
    ref = open_raw(src)
    stim = [i for i, t in enumerate(ref.get_channel_types()) if t == "stim"]
    assert stim
    dst = biocompress.compress(src, tmp_path / "s.bc.h5", mode="lossy", quality=1)
    with pytest.warns(UserWarning):
        got = biocompress.read_raw(dst).get_data()
    assert_bitwise_equal(got[stim], ref.get_data()[stim])
    with biocompress.open(dst) as arc:
        ids = {c["id"] for c in arc.codec_configs}
        lossy = ids & {"ae-v1", "ae-v2", "nl-v1", "grid-v1", *WAVELET_IDS}
        assert lossy and ids - lossy and ids - lossy <= {"lpc-v4", "lzma-v1"}  # stim: lossless


@pytest.mark.parametrize("step", [0.05, 0.5, 2.0])
def test_energy_offsets_give_each_sub_band_its_energy_back(step):
    """sdwt-v3: per sub-band, sign(q)·(|q| − δ) has the energy the coefficients had (within the
    offset's resolution), where rounding alone leaves too much or too little."""
    from biocompress.codecs.lossy import wavelet

    x = eeg_values(4000) / eeg_values(4000).std(axis=1, keepdims=True)
    steps = np.full(len(x), step)
    u = wavelet.coefficients(x, steps, 8)
    q = wavelet.quantize(u)
    sizes = wavelet.band_sizes(x.shape[1], 8)
    offsets = wavelet.energy_offsets(u, q, sizes, steps**2)
    ends = np.cumsum(sizes)
    moved = 0
    for (a, b), delta in zip(zip(ends - sizes, ends), offsets / wavelet.OFFSET_SCALE):
        source, rounded = (u[:, a:b] ** 2).sum(), (q[:, a:b] ** 2).sum()
        kept = ((q[:, a:b] - np.sign(q[:, a:b]) * delta) ** 2).sum()
        if not (q[:, a:b] != 0).any():
            continue
        if -0.5 < delta < 127 / 256:  # not at the end of the range: the energy is matched
            assert abs(kept - source) <= 0.02 * source + 1e-9
            moved += abs(rounded - source) > 0.02 * source
        else:
            assert abs(kept - source) < abs(rounded - source)
    assert step < 0.5 or moved  # coarse steps: rounding alone missed some sub-band's energy


@pytest.mark.parametrize("change", [
    {"kept": None}, {"kept": []}, {"kept": [3]}, {"kept": [-1]}, {"kept": [1.0]}, {"kept": [True]}, {"kept": [1, 1]},
    {"kept": [2]},  # the rotation then holds too few entries
])
def test_sdwt_v4_refuses_kept_counts_it_cannot_use(change):
    config = PrunedSpatialWaveletCodec.pruned(EnergySpatialWaveletCodec.fit(eeg_values(500)[:2], 18.0, 5),
                                              [eeg_values(500)[:2]]).get_config()
    assert config["kept"] == [1]
    with pytest.raises(CorruptArchiveError):
        get_codec({**config, **change})


def correlated_channels(n_ch: int = 40, n: int = 5000, seed: int = 0) -> np.ndarray:
    """Channels mixing three random walks, plus a little noise of their own: few components."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_ch, 3)) @ np.cumsum(rng.standard_normal((3, n)), axis=1) + \
        0.01 * rng.standard_normal((n_ch, n))


@pytest.mark.parametrize("step", [1.0, 1e4])
def test_sdwt_v4_leaves_out_components_that_round_to_zero_and_codes_as_sdwt_v3(step):
    """Pruned on the blocks it then codes, sdwt-v4 stores only the columns of components with a
    non-zero coefficient, in a smaller configuration, and codes about as sdwt-v3 does (its
    scales and offsets rounded, the components kept refitted)."""
    x = correlated_channels()
    blocks = [x[:, :2500], x[:, 2500:]]
    full = EnergySpatialWaveletCodec.fit(x, step, 8)
    pruned = PrunedSpatialWaveletCodec.pruned(full, blocks)
    assert sum(pruned.kept) < 40 and len(json.dumps(pruned.get_config())) < len(json.dumps(full.get_config()))
    alive = np.zeros(32, bool)  # the first rotation block's components with a non-zero coefficient somewhere
    for block in blocks:
        z = np.linalg.inv(full._mats[0]) @ ((block - full._o[:, None]) / full._s[:, None])[:32]
        alive |= (wavelet.quantize(wavelet.coefficients(z, np.full(32, step), 8)) != 0).any(axis=1)
    assert alive.sum() == pruned.kept[0]
    error = {}
    for name, codec in (("v3", full), ("v4", pruned)):
        error[name] = math.sqrt(sum(((codec.decode(codec.encode(b)) - b) ** 2).sum() for b in blocks))
        assert sum(len(pruned.encode(b)) for b in blocks) <= 1.02 * sum(len(full.encode(b)) for b in blocks)
    assert error["v4"] <= 1.03 * error["v3"] + 1e-9 * np.abs(x).max()


def test_sdwt_v4_scales_and_offsets_are_exact_in_their_codes():
    from biocompress.codecs.lossy.spatial_wavelet import scale_codes, scales_from_codes

    scales = np.array([1e-6, 3.3e-13, 0.7, 1.0, 1.999, 5e4])
    codes = scale_codes(scales)
    back = scales_from_codes(codes)
    assert (np.abs(back / scales - 1) <= 1 / 512 + 1e-12).all()
    np.testing.assert_array_equal(scale_codes(back), codes)  # a decoded scale codes to itself
    x = eeg_values(1000)
    x[1:4] += np.array([[0.2], [-1e-3], [5e-5]])  # volts: offsets far from the µV signal
    codec = PrunedSpatialWaveletCodec.fit(x, 0.4, 8)
    again = get_codec(json.loads(json.dumps(codec.get_config())))
    np.testing.assert_array_equal(again._o, codec._o)
    np.testing.assert_array_equal(again._s, codec._s)
    assert (np.abs(codec._o - np.median(x, axis=1)) <= codec._s / 2048 * (1 + 1e-9)).all()


def test_sdwt_v3_is_sdwt_v2_with_a_byte_per_sub_band_before_the_stream():
    from biocompress.codecs.lossy.wavelet import band_sizes

    x = eeg_values(2000)
    codec = EnergySpatialWaveletCodec.fit(x, 0.5, 8)
    payload = codec.encode(x)
    n_bands = len(band_sizes(2000, 8))
    v2 = ContextSpatialWaveletCodec(**{k: v for k, v in codec.get_config().items() if k != "id"})
    plain = payload[:6] + payload[6 + n_bands :]  # the same coefficients, no offsets
    zeroed = payload[:6] + bytes(n_bands) + payload[6 + n_bands :]
    assert np.array_equal(codec.decode(zeroed), v2.decode(plain))
    assert any(payload[6 : 6 + n_bands]) and not np.array_equal(codec.decode(payload), v2.decode(plain))
    for cut in (6, 6 + n_bands - 1):
        with pytest.raises(CorruptArchiveError):
            codec.decode(payload[:cut])
