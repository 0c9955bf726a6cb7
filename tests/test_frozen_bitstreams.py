"""Frozen bitstreams: payloads and an archive written once, decoded forever.

Codec ids and format versions are immutable (docs/FORMAT.md §9). These fixtures
were written by tests/fixtures/make_fixtures.py with the code of the commit
named in tests/fixtures/manifest.json. If one of these tests fails, the
decoder no longer reads what a released version wrote: restore the old
behaviour (or give the new bitstream a new id) — never regenerate the fixture.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import h5py
import mne
import numpy as np
import pytest

import biocompress
from biocompress.codecs.base import WAVELET_IDS
from biocompress.codecs import get_codec
from biocompress.container.layout import get_text
from biocompress.container.reader import sample_bytes
from biocompress.io.source import open_raw
from conftest import FIXTURES_DIR, SAMPLES_DIR, assert_bitwise_equal

MANIFEST = json.loads((FIXTURES_DIR / "manifest.json").read_text())
PAYLOADS = {k: v for k, v in MANIFEST.items() if v["kind"] == "payload"}
ARCHIVES = {k: v for k, v in MANIFEST.items() if v["kind"] == "archive"}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_fixture_file():
    listed = set()
    for entry in MANIFEST.values():
        listed |= {entry.get("payload"), entry.get("archive"), entry.get("expected")} - {None}
    data_files = {p.name for p in FIXTURES_DIR.iterdir() if p.suffix in (".bin", ".npy", ".h5")}
    assert data_files == listed
    ids = {e["codec"]["id"] for e in PAYLOADS.values()}
    assert {"lpc-v1", "lpc-v2", "lpc-v3", "lpc-v4", "float-xor-zlib-v1", "float-lpc-v1"} <= ids


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_frozen_payload_decodes_bit_exact(name):
    entry = PAYLOADS[name]
    path = FIXTURES_DIR / entry["payload"]
    assert _sha256(path) == entry["payload_sha256"], f"{path.name} was modified: fixtures are never regenerated"
    expected = np.load(FIXTURES_DIR / entry["expected"]).astype(np.int64)
    assert list(expected.shape) == entry["shape"]
    codec = get_codec(dict(entry["codec"]))
    decoded = codec.decode(path.read_bytes())
    if entry["codec"]["id"] in WAVELET_IDS:  # integers exact; the inverse transforms' float rounding may differ
        expected = np.load(FIXTURES_DIR / entry["expected"])
        assert decoded.shape == expected.shape and decoded.dtype == np.float64
        assert np.allclose(decoded, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
        return
    if entry["codec"]["id"] == "grid-v1":  # grid integers exact up to the sketch's rounding: one grid step
        expected = np.load(FIXTURES_DIR / entry["expected"])
        step = np.asarray(entry["codec"]["grid"])[:, None]
        assert decoded.shape == expected.shape and decoded.dtype == np.float64
        assert (np.abs(decoded - expected) <= 1.001 * step).all()
        return
    if entry["codec"]["id"] in ("ae-v1", "ae-v2"):  # lossy values: the latents are exact, float rounding may differ
        expected = np.load(FIXTURES_DIR / entry["expected"])
        assert decoded.shape == expected.shape
        assert np.allclose(decoded, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())
        return
    assert decoded.dtype == np.int64
    assert decoded.shape == expected.shape
    assert np.array_equal(decoded, expected)


def test_frozen_lpc_payload_decodes_from_id_alone():
    """A config holding only the id takes the documented defaults (FORMAT.md §8)."""
    entry = PAYLOADS["lpc-v1_default"]
    expected = np.load(FIXTURES_DIR / entry["expected"]).astype(np.int64)
    decoded = get_codec({"id": "lpc-v1"}).decode((FIXTURES_DIR / entry["payload"]).read_bytes())
    assert np.array_equal(decoded, expected)
    # the fixture's counter channel proves no sample moved
    assert np.array_equal(decoded[0], np.arange(expected.shape[1]))


@pytest.fixture(scope="module", params=sorted(ARCHIVES))
def frozen_archive(request):
    entry = ARCHIVES[request.param]
    path = FIXTURES_DIR / entry["archive"]
    assert _sha256(path) == entry["archive_sha256"], f"{path.name} was modified: fixtures are never regenerated"
    expected = np.load(FIXTURES_DIR / entry["expected"]) if entry.get("expected") else None
    return path, entry, expected


def test_frozen_archive_samples(frozen_archive):
    path, entry, expected = frozen_archive
    data = biocompress.read_raw(path).get_data()
    # the samples' SHA-256 was computed from the source at compression time
    assert hashlib.sha256(sample_bytes(data)).hexdigest() == entry["samples_sha256"]
    if expected is not None:
        assert expected.dtype == np.float64
        assert_bitwise_equal(data, expected)
    with biocompress.open(path) as arc:
        result = arc.verify()
        assert result["ok"] and result["samples_sha256"] == entry["samples_sha256"]
        assert_bitwise_equal(arc.read(), data)
        # a window across a block boundary and a channel subset
        block = entry.get("block_samples", 256)
        picks = [0, 7, 8, arc.n_channels - 1]
        assert_bitwise_equal(arc.read(block - 6, block + 44, picks=picks), data[picks, block - 6 : block + 44])
        assert arc.value_kind.tolist() == entry.get("value_kinds", arc.value_kind.tolist())


def test_frozen_archive_metadata(frozen_archive):
    path, entry, _ = frozen_archive
    with biocompress.open(path) as arc:
        assert get_text(arc.h5.attrs, "format") == "biocompress"
        assert int(arc.h5.attrs["format_version"]) == entry.get("format_version", 1)
        assert arc.mode == "lossless"
        assert (arc.n_channels, arc.n_samples, arc.sfreq) == (entry["n_channels"], entry["n_samples"], entry["sfreq"])
        assert arc.ch_names == entry["ch_names"]
        assert arc.codec_configs == entry["codecs"]
    raw = biocompress.read_raw(path)
    assert raw.ch_names == entry["ch_names"]
    assert raw.get_channel_types() == entry["ch_types"]
    assert raw.info["sfreq"] == entry["sfreq"]
    assert raw.info["meas_date"] == dt.datetime.fromisoformat(entry["meas_date"])
    ann = entry["annotations"]
    assert list(raw.annotations.onset) == ann["onset"]
    assert list(raw.annotations.duration) == ann["duration"]
    assert list(raw.annotations.description) == ann["description"]
    assert raw.annotations.orig_time == raw.info["meas_date"]


def test_frozen_archive_matches_source_read_by_current_mne():
    """The fixture's expected samples are still what MNE reads from the source.

    A failure here (and not in the tests above) means MNE changed how it scales
    the EDF, not that the archive bitstream changed.
    """
    entry = ARCHIVES["archive-v1_chtypes_2s"]
    expected = np.load(FIXTURES_DIR / entry["expected"])
    raw = open_raw(SAMPLES_DIR / "chtypes_edf.edf").crop(0.0, 2.0, include_tmax=False)
    assert_bitwise_equal(raw.get_data(), expected)


def test_frozen_mixed_rate_archive_matches_source_read_by_current_mne():
    """Native-rate channels rebuilt through MNE's resampling still equal MNE's reading."""
    entry = ARCHIVES["archive-v2_mixed_rate"]
    raw = open_raw(SAMPLES_DIR / entry["source_sample"])
    assert hashlib.sha256(sample_bytes(raw.get_data())).hexdigest() == entry["samples_sha256"]
    assert 3 in entry["value_kinds"], "the fixture must hold int-native channels"


def test_frozen_edf_archive_restores_the_source_file(tmp_path):
    entry = ARCHIVES["archive-v2_edf_restore"]
    path = FIXTURES_DIR / entry["archive"]
    src = SAMPLES_DIR / entry["source_sample"]
    from biocompress.files.restore import restore

    out = tmp_path / src.name
    assert restore(path, out)["exact"] == "bytes"
    assert out.read_bytes() == src.read_bytes()


def test_frozen_v3_archive_checks_every_part_and_restores(tmp_path):
    entry = ARCHIVES["archive-v3_edf_integrity"]
    path = FIXTURES_DIR / entry["archive"]
    from biocompress.files.restore import restore
    from biocompress.files.verify import verify_archive

    with biocompress.open(path) as arc:
        assert arc.format_version == 3 and arc.check_metadata() > 20
    assert verify_archive(path)["ok"]
    out = tmp_path / entry["source_sample"]
    assert restore(path, out)["exact"] == "bytes"
    assert out.read_bytes() == (SAMPLES_DIR / entry["source_sample"]).read_bytes()


def test_frozen_times_payloads_cover_every_predictor():
    """times-v1 (format 4): one frozen payload per predictor, named in its header byte 6."""
    from biocompress.codecs.times import LINE, PREVIOUS, RATE, STEP

    found = {(FIXTURES_DIR / e["payload"]).read_bytes()[6] for e in PAYLOADS.values() if e["codec"]["id"] == "times-v1"}
    assert found == {PREVIOUS, STEP, LINE, RATE}


def test_frozen_stream_archive_timestamps_markers_and_clock():
    """Format 4: a live stream's archive keeps every sample's timestamp, each marker's own
    timestamp and the clock offsets exactly."""
    from biocompress.container.reader import times_bytes

    entry = ARCHIVES["archive-v4_stream_times"]
    with biocompress.open(FIXTURES_DIR / entry["archive"]) as arc:
        assert arc.has_timestamps and arc.times_codec_configs == entry["times_codecs"]
        stamps = arc.timestamps()
        assert stamps.shape == (entry["n_samples"],)
        assert hashlib.sha256(times_bytes(stamps)).hexdigest() == entry["times_sha256"]
        assert_bitwise_equal(arc.timestamps(100, 300), stamps[100:300], "timestamps")
        assert arc.verify()["times_ok"]
        marks = arc.h5["annotations/timestamp"][()]
        assert [None if np.isnan(v) else float(v) for v in marks] == entry["annotation_timestamps"]
        assert arc.h5["times/clock_offsets"][()].tolist() == entry["clock_offsets"]
        assert arc.source["stream"]["name"] == "fixture" and "recovery" not in arc.source


def test_frozen_v5_archive_packed_metadata_restores(tmp_path):
    """Format 5 (§2.1): the metadata packed in /meta, sealed by its SHA-256; the EDF+ file
    comes back byte for byte."""
    entry = ARCHIVES["archive-v5_edf_packed"]
    path = FIXTURES_DIR / entry["archive"]
    from biocompress.files.restore import restore
    from biocompress.files.verify import verify_archive

    with biocompress.open(path) as arc:
        assert arc.format_version == 5 and arc.check_metadata() > 20
        assert set(arc.file) <= {"meta", "data"} and "channels" in arc.h5
    assert verify_archive(path)["ok"]
    out = tmp_path / entry["source_sample"]
    assert restore(path, out)["exact"] == "bytes"
    assert out.read_bytes() == (SAMPLES_DIR / entry["source_sample"]).read_bytes()


def test_frozen_v6_archive_sealed_metadata_restores(tmp_path):
    """Format 6 (§2.1): /meta sealed in itself (SHA-256, size, LZMA2), the payload segment at the
    root, the EDF gains derived from the stored header (§6); the EDF+ file comes back byte for
    byte and the derived gains are MNE's."""
    entry = ARCHIVES["archive-v6_edf_sealed"]
    path = FIXTURES_DIR / entry["archive"]
    from biocompress.files.restore import restore
    from biocompress.files.verify import verify_archive
    from biocompress.io.scaling import recipe_for

    with h5py.File(path, "r") as outer:
        assert sorted(outer) == ["data.000000", "meta"] and sorted(outer.attrs) == ["format", "format_version"]
    with biocompress.open(path) as arc:
        assert arc.format_version == 6 and arc.check_metadata() > 20
        assert get_text(arc.h5["channels"].attrs, "recipe_derived") == "edf"
        assert "recipe_a" not in arc.h5["channels"]
        mne_recipe = recipe_for(mne.io.read_raw_edf(SAMPLES_DIR / entry["source_sample"], verbose="error"))
        for name in ("a", "b"):
            assert arc.recipe.params[name].view(np.int64).tolist() == mne_recipe.params[name].view(np.int64).tolist()
    assert verify_archive(path)["ok"]
    out = tmp_path / entry["source_sample"]
    assert restore(path, out)["exact"] == "bytes"
    assert out.read_bytes() == (SAMPLES_DIR / entry["source_sample"]).read_bytes()


