"""A lossy archive is never larger than the lossless one: channel groups whose lossless coding is
no larger are stored losslessly (and named), and an archive where that is every channel is the
lossless archive itself."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.codecs.base import WAVELET_IDS
from biocompress.cli import app
from biocompress.files.verify import verify_archive
from conftest import SAMPLES_DIR

QUALITIES = range(1, 6)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _raw(x, types="eeg", sfreq=250.0):
    names = [f"ch{i}" for i in range(x.shape[0])]
    return mne.io.RawArray(x, mne.create_info(names, sfreq, types), verbose="ERROR")


FLAT = {
    "zero": lambda: np.zeros((6, 4000)),
    "constant": lambda: np.full((6, 4000), 3e-5),
    "one code of noise": lambda: np.round(np.random.default_rng(0).standard_normal((6, 4000)) * 0.2) * 1e-7,
}


@pytest.mark.parametrize("setting", [{"max_prdn": 10.0}, {"quality": 3}, {"bitrate": 2.0}])
def test_an_empty_recording_gets_the_lossless_archive(setting, tmp_path):
    """No sample to approximate (once: an eigen-decomposition of nothing raised LinAlgError)."""
    dst = biocompress.compress(_raw(np.zeros((3, 0))), tmp_path / "t.bc.h5", mode="lossy", **setting)
    with biocompress.open(dst) as arc:
        assert arc.mode == "lossless" and arc.n_samples == 0


@pytest.mark.parametrize("kind", sorted(FLAT))
def test_flat_or_quiet_recording_is_no_larger_lossy_than_lossless(kind, tmp_path):
    raw = _raw(FLAT[kind]())
    lossless = biocompress.compress(raw, tmp_path / "ll.bc.h5").stat().st_size
    for q in QUALITIES:
        dst = biocompress.compress(raw, tmp_path / f"q{q}.bc.h5", mode="lossy", quality=q)
        assert dst.stat().st_size <= lossless, (kind, q)
        with biocompress.open(dst) as arc:
            if arc.mode == "lossless":  # every channel exact: the lossless archive itself
                assert np.array_equal(arc.read(), raw.get_data())


def test_clinical_edf_is_no_larger_lossy_than_lossless(tmp_path):
    src = SAMPLES_DIR / "MB0400FU.EDF"
    lossless = biocompress.compress(src, tmp_path / "ll.bc.h5").stat().st_size
    for q in QUALITIES:
        assert biocompress.compress(src, tmp_path / f"q{q}.bc.h5", mode="lossy", quality=q).stat().st_size <= lossless


def test_cli_says_when_everything_is_stored_losslessly(tmp_path):
    raw = _raw(np.zeros((4, 3000)))
    src = tmp_path / "zero_raw.fif"
    raw.save(src, verbose="ERROR")
    res = invoke("compress", src, "--mode", "lossy", "--quality", "3", "-o", tmp_path / "z.bc.h5")
    assert res.exit_code == 0, res.output
    assert "stored losslessly" in " ".join(res.output.split())
    assert json.loads(invoke("info", tmp_path / "z.bc.h5", "--json").output)["mode"] == "lossless"


def test_a_group_stored_exactly_is_named_and_verifies(tmp_path):
    """Lossy groups are the runs of channels between trigger channels: a noisy group stays lossy,
    one that holds a few levels for a second at a time (cheaper exact than through a wavelet
    coder, which pays at every jump) is stored exactly, and the archive says which."""
    rng = np.random.default_rng(3)
    n = 6000
    noisy = np.cumsum(rng.standard_normal((4, n)), axis=1) * 1e-6
    stim = (np.arange(n) % 500 == 0)[None] * 1.0
    levels = np.vstack([np.repeat(rng.integers(0, 3, n // 100), 100) * 1e-6 for _ in range(3)])
    x = np.concatenate([noisy, stim, levels])
    raw = _raw(x, ["eeg"] * 4 + ["stim"] + ["eeg"] * 3)
    src = tmp_path / "mixed_raw.fif"
    raw.save(src, verbose="ERROR", fmt="double")
    dst = biocompress.compress(src, tmp_path / "m.bc.h5", mode="lossy", quality=3)
    with biocompress.open(dst) as arc:
        assert arc.mode == "lossy"
        assert arc.lossy_attrs["exact_channels"].tolist() == [5, 6, 7]
        exact = arc.fidelity["stored_exactly"]
        y = arc.read()
    assert exact["channels"] == ["ch5", "ch6", "ch7"]
    group = exact["groups"][0]
    assert (group["ch_start"], group["ch_stop"]) == (5, 8) and group["lossless_bytes"] <= group["lossy_bytes"]
    assert np.array_equal(y[4:], x[4:]) and not np.array_equal(y[:4], x[:4])
    assert verify_archive(dst, src)["ok"]
    res = invoke("info", dst)
    assert "stored losslessly: 3 channel(s) (ch5, ch6, ch7)" in " ".join(res.output.split())


# --- --max-prdn: a PRDN target instead of a quality ------------------------------------------
def _channel_prdn(src, dst) -> tuple[np.ndarray, np.ndarray]:
    raw = mne.io.read_raw(src, verbose="ERROR")
    x = raw.get_data()
    y = biocompress.read_raw(dst, verbose="ERROR").get_data()
    centred = np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=1)
    keep = (centred > 0) & np.array([t != "stim" for t in raw.get_channel_types()])
    return 100 * np.linalg.norm(y - x, axis=1)[keep] / centred[keep], keep


@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("name, target", [("Subject00_2.edf", 10.0), ("MB0400FU.EDF", 10.0), ("test_NO.vhdr", 5.0)])
def test_max_prdn_holds_on_every_channel_and_verify_checks_it(name, target, tmp_path):
    src = SAMPLES_DIR / name
    dst = biocompress.compress(src, tmp_path / "t.bc.h5", mode="lossy", max_prdn=target)
    prdn, _ = _channel_prdn(src, dst)
    assert prdn.max() <= target * (1 + 1e-9)
    with biocompress.open(dst) as arc:
        mode, codecs = arc.mode, {c["id"] for c in arc.codec_configs}
        if mode == "lossy":
            assert float(arc.lossy_attrs["max_prdn"]) == target
            assert arc.fidelity["target"]["max_prdn"] == target
    if codecs & {"nl-v1", "grid-v1", *WAVELET_IDS}:  # a bound or step per channel: every channel close to the target
        assert prdn.mean() >= 0.8 * target
    report = verify_archive(dst, src)
    assert report["ok"], report["lines"]
    if mode == "lossy":
        assert any(line.startswith("PRDN target: every channel within") for line in report["lines"])


@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("target", [5.0, 20.0])
def test_max_prdn_reaches_float_recordings_without_integer_codes(target, tmp_path):
    """Float samples have no integer codes: a target out of the autoencoder's reach puts them on a
    grid (grid-v1) or through a wavelet coder (dwt-v2, sdwt-v3/v4), whichever is smaller."""
    src = SAMPLES_DIR / "test_NO.vhdr"  # BrainVision, float32
    dst = biocompress.compress(src, tmp_path / "t.bc.h5", mode="lossy", max_prdn=target)
    lossless = biocompress.compress(src, tmp_path / "l.bc.h5")
    with biocompress.open(dst) as arc:
        assert arc.mode == "lossy" and {"grid-v1", *WAVELET_IDS} & {c["id"] for c in arc.codec_configs}
    prdn, _ = _channel_prdn(src, dst)
    assert prdn.max() <= target * (1 + 1e-9)
    assert dst.stat().st_size < lossless.stat().st_size / 2


@pytest.mark.filterwarnings("ignore:.*approximate the source")
def test_verify_fails_when_the_stored_target_is_not_held(tmp_path, monkeypatch):
    from biocompress.container.reader import Archive

    src = SAMPLES_DIR / "MB0400FU.EDF"
    dst = biocompress.compress(src, tmp_path / "t.bc.h5", mode="lossy", max_prdn=20.0)
    stored = Archive.lossy_attrs.func
    monkeypatch.setattr(Archive, "lossy_attrs", property(lambda arc: {**stored(arc), "max_prdn": 1.0}))  # a claim not held
    report = verify_archive(dst, src)
    assert not report["ok"] and any("PRDN target 1 % EXCEEDED" in line for line in report["lines"])


@pytest.mark.parametrize("args", [["--max-prdn", "5", "--quality", "3"], ["--max-prdn", "150"],
                                  ["--max-prdn", "0"]])
def test_cli_max_prdn_settings_are_checked(args, tmp_path):
    src = SAMPLES_DIR / "test_utf8_annotations.edf"
    res = invoke("compress", src, "-o", tmp_path / "x.bc.h5", "--mode", "lossy", *args)
    assert res.exit_code == 2 and "--max-prdn" in res.output
    assert not (tmp_path / "x.bc.h5").exists()
    with pytest.raises(biocompress.BadInputError):
        biocompress.compress(src, tmp_path / "y.bc.h5", mode="near-lossless", max_error_uv=1, max_prdn=5)


# --- --bitrate: bits per sample instead of a quality ------------------------------------------
@pytest.mark.filterwarnings("ignore:.*approximate the source")
@pytest.mark.parametrize("name, bits", [("Subject00_2.edf", 0.5), ("Subject00_2.edf", 1.0), ("test_NO.vhdr", 1.0)])
def test_bitrate_is_met_stated_and_verified(name, bits, tmp_path):
    src = SAMPLES_DIR / name
    dst = biocompress.compress(src, tmp_path / "t.bc.h5", mode="lossy", bitrate=bits)
    with biocompress.open(dst) as arc:
        achieved = 8 * int(arc.index["length"].sum()) / (arc.n_channels * arc.n_samples)
        assert float(arc.lossy_attrs["bitrate"]) == bits
        assert arc.fidelity["target"] == {"bitrate": bits, "achieved_bitrate": pytest.approx(achieved, rel=1e-5)}
    assert abs(achieved - bits) <= 0.1 * bits
    report = verify_archive(dst, src)
    assert report["ok"], report["lines"]
    assert any(line.startswith("bitrate: ") and f"(target {bits:g})" in line for line in report["lines"])
    res = invoke("info", dst)
    assert res.exit_code == 0 and f"{bits:g} bits/sample" in res.output


@pytest.mark.parametrize("args", [["--bitrate", "0"], ["--bitrate", "1", "--quality", "3"],
                                  ["--bitrate", "1", "--max-prdn", "5"], ["--bitrate", "100"]])
def test_cli_bitrate_settings_are_checked(args, tmp_path):
    src = SAMPLES_DIR / "test_utf8_annotations.edf"
    res = invoke("compress", src, "-o", tmp_path / "x.bc.h5", "--mode", "lossy", *args)
    assert res.exit_code == 2 and "--bitrate" in res.output
    assert not (tmp_path / "x.bc.h5").exists()
    with pytest.raises(biocompress.BadInputError):
        biocompress.compress(src, tmp_path / "y.bc.h5", mode="near-lossless", max_error_uv=1, bitrate=1)
