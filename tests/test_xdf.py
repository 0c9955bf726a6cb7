"""XDF files: one archive holding every stream, samples and timestamps bit for bit.

The files are made up by tests/xdf_files.py (float32, int16, double64, int64, markers, an
irregular and an empty stream) and read back with pyxdf itself as the reference; the corpus's
LabRecorder files are used where present.
"""

from __future__ import annotations

import gzip
import json
import shutil

import h5py
import numpy as np
import pytest
import pyxdf
from conftest import assert_bitwise_equal, corpus_path, folder_names, leftovers
from typer.testing import CliRunner
from xdf_files import DATETIME, eeg_only, lsl_stamps, stream, synthetic_xdf

import biocompress
from biocompress.cli import app
from biocompress.container.reader import Archive
from biocompress.container.layout import segment_path
from biocompress.errors import BadInputError, CorruptArchiveError
from biocompress.files.verify import verify_archive

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def words(text: str) -> str:
    return " ".join(text.split())


def load(path):
    """pyxdf's reading, as biocompress reads XDF: raw timestamps and clock offsets."""
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    return {int(s["info"]["stream_id"]): s for s in streams}


def same_bits(a, b) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A synthetic XDF file, its streams as written, and its archive."""
    folder = tmp_path_factory.mktemp("xdf")
    src = folder / "rec.xdf"
    streams = synthetic_xdf(src)
    archive = biocompress.compress(src, folder / "rec.bc.h5")
    return src, streams, archive


def test_every_stream_round_trips_bit_exact(made):
    src, streams, archive = made
    reference = load(src)
    with biocompress.open(archive) as arc:
        assert sorted(e.index for e in arc.streams) == [m.index for m in streams]
        for m in streams:
            ref = reference[m.index + 11]  # the test writer's stream ids
            if m.channel_format == "string":
                markers = arc.stream(m.index)
                assert markers.strings == ref["time_series"]
                assert same_bits(markers.timestamps, ref["time_stamps"])
                assert same_bits(markers.clock_offsets, np.column_stack([ref["clock_times"], ref["clock_values"]]))
                assert markers.header["header_xml"].encode() == m.header_xml
                continue
            with arc.stream(m.index) as s:
                values = s.source_values()
                assert same_bits(values, np.asarray(m.values))  # NaN payloads, ±inf, -0.0, int16/int64 extremes
                if len(ref["time_series"]):
                    assert same_bits(values, ref["time_series"])
                assert same_bits(s.timestamps(), ref["time_stamps"])
                clock = s.clock_offsets if s.clock_offsets is not None else np.zeros((0, 2))
                assert same_bits(clock, np.column_stack([ref["clock_times"], ref["clock_values"]]).reshape(-1, 2))
                assert s.stream_header["header_xml"].encode() == m.header_xml
                assert (s.stream_header.get("footer_xml") or "").encode() == (m.footer_xml or b"")
                assert s.verify()["ok"]
        assert arc.source["xdf_header"] == '<?xml version="1.0"?>\n  <info>\n    <version>1.0</version>\n    ' \
            f"<datetime>{DATETIME}</datetime>\n  </info>"


def test_value_kinds_follow_the_channel_format(made):
    _, _, archive = made
    with biocompress.open(archive) as arc:
        assert arc.value_kind.tolist() == [1] * 6  # float32
        with arc.stream("Aux") as s:
            assert s.value_kind.tolist() == [0] * 4  # int16
        with arc.stream("Dbl") as s:  # double64: true doubles, integers, float32 values
            assert s.value_kind.tolist() == [2, 0, 1]
        with arc.stream("Count") as s:  # int64: a counter, and values beyond int32
            assert s.value_kind.tolist() == [0, 2]
        assert any("E1 keep the file's unit" in w for w in arc.source["warnings"])


def test_read_raw_main_stream(made):
    _, streams, archive = made
    eeg = streams[0]
    raw = biocompress.read_raw(archive)
    assert raw.ch_names == ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]
    assert raw.get_channel_types() == ["eeg"] * 6
    assert raw.info["sfreq"] == 250.0
    assert raw.info["meas_date"].isoformat() == "2024-03-05T09:20:30+00:00"  # the header's datetime, in UTC
    # microvolts → volts through the recipe: MNE's value is float64(sample) · 1e-6, bit for bit
    assert_bitwise_equal(raw.get_data(), np.asarray(eeg.values, np.float64).T * 1e-6)
    assert_bitwise_equal(raw.get_data(start=100, stop=140, picks=[1, 4]),
                         np.asarray(eeg.values[100:140, [1, 4]], np.float64).T * 1e-6)


def test_annotations_come_from_the_markers(made):
    _, streams, archive = made
    eeg, events = streams[0], streams[3]
    first = eeg.timestamps[0]
    with biocompress.open(archive) as arc:
        ann = arc.annotations
        assert list(ann.description) == [row[0] for row in events.values]  # in time order already
        assert list(ann.onset) == [t - first for t in events.timestamps]
        assert same_bits(arc.annotation_timestamps, events.timestamps)
        assert (ann.duration == 0).all()
    raw = biocompress.read_raw(archive)
    # MNE keeps the markers inside the recording (the first came before the EEG started)
    assert list(raw.annotations.description) == ["stimulus/left", "Größe ÷ 2", "a, b", "end"]
    # (MNE's Raw keeps onsets to the microsecond; the archive and its timestamps keep them exactly)
    assert np.allclose(raw.annotations.onset, [t - first for t in events.timestamps[1:]], rtol=0, atol=1e-6)


def test_read_raw_picked_stream(made):
    _, streams, archive = made
    aux = streams[1]
    for wanted in ("Aux", "AUX", 1, "1"):
        raw = biocompress.read_raw(archive, stream=wanted)
        assert raw.ch_names == ["A0", "A1", "A2", "A3"]
        assert raw.get_channel_types() == ["misc"] * 4
        assert raw.info["sfreq"] == 100.0
        assert_bitwise_equal(raw.get_data(), np.asarray(aux.values, np.float64).T)
    # its own time axis: the markers' onsets count from this stream's first timestamp
    raw = biocompress.read_raw(archive, stream="Aux")
    first = aux.timestamps[0]
    assert np.allclose(raw.annotations.onset, [t - first for t in streams[3].timestamps if t - first >= 0], atol=1e-6)
    with Archive(archive, stream="Count") as arc:
        assert arc.read(0, 5, picks=[0]).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0]]


def test_streams_are_listed_and_picked_by_number_name_or_type(made):
    archive = made[2]
    with biocompress.open(archive) as arc:
        listed = [(e.index, e.name, e.type, e.kind, e.channels, e.rate, e.samples, e.main) for e in arc.streams]
    assert listed[0] == (0, "Amp", "EEG", "signal", 6, 250.0, 1300, True)
    assert (3, "Events", "Markers", "markers", 1, 0.0, 5, False) in listed
    assert (5, "Empty", "PPG", "signal", 3, 64.0, 0, False) in listed
    with pytest.raises(BadInputError, match="no stream 'Nope'"):
        Archive(archive, stream="Nope")
    with pytest.raises(BadInputError, match="marker stream"):
        Archive(archive, stream="Events")
    with pytest.raises(BadInputError, match="holds no samples"):
        biocompress.read_raw(archive, stream="Empty")


def test_irregular_stream(made):
    _, streams, archive = made
    irr = streams[4]
    with Archive(archive, stream="Irr") as arc:
        assert arc.stream_header["nominal_srate"] == 0.0
        t = irr.timestamps
        assert arc.sfreq == (t.size - 1) / (t[-1] - t[0])  # its effective rate
        assert same_bits(arc.timestamps(), t)
        assert same_bits(arc.source_values(), irr.values)
    assert any("Irr" in w and "irregular" in w for w in biocompress.open(archive).source["warnings"])


def test_empty_stream_is_recorded(made):
    _, _, archive = made
    with Archive(archive, stream="Empty") as arc:
        assert (arc.n_samples, arc.n_channels, arc.index.size) == (0, 3, 0)
        assert arc.verify()["ok"]
        assert arc.source_values().shape == (0, 3)
        assert arc.timestamps().size == 0
        assert arc.stream_header["footer_xml"].startswith("<?xml")


def test_main_stream_choice(tmp_path):
    rng = np.random.default_rng(3)

    def f32(n, ch):
        return rng.normal(0, 1, (n, ch)).astype(np.float32)

    src = tmp_path / "two_eeg.xdf"
    synthetic_xdf(src, [stream(0, "Small", "EEG", "float32", 500.0, f32(100, 2), lsl_stamps(100, 500.0, 10, 1.0, rng)),
                        stream(1, "Acc", "ACC", "float32", 1000.0, f32(100, 3), lsl_stamps(100, 1e3, 10, 1.0, rng)),
                        stream(2, "Big", "eeg", "float32", 250.0, f32(100, 8), lsl_stamps(100, 250.0, 10, 1.0, rng))])
    with biocompress.open(biocompress.compress(src, tmp_path / "a.bc.h5")) as arc:
        assert arc.streams[0].name == "Big"  # the EEG stream with the most channels
    with biocompress.open(biocompress.compress(src, tmp_path / "b.bc.h5", stream="ACC")) as arc:
        assert arc.streams[0].name == "Acc" and arc.n_channels == 3
    src = tmp_path / "no_eeg.xdf"
    synthetic_xdf(src, [stream(0, "Slow", "ACC", "float32", 50.0, f32(100, 3), lsl_stamps(100, 50.0, 10, 1.0, rng)),
                        stream(1, "Fast", "GYRO", "int16", 200.0, rng.integers(-9, 9, (100, 3)).astype(np.int16),
                               lsl_stamps(100, 200.0, 10, 1.0, rng))])
    with biocompress.open(biocompress.compress(src, tmp_path / "c.bc.h5")) as arc:
        assert arc.streams[0].name == "Fast"  # else the highest rate
    with pytest.raises(BadInputError, match="marker stream"):
        biocompress.compress(_markers_only_source(tmp_path), tmp_path / "d.bc.h5", stream="Events")


def _markers_only_source(tmp_path):
    src = tmp_path / "markers.xdf"
    synthetic_xdf(src, [stream(0, "Events", "Markers", "string", 0.0, [["a"], ["b"]], np.array([1.0, 2.0])),
                        stream(1, "EEG", "EEG", "float32", 100.0, np.zeros((10, 1), np.float32),
                               np.arange(10) / 100.0)])
    return src


def test_markers_only_file_is_refused(tmp_path):
    src = tmp_path / "only.xdf"
    synthetic_xdf(src, [stream(0, "Events", "Markers", "string", 0.0, [["a"]], np.array([1.0]))])
    with pytest.raises(BadInputError, match="no numeric stream"):
        biocompress.compress(src, tmp_path / "x.bc.h5")
    assert not (tmp_path / "x.bc.h5").exists()


def test_int64_beyond_float64_integers_is_refused(tmp_path):
    src = tmp_path / "big.xdf"
    synthetic_xdf(src, [stream(0, "Big", "EEG", "int64", 10.0, np.array([[0], [(1 << 60) + 1]], np.int64),
                               np.array([1.0, 1.1]))])
    with pytest.raises(BadInputError, match="beyond"):
        biocompress.compress(src, tmp_path / "x.bc.h5")


def test_gzipped_xdf_and_options(tmp_path):
    plain = tmp_path / "one.xdf"
    eeg_only(plain)
    packed = tmp_path / "one.xdfz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a = biocompress.compress(plain, tmp_path / "a.bc.h5")
    b = biocompress.compress(packed, tmp_path / "b.bc.h5")
    with biocompress.open(a) as x, biocompress.open(b) as y:
        assert same_bits(x.source_values(), y.source_values()) and same_bits(x.timestamps(), y.timestamps())
    with pytest.raises(BadInputError, match="losslessly only"):
        biocompress.compress(plain, tmp_path / "c.bc.h5", mode="lossy", quality=3)
    with pytest.raises(BadInputError, match="not one"):
        biocompress.compress(tmp_path / "rec.edf", tmp_path / "d.bc.h5", stream="EEG")


def test_without_datetime_no_meas_date(tmp_path):
    src = tmp_path / "nodate.xdf"
    synthetic_xdf(src, [stream(0, "E", "EEG", "int32", 10.0, np.arange(20, dtype=np.int32).reshape(10, 2),
                               np.arange(10) / 10.0)], datetime_text=None)
    raw = biocompress.read_raw(biocompress.compress(src, tmp_path / "x.bc.h5"))
    assert raw.info["meas_date"] is None
    assert raw.get_data()[1].tolist() == list(range(1, 20, 2))


# --- command line --------------------------------------------------------------------------
def test_cli_compress_info_verify_restore(tmp_path, made):
    src = tmp_path / "rec.xdf"
    shutil.copy(made[0], src)
    res = invoke("compress", src, "--stream", "Aux")
    assert res.exit_code == 0, res.output
    archive = tmp_path / "rec.bc.h5"
    res = invoke("info", archive, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["n_channels"] == 4 and info["sfreq"] == 100.0
    assert [(s["index"], s["name"], s["main"]) for s in info["streams"]][:2] == [(1, "Aux", True), (0, "Amp", False)]
    assert ".xdf" in info["restore"]
    res = invoke("info", archive)
    assert res.exit_code == 0 and "3: Events (Markers), 1 ch, irregular, markers" in words(res.output)

    res = invoke("verify", archive, src)
    assert res.exit_code == 0, res.output
    out = words(res.output)
    assert "stream 2 (Dbl, Mixed): 260 samples × 3 channels (double64) and their timestamps bit-exact" in out
    assert "stream 3 (Events, Markers): 5 markers: strings and timestamps exact" in out
    assert "source file sha256: matches" in out

    other = tmp_path / "other.xdf"
    eeg_only(other)
    res = invoke("verify", archive, other)
    assert res.exit_code == 1 and "DIFFER" in res.output

    back = tmp_path / "back.xdf"
    res = invoke("restore", archive, "-o", back)
    assert res.exit_code == 0, res.output
    original, restored = load(src), load(back)
    assert original.keys() == restored.keys()
    for key, s in original.items():
        r = restored[key]
        if s["info"]["channel_format"] == ["string"]:
            assert r["time_series"] == s["time_series"]
        else:
            assert same_bits(np.asarray(r["time_series"]), np.asarray(s["time_series"])) or len(s["time_series"]) == 0
        assert same_bits(r["time_stamps"], s["time_stamps"])
        assert r["clock_times"] == s["clock_times"] and r["clock_values"] == s["clock_values"]
    res = invoke("decompress", archive, "-o", tmp_path / "main.fif")  # the main stream, through MNE
    assert res.exit_code == 0, res.output
    assert leftovers(tmp_path) == []


def test_verify_checks_every_stream(tmp_path, made):
    archive = tmp_path / "rec.bc.h5"
    shutil.copy(made[2], archive)
    report = verify_archive(archive)
    assert report["ok"]
    assert any(line.startswith("stream 6 (Count, Counter): 1300 samples × 2 channels") for line in report["lines"])
    # damage one block of another stream: verify fails and names it; reading it raises
    with Archive(archive, stream=6) as arc:
        row = arc.index[0]
    with h5py.File(archive, "r+") as h5:  # the payload segments are in the file itself
        seg = h5[segment_path("streams/6/data", 0)]
        seg[int(row["offset"]) + 3] ^= 0xFF
    report = verify_archive(archive)
    assert not report["ok"]
    assert any("stream 6 (Count, Counter): corrupt" in line and "CRC" in line for line in report["lines"])
    with Archive(archive, stream=6) as arc, pytest.raises(CorruptArchiveError, match="CRC"):
        arc.read()
    res = invoke("verify", archive)
    assert res.exit_code == 1


def test_stream_attributes_are_covered_by_the_manifest(tmp_path, made):
    archive = tmp_path / "rec.bc.h5"
    shutil.copy(made[2], archive)
    with h5py.File(archive, "r+") as h5:  # a changed byte in the packed metadata (it holds the stream headers)
        blob = h5["meta"][()]
        blob[len(blob) // 3] ^= 0x04
        h5["meta"][...] = blob
    with pytest.raises(CorruptArchiveError, match="packed metadata"), biocompress.open(archive) as arc:
        _ = arc.streams
    assert invoke("verify", archive).exit_code == 1


@pytest.mark.parametrize("damage, problem", [
    (lambda b: b"not an xdf file at all", "not an XDF file"),
    (lambda b: b[:4] + b"\x03" + b[5:], "invalid chunk length field"),
    (lambda b: b[:6] + b"\x63\x00" + b[8:], "unknown tag 99"),
    (lambda b: b[:20], "ends inside its FileHeader"),
    (lambda b: b.replace(b"</channel_format>", b"</channel_formax>", 1), "is not valid XML"),
])
def test_damaged_xdf_exit_2(tmp_path, damage, problem):
    good = tmp_path / "good.xdf"
    eeg_only(good)
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(damage(good.read_bytes()))
    before = folder_names(tmp_path)
    res = invoke("compress", bad)
    assert res.exit_code == 2, res.output
    message = words(res.output)
    assert "bad.xdf" in message and problem in message
    assert "Traceback" not in res.output
    assert folder_names(tmp_path) == before  # nothing left behind


def test_damage_inside_a_samples_chunk_is_found(tmp_path):
    src = tmp_path / "rec.xdf"
    eeg_only(src)
    data = bytearray(src.read_bytes())
    at = data.index(b"\x03\x00\x0b\x00\x00\x00")  # a Samples chunk's tag and stream id
    data[at + 6 : at + 8] = b"\x01\x03"  # its sample count says 3
    (tmp_path / "bad.xdf").write_bytes(bytes(data))
    res = invoke("compress", tmp_path / "bad.xdf")
    assert res.exit_code == 2 and "damaged XDF file" in words(res.output)


def test_file_cut_short_is_kept_with_a_warning(tmp_path):
    src = tmp_path / "rec.xdf"
    streams = eeg_only(src, n=2000)
    (tmp_path / "cut.xdf").write_bytes(src.read_bytes()[:-3000])
    res = invoke("compress", tmp_path / "cut.xdf")
    assert res.exit_code == 0, res.output
    assert "ends inside its last chunk" in words(res.output)
    with biocompress.open(tmp_path / "cut.bc.h5") as arc:
        n = arc.n_samples
        assert 0 < n < 2000
        assert same_bits(arc.source_values(), streams[0].values[:n])
        assert same_bits(arc.timestamps(), streams[0].timestamps[:n])
    assert invoke("verify", tmp_path / "cut.bc.h5", tmp_path / "cut.xdf").exit_code == 0


# --- the corpus's LabRecorder files ---------------------------------------------------------
CORPUS_XDF = sorted((corpus_path() / "wearable").glob("*.xdf")) if (corpus_path() / "wearable").is_dir() else []


@pytest.mark.skipif(not CORPUS_XDF, reason=f"no XDF file in the corpus at {corpus_path() / 'wearable'}: "
                    "corpus XDF tests skipped")
@pytest.mark.parametrize("src", CORPUS_XDF, ids=lambda p: p.name)
def test_corpus_xdf_exact_and_smaller_than_gzip(tmp_path, src):
    archive = biocompress.compress(src, tmp_path / "rec.bc.h5")
    reference = load(src)
    with biocompress.open(archive) as arc:
        assert len(arc.streams) == len(reference)
        for entry in arc.streams:
            ref = next(s for s in reference.values() if s["info"]["name"][0] == entry.name
                       and s["info"]["type"][0] == entry.type)
            with arc.stream(entry.index) as s:
                assert same_bits(s.timestamps(), ref["time_stamps"])
                if entry.samples:
                    assert same_bits(s.source_values(), ref["time_series"])
    assert verify_archive(archive, src)["ok"]
    xdfz = len(gzip.compress(src.read_bytes(), compresslevel=9))
    assert archive.stat().st_size < xdfz, f"archive {archive.stat().st_size} bytes, .xdfz {xdfz}"
