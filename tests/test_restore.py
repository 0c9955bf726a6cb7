"""`biocompress restore`: EDF/BDF files come back byte for byte; other formats through MNE."""

from __future__ import annotations

import h5py
import mne
import numpy as np
import pytest
from typer.testing import CliRunner

import biocompress
from biocompress.cli import app
from biocompress.io import edf_file
from biocompress.io.source import open_raw
from biocompress.files.restore import restore
from conftest import SAMPLES_DIR, assert_bitwise_equal, copy_sample, crafted, leftovers

EDF_SAMPLES = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".edf", ".bdf"))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("src", EDF_SAMPLES, ids=lambda p: p.name)
def test_sample_edf_bdf_restores_byte_identical(src, tmp_path, sample_archive):
    out = tmp_path / src.name
    res = invoke("restore", sample_archive(src), "-o", out)
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == src.read_bytes()
    assert "byte for byte" in flat(res.output)
    assert leftovers(tmp_path) == []


def test_restore_refuses_to_overwrite_and_wrong_extension(tmp_path, sample_archive):
    archive = sample_archive(SAMPLES_DIR / "test_bdf_stim_channel.bdf")
    out = tmp_path / "x.bdf"
    out.write_bytes(b"keep me")
    res = invoke("restore", archive, "-o", out)
    assert res.exit_code == 2 and "x.bdf" in flat(res.output) and out.read_bytes() == b"keep me"
    assert invoke("restore", archive, "-o", out, "--force").exit_code == 0
    assert out.read_bytes() == (SAMPLES_DIR / "test_bdf_stim_channel.bdf").read_bytes()
    res = invoke("restore", archive, "-o", tmp_path / "x.edf")
    assert res.exit_code == 2 and ".bdf" in flat(res.output)
    assert not (tmp_path / "x.edf").exists() and leftovers(tmp_path) == []


def test_annotation_and_mixed_rate_signals_are_kept(sample_archive):
    """TAL signals are stored as bytes; data signals (native-rate ones too) point to channels."""
    for name in ("test_utf8_annotations.edf", "mixed_rate.edf"):
        src = SAMPLES_DIR / name
        layout = edf_file.read_layout(src)
        with biocompress.open(sample_archive(src)) as arc:
            mapped = arc.stored_edf.channel_of_signal
        tal = [s for s in range(layout.n_signals) if layout.is_annotation(s)]
        assert tal and (mapped[tal] == -1).all()
        assert (mapped[[s for s in range(layout.n_signals) if s not in tal]] >= 0).all()


def _edit_header(src, dst, field: slice, text: str, tail: bytes = b""):
    data = bytearray(src.read_bytes())
    width = field.stop - field.start
    data[field] = f"{text:<{width}}".encode("ascii")
    dst.write_bytes(bytes(data) + tail)
    return dst


@pytest.mark.parametrize("records, tail", [("-1", b""), ("9999", b""), ("", b"\x01\x02\x03 partial record")],
                         ids=["records-unknown", "records-too-many", "trailing-bytes"])
def test_lying_header_that_mne_accepts_restores_byte_identical(records, tail, tmp_path):
    src = SAMPLES_DIR / "test_utf8_annotations.edf"
    text = records or edf_file.read_layout(src).header[236:244].decode()
    bad = _edit_header(src, tmp_path / "liar.edf", slice(236, 244), text, tail)
    archive = biocompress.compress(bad, tmp_path / "liar.bc.h5")
    out = tmp_path / "back" / "liar.edf"
    out.parent.mkdir()
    assert restore(archive, out)["exact"] == "bytes"
    assert out.read_bytes() == bad.read_bytes()
    assert_bitwise_equal(biocompress.read_raw(archive).get_data(), open_raw(bad).get_data())


@pytest.mark.parametrize("field, text, problem", [
    (slice(184, 192), "999", "header"),  # header size disagrees with the signal count
    (slice(252, 256), "x1", "signals"),  # signal count is not a number
], ids=["header-size", "signal-count"])
def test_garbled_header_is_a_clear_error(field, text, problem, tmp_path):
    bad = _edit_header(SAMPLES_DIR / "test_utf8_annotations.edf", tmp_path / "garbled.edf", field, text)
    res = invoke("compress", bad)
    assert res.exit_code == 2
    assert "garbled.edf" in flat(res.output)
    assert not (tmp_path / "garbled.bc.h5").exists() and leftovers(tmp_path) == []


def _discontinuous(src, dst, gap_after: int, gap_s: int):
    """An EDF+D copy of ``src`` whose records after ``gap_after`` start ``gap_s`` later."""
    layout = edf_file.read_layout(src)
    data = bytearray(src.read_bytes())
    data[192:197] = b"EDF+D"
    tal = next(s for s in range(layout.n_signals) if layout.is_annotation(s))
    first = layout.data_offset + int(layout.signal_offsets[tal])
    onsets = edf_file.record_onsets(src, layout)
    for r in range(gap_after + 1, layout.n_records):
        at = first + r * layout.record_bytes
        old = f"+{onsets[r]:g}\x14\x14".encode()
        new = f"+{onsets[r] + gap_s:g}\x14\x14".encode()
        assert data[at : at + len(old)] == old
        size = int(layout.samples_per_record[tal]) * 2
        rest = bytes(data[at + len(old) : at + size]).rstrip(b"\x00")
        record = (new + rest).ljust(size, b"\x00")
        data[at : at + size] = record
    dst.write_bytes(bytes(data))
    return dst


