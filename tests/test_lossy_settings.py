"""Every lossy setting on every bundled recording: compress, info, info --json, verify and report
all succeed (or refuse with a BadInputError where a setting cannot apply); the fidelity figures
are honest (data channels only, stim and flat channels named, bands below Nyquist)."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.cli import app
from biocompress.errors import BadInputError
from biocompress.files import fidelity_text
from biocompress.files.fidelity import FidelityMeter, bands_for
from conftest import sample_recordings

SETTINGS = {f"q{q}": {"mode": "lossy", "quality": q} for q in range(1, 6)}
SETTINGS["nl5"] = {"mode": "near-lossless", "max_error_uv": 5.0}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(recording, setting) → its archive, or the BadInputError the setting was refused with."""
    folder = tmp_path_factory.mktemp("settings")
    cache = {}

    def make(src, setting):
        key = (src.name, setting)
        if key not in cache:
            try:
                cache[key] = biocompress.compress(src, folder / f"{src.stem}-{setting}.bc.h5", **SETTINGS[setting])
            except BadInputError as exc:
                cache[key] = exc
        return cache[key]
    return make


def _numbers_only(node, path="fidelity"):
    """Figures are floats (or None where undefined); only channel names and labels are text."""
    if isinstance(node, dict):
        for k, v in node.items():
            _numbers_only(v, f"{path}.{k}")
    elif isinstance(node, list):
        for v in node:
            _numbers_only(v, path)
    elif isinstance(node, str):
        assert path.split(".")[-1] in {"scope", "worst_channel"} or ".excluded." in path \
            or ".max_error_channel." in path or ".stored_exactly.channels" in path, f"{path} is text: {node!r}"
    else:
        assert node is None or isinstance(node, (int, float)), f"{path}: {node!r}"


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("src", sample_recordings(), ids=lambda p: p.name)
def test_every_setting_compresses_describes_verifies_and_reports(src, setting, made, tmp_path):
    dst = made(src, setting)
    if isinstance(dst, BadInputError):
        assert setting == "nl5" and "integer-coded" in str(dst)  # float samples: no error bound in codes
        return
    res = invoke("info", dst)
    assert res.exit_code == 0, res.output
    res = invoke("info", dst, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    if summary["mode"] == "lossless":  # lossless coding was no larger: the lossless archive itself
        assert "fidelity" not in summary
    else:
        assert "fidelity" in invoke("info", dst).output
        fid = summary["fidelity"]
        _numbers_only(fid)
        head = fid["headline"]
        assert head["n_channels"] >= 1
        assert head["prdn_mean"] is None or 0 <= head["prdn_mean"] <= head["prdn_worst"]
        assert set(head["bands"]) == set(fid["bands_hz"])
        assert all(hi <= summary["sfreq"] / 2 for _, hi in fid["bands_hz"].values())
        for name in fid["excluded"]["stim"] + fid["excluded"]["flat"]:
            assert name != head["worst_channel"]
    res = invoke("verify", dst)
    assert res.exit_code == 0, res.output
    res = invoke("verify", dst, src)
    assert res.exit_code == 0, res.output
    res = invoke("report", dst, "--source", src, "-o", tmp_path / "r.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_and_info_of_a_lossless_archive(tmp_path):
    src = sample_recordings()[0]
    dst = biocompress.compress(src, tmp_path / "ll.bc.h5")
    res = invoke("report", dst, "--source", src, "-o", tmp_path / "r.png")
    assert res.exit_code == 0, res.output
    assert "PRDN mean 0.00 %" in " ".join(res.output.split())
    assert invoke("info", dst, "--json").exit_code == 0


def _raw(data, types, sfreq=250.0, names=None):
    names = names or [f"ch{i}" for i in range(len(types))]
    return mne.io.RawArray(data, mne.create_info(names, sfreq, types), verbose="ERROR")


def test_headline_leaves_out_stim_and_flat_channels_and_names_them():
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.standard_normal((5, n)) * 1e-5
    x -= x.mean(axis=1, keepdims=True)  # so an error of 10 % of x is a PRDN of 10 %
    x[3] = 2e-6  # flat
    x[4] = (np.arange(n) % 100 == 0) * 5.0  # stim: huge values, exact
    y = x.copy()
    y[0] += 0.1 * x[0]  # 10 %
    y[1] += 0.3 * x[1]  # 30 %: the worst
    y[2] += 5.0 * x[2]  # an ECG channel badly coded: not in the headline
    names = ["Fz", "Cz", "ECG ECG", "Pz", "STI"]
    meter = FidelityMeter(5, 250.0, names, ["eeg", "eeg", "eeg", "eeg", "stim"], [107] * 5)
    for t0 in range(0, n, 500):
        meter.update(x[:, t0 : t0 + 500], y[:, t0 : t0 + 500])
    fid = meter.result()
    head = fid["headline"]
    assert head["n_channels"] == 2 and head["worst_channel"] == "Cz"
    assert head["prdn_worst"] == pytest.approx(30, rel=1e-6)
    assert head["prdn_mean"] == pytest.approx(20, rel=1e-6)
    assert head["max_error_channel"]["µV"] == "Cz"
    assert fid["excluded"] == {"stim": ["STI"], "flat": ["Pz"], "other_types": ["ECG ECG"]}
    assert fid["by_type"]["ecg"]["worst_channel"] == "ECG ECG" and "stim" not in fid["by_type"]
    assert set(head["bands"]) == set(bands_for(250.0)) and "ripple" in head["bands"]  # 90–125 Hz
    line = fidelity_text.headline(fid)
    assert "worst 30.00 % (Cz)" in line and "PRDN mean 20.00 %" in line


def test_bands_stop_at_nyquist():
    assert list(bands_for(160.0)) == ["delta", "theta", "alpha", "beta", "gamma", "high_gamma"]
    assert bands_for(160.0)["high_gamma"] == (45.0, 80.0)
    assert "fast_ripple" in bands_for(1000.0) and "ripple" not in bands_for(170.0)


def test_old_archives_figures_are_shown_as_stored():
    """Archives written before the headline hold only ``overall`` and ``per_channel``."""
    old = {"overall": {"prd": 1.0, "prdn": 2.5, "snr_db": None, "rmse_uv": 0.1, "max_abs_error_uv": 0.0,
                       "band_delta": 0.01}, "per_channel": {"prdn": [2.5]}}
    rows = fidelity_text.text_rows(old)
    assert "PRDN 2.50 %" in rows["fidelity"] and "SNR n/a dB" in rows["fidelity"]
    assert rows["band_power_error"] == "delta 1.0 %"
    assert fidelity_text.json_figures(old) == {"overall": old["overall"]}


def test_exact_reconstruction_has_no_undefined_figure_that_crashes():
    x = np.cumsum(np.random.default_rng(1).standard_normal((3, 1000)), axis=1) * 1e-6
    meter = FidelityMeter(3, 160.0, ["a", "b", "c"], ["eeg"] * 3, [107] * 3)
    meter.update(x, x)
    fid = meter.result()
    assert fid["overall"]["snr_db"] is None and fid["headline"]["prdn_worst"] == 0.0
    assert "PRDN mean 0.00 %" in fidelity_text.text_rows(fid)["fidelity"]