@pytest.mark.parametrize("name", ["archive-v4_xdf_streams", "archive-v5_xdf_streams", "archive-v6_xdf_streams"])
def test_frozen_xdf_archive_every_stream(name):
    """Format 4 (§5.6): an XDF file's archive gives back every stream's samples (in the file's
    format), timestamps, markers and header XML exactly; the EEG stream is the root's."""
    entry = ARCHIVES[name]
    path = FIXTURES_DIR / entry["archive"]
    with biocompress.open(path) as arc:
        assert [str(e.index) for e in arc.streams] == list(entry["streams"])
        arc.check_metadata()  # every part of every stream against the manifest or the packed seal
        if arc.format_version < 5:
            assert {f"@/streams/{e.index}" for e in arc.streams[1:]} <= set(arc.parts.parts)
        for key, want in entry["streams"].items():
            if "strings" in want:
                markers = arc.stream(int(key))
                assert markers.strings == want["strings"]
                assert _sha(markers.timestamps.tobytes()) == want["timestamps_sha256"]
                assert _sha(markers.header["header_xml"].encode()) == want["header_xml_sha256"]
                continue
            with arc.stream(int(key)) as s:
                values = s.source_values()
                assert (values.dtype.str, list(values.shape)) == (want["dtype"], want["shape"])
                assert _sha(values.tobytes()) == want["values_sha256"]
                assert _sha(s.timestamps().tobytes()) == want["timestamps_sha256"]
                assert _sha(s.stream_header["header_xml"].encode()) == want["header_xml_sha256"]
                assert s.value_kind.tolist() == want["value_kinds"] and s.sfreq == want["sfreq"]
                assert s.verify()["ok"]
    raw = biocompress.read_raw(path, stream="Aux")
    assert raw.get_data().shape == tuple(entry["streams"]["1"]["shape"][::-1])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