def test_discontinuous_edf_keeps_gaps_and_restores(tmp_path):
    src = _discontinuous(SAMPLES_DIR / "test_utf8_annotations.edf", tmp_path / "gappy.edf", gap_after=4, gap_s=7)
    archive = biocompress.compress(src, tmp_path / "gappy.bc.h5")
    with biocompress.open(archive) as arc:
        stored = arc.stored_edf
        assert stored.kind == "EDF+D"
        assert stored.gaps() == [(5.0, 7.0)]
    ref = mne.io.read_raw_edf(src)
    assert_bitwise_equal(biocompress.read_raw(archive).get_data(), ref.get_data())  # MNE's view, kept
    out = tmp_path / "back.edf"
    res = invoke("restore", archive, "-o", out)
    assert res.exit_code == 0 and "1 gap" in flat(res.output)
    assert out.read_bytes() == src.read_bytes()
    info = invoke("info", archive)
    assert "EDF+D" in info.output and "7" in info.output


@pytest.mark.parametrize("reseal", [False, True], ids=["damaged", "crafted"])
def test_damaged_edf_bytes_fail_restore_and_leave_nothing(tmp_path, reseal):
    """Damage to the metadata (the annotation signal's bytes live there) fails its SHA-256; a
    change made by a forger who sealed the archive again still fails the rebuilt file's SHA-256."""
    src = copy_sample("test_utf8_annotations.edf", tmp_path)
    archive = biocompress.compress(src, tmp_path / "a.bc.h5")
    if reseal:
        with crafted(archive) as h5:
            tal = int(np.flatnonzero(h5["edf/channel_of_signal"][()] == -1)[0])
            ds = h5[f"edf/signal_{tal}"]
            row = ds[0]
            row[0] ^= 0x20
            ds[0] = row
    else:
        with h5py.File(archive, "r+") as h5:
            blob = h5["meta"][()]
            blob[len(blob) // 2] ^= 0x20
            h5["meta"][...] = blob
    out = tmp_path / "out" / "a.edf"
    out.parent.mkdir()
    res = invoke("restore", archive, "-o", out)
    assert res.exit_code == 1
    assert ("sha256" if reseal else "packed metadata is damaged") in flat(res.output)
    assert not out.exists() and leftovers(out.parent) == []


def test_other_formats_restore_through_mne_with_exact_samples(tmp_path, sample_archive):
    src = SAMPLES_DIR / "test_NO.vhdr"
    out = tmp_path / "test_NO_raw.fif"
    res = invoke("restore", sample_archive(src), "-o", out)
    assert res.exit_code == 0, res.output
    assert "identical" in flat(res.output)
    assert_bitwise_equal(mne.io.read_raw_fif(out).get_data(), open_raw(src).get_data())


def test_fif_with_acquisition_skip_keeps_gap(tmp_path):
    """A FIF data skip: MNE reads zeros under a BAD_ACQ_SKIP annotation; the archive
    keeps that view, and restoring to FIF writes the skip again."""
    raw = open_raw(SAMPLES_DIR / "Subject00_2.edf").load_data().pick([0, 1, 2, 3])
    raw.set_annotations(mne.Annotations([10.0], [5.0], ["BAD_ACQ_SKIP"], orig_time=raw.annotations.orig_time))
    src = tmp_path / "skip_raw.fif"
    raw.save(src)
    ref = mne.io.read_raw_fif(src)
    assert "BAD_ACQ_SKIP" in ref.annotations.description
    archive = biocompress.compress(src, tmp_path / "skip.bc.h5")
    got = biocompress.read_raw(archive)
    assert_bitwise_equal(got.get_data(), ref.get_data())
    assert list(got.annotations.description) == list(ref.annotations.description)
    out = tmp_path / "back_raw.fif"
    assert restore(archive, out)["exact"] == "samples"
    back = mne.io.read_raw_fif(out)
    assert any(ent is None for ent in back._raw_extras[0]["ent"])  # written as a skip again
    assert_bitwise_equal(back.get_data(), ref.get_data())


# --- one decode pass for both checks (compress and verify) --------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_verify_with_file_decodes_every_block_once(tmp_path, monkeypatch, workers):
    """The samples' SHA-256 and the rebuilt file's come from one decode of every block, whether
    the blocks are decoded here or on worker processes; records straddle windows and groups."""
    from biocompress.codecs.pool import BlockPool
    from biocompress.container.reader import Archive
    from biocompress.files import edf_exact

    src = SAMPLES_DIR / "MB0400FU.EDF"
    dst = biocompress.compress(src, tmp_path / "a.bc.h5", block_samples=700, group_channels=8)
    decoded = []
    remember = Archive._remember
    monkeypatch.setattr(Archive, "_remember", lambda self, i, *a, **k: decoded.append(i) or remember(self, i, *a, **k))
    with Archive(dst) as arc, BlockPool(workers) as pool:
        assert arc.window_groups() > 1
        result, rebuild = edf_exact.verify_with_file(arc, pool=pool)
        assert result["ok"] and rebuild.finish() == arc.source["sha256"]
        assert sorted(decoded) == list(range(arc.index.size))
        assert edf_exact.write_file(arc, edf_exact.NullSink()) == arc.source["sha256"]


def test_compress_refuses_an_archive_whose_rebuilt_file_differs(tmp_path, monkeypatch):
    """Samples that decode right but an EDF file rebuilt wrong: nothing is published."""
    from biocompress.errors import VerificationError

    values_to_bytes = edf_file.values_to_bytes

    def wrong(values, width):
        out = values_to_bytes(values, width).copy()
        out[..., 0] ^= 1
        return out

    monkeypatch.setattr(edf_file, "values_to_bytes", wrong)
    with pytest.raises(VerificationError, match="rebuilt from the archive differs"):
        biocompress.compress(SAMPLES_DIR / "Subject00_2.edf", tmp_path / "a.bc.h5")
    assert leftovers(tmp_path) == [] and not (tmp_path / "a.bc.h5").exists()
