"""Honest exports: per-channel exactness for every format, exact FIF, refused changes to
trigger codes, and MNE's warnings about a damaged source kept in the archive's provenance."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.files import export_check
from biocompress.cli import app
from biocompress.files.restore import EXPORT_FORMATS, export
from conftest import SAMPLES_DIR, assert_bitwise_equal, copy_sample, leftovers, synthetic_codes, synthetic_raw

STIM_BDF = SAMPLES_DIR / "test_bdf_stim_channel.bdf"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def words(text: str) -> str:
    return " ".join(text.split())


def _bit_exact_rows(a: np.ndarray, b: np.ndarray) -> list[bool]:
    return [bool(np.array_equal(x.view(np.int64), y.view(np.int64))) for x, y in zip(a, b)]


@pytest.mark.parametrize("ext", sorted(EXPORT_FORMATS))
def test_every_format_exports_and_reports_each_channel_truly(ext, tmp_path, sample_archive):
    archive = sample_archive(SAMPLES_DIR / "Subject00_2.edf")
    out = tmp_path / f"x{ext}"
    result = export(archive, out)
    assert out.is_file() and leftovers(tmp_path) == []
    x = biocompress.read_raw(archive).get_data()
    back = mne.io.read_raw(out, preload=True)
    y = back.get_data()[:, : x.shape[1]]
    assert back.ch_names == biocompress.read_raw(archive).ch_names
    exact = _bit_exact_rows(x, y)
    assert [c["exact"] for c in result["channels"]] == exact
    for c, row_x, row_y in zip(result["channels"], x, y):
        assert c["max_abs_error"] == pytest.approx(float(np.abs(row_x - row_y).max()), rel=1e-12, abs=0)
        assert c["unit"] == "V"
    assert result["exact"] == ("samples" if all(exact) else "no")
    if ext == ".fif":
        assert all(exact)
    res = invoke("export", archive, "-o", tmp_path / f"cli{ext}")
    assert res.exit_code == 0, res.output
    text = words(res.output)
    if all(exact):
        assert "identical" in text and "NOT" not in text
    else:
        assert f"{sum(exact)} of {len(exact)} channel(s) read back bit-exact" in text
        assert ".fif keeps every sample exactly" in text


def test_fif_export_is_exact_when_cal_is_not_a_float32(tmp_path):
    """FIF stores each channel's calibration as float32: a cal of 1e-7 would round every sample."""
    raw = synthetic_raw(synthetic_codes(n_channels=4, n_samples=3000), cal=1e-7, annotations=False)
    archive = biocompress.compress(raw, tmp_path / "cal.bc.h5")
    res = invoke("export", archive, "-o", tmp_path / "x.fif")
    assert res.exit_code == 0, res.output
    text = words(res.output)
    assert "identical to the archive's, bit for bit" in text and ".fif keeps" not in text
    assert "calibration factor set to 1 on 4 channel(s)" in text
    assert_bitwise_equal(mne.io.read_raw_fif(tmp_path / "x.fif").get_data(), raw.get_data())


def test_float_brainvision_exports_exactly_to_fif(tmp_path, sample_archive):
    archive = sample_archive(SAMPLES_DIR / "test_NO.vhdr")
    result = export(archive, tmp_path / "x.fif")
    assert result["exact"] == "samples" and all(c["exact"] for c in result["channels"])
    res = invoke("info", archive, "--json")
    assert "exact in .fif" not in res.output
    assert "checked per channel" in json.loads(res.output)["restore"]


@pytest.mark.parametrize("ext", [".bdf", ".edf"])
def test_trigger_codes_the_format_changes_are_refused_without_consent(ext, tmp_path, sample_archive):
    archive = sample_archive(STIM_BDF)
    out = tmp_path / f"x{ext}"
    res = invoke("export", archive, "-o", out)
    assert res.exit_code == 2, res.output
    text = words(res.output)
    assert "Status (stim): trigger codes changed" in text and "nothing written" in text and "--allow-changes" in text
    assert not out.exists() and leftovers(tmp_path) == []
    res = invoke("export", archive, "-o", out, "--allow-changes")
    assert res.exit_code == 0, res.output
    assert "changed: Status (stim): trigger codes changed" in words(res.output)
    assert out.is_file() and leftovers(tmp_path) == []


def test_trigger_channel_kept_where_the_format_can(tmp_path, sample_archive):
    archive = sample_archive(STIM_BDF)
    for ext in (".fif", ".vhdr", ".set"):
        result = export(archive, tmp_path / f"x{ext}")
        assert {c["name"]: c["exact"] for c in result["channels"]}["Status"], ext
        assert result["changes"] == []


def test_compare_flags_clipped_values_and_lists_rounding(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 500)) * 1e-5
    x[2] = np.round(np.abs(x[2]) * 1e6) % 4  # trigger codes 0…3
    info = mne.create_info(["a", "b", "STI"], 250.0, ["eeg", "eeg", "stim"])
    raw = mne.io.RawArray(x, info, verbose="ERROR")
    y = x.astype(np.float32).astype(np.float64)  # float32 rounding: allowed
    y[1, 7] = 0.5 * x[1, 7]  # clipped: a change
    outcomes, notes = export_check.compare(raw, mne.io.RawArray(y, info, verbose="ERROR"), "brainvision")
    assert [o.exact for o in outcomes] == [False, False, True]
    assert outcomes[0].change is None and 0 < outcomes[0].max_abs_error <= 2**-23 * np.abs(x[0]).max()
    assert "beyond the format's range" in outcomes[1].change
    y[2, 3] = 7
    outcomes, _ = export_check.compare(raw, mne.io.RawArray(y, info, verbose="ERROR"), "brainvision")
    assert outcomes[2].change.startswith(f"trigger codes changed: {x[2, 3]:.0f} → 7 (1 sample)")


# --- MNE's warnings about the source, kept in the provenance ------------------------------------
def _edf_parts(path):
    data = path.read_bytes()
    header, records = int(data[184:192]), int(data[236:244])
    return data, header, (len(data) - header) // records


def _source_of(archive) -> dict:
    with biocompress.open(archive) as arc:
        return arc.source


@pytest.mark.parametrize("damage", ["cut mid-record", "header claims more records", "header claims fewer records"])
def test_damaged_edf_header_warning_kept_in_provenance(damage, tmp_path):
    src = copy_sample("Subject00_2.edf", tmp_path)
    data, header, record = _edf_parts(src)
    if damage == "cut mid-record":
        data = data[: header + 10 * record + record // 2]
    else:
        count = b"70      " if damage == "header claims more records" else b"30      "
        data = data[:236] + count + data[244:]
    src.write_bytes(data)
    res = invoke("compress", src, "-o", tmp_path / "d.bc.h5")
    assert res.exit_code == 0, res.output
    text = words(res.output)
    assert "warning:" in text and "does not match the file size" in text
    said = _source_of(tmp_path / "d.bc.h5")["warnings"]
    assert len(said) == 1 and "does not match the file size" in said[0]
    info = json.loads(invoke("info", tmp_path / "d.bc.h5", "--json").output)
    assert info["source_warnings"] == said
    assert "does not match the file size" in words(invoke("info", tmp_path / "d.bc.h5").output)


def test_clean_source_has_no_warnings(tmp_path, sample_archive):
    archive = sample_archive(SAMPLES_DIR / "chtypes_edf.edf")
    assert _source_of(archive)["warnings"] == []
    assert "source_warnings" not in json.loads(invoke("info", archive, "--json").output)
