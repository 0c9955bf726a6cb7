"""The crash-safe live archive: journal in, the same archive as ``compress`` out; a journal
read while it is written, after a kill, a truncation or a damaged byte gives back exactly
what was durable, never other values."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import biocompress
import journal_child
from biocompress.container.description import StreamDescription
from biocompress.container.journal import JournalSink, JournalWriter, finalize, is_journal
from biocompress.container.layout import FORMAT_VERSION
from biocompress.container.live import LiveArchive
from biocompress.container.reader import sample_bytes, times_bytes
from biocompress.errors import BadInputError, CorruptArchiveError
from biocompress.files.compress import source_description
from biocompress.files.verify import verify_archive
from biocompress.io import scaling
from biocompress.io.source import open_raw
from biocompress.stream.blocks import Block, Chunk
from biocompress.stream.encoder import StreamEncoder
from biocompress.stream.plans import lossless_lanes
from biocompress.stream.sources import raw_chunks
from conftest import REPO, SAMPLES_DIR, assert_bitwise_equal, leftovers

RECORDING = SAMPLES_DIR / "Subject00_2.edf"  # 21 channels, 500 Hz, 62 s, integer samples
CHILD = Path(__file__).with_name("journal_child.py")


@pytest.fixture(scope="module")
def rec():
    raw, x, recipe, kinds = journal_child.prepare(RECORDING)
    stamps = journal_child.stream_timestamps(x.shape[1], raw.info["sfreq"], 100)
    return raw, x, recipe, kinds, stamps


def _stream(path, rec, *, timestamps=True, block=journal_child.BLOCK, seed=0, flush_p=0.2, markers=True,
            finalize_at_end=True, end=True, stop=None):
    """Push the recording in chunks of random sizes, flushing now and then, into a journal."""
    raw, x, recipe, kinds, stamps = rec
    n = x.shape[1] if stop is None else stop
    lanes = journal_child.lanes(raw, recipe, kinds, block) if timestamps else lossless_lanes(kinds, recipe, block, 32)
    desc = journal_child.description(raw, recipe, kinds, block)
    if not timestamps:
        desc.clock = None
    encoder = StreamEncoder(lanes)
    rng = np.random.default_rng(seed)
    sink = JournalSink(path, desc)
    s = 0
    while s < n:
        e = min(n, s + int(rng.integers(1, 3 * block)))
        for b in encoder.push(Chunk(s, x[:, s:e], stamps[s:e])):
            sink.add(b)
        if rng.random() < flush_p:
            for b in encoder.flush():
                sink.add(b)
        if markers and s // 5000 != e // 5000:
            sink.add_markers([e / raw.info["sfreq"]], [0.5], [f"marker {e}"], timestamps=[stamps[e - 1]])
            if timestamps:
                sink.add_clock(stamps[e - 1], -0.125 * e)
        s = e
    for b in encoder.finish():
        sink.add(b)
    if end:  # a writer that has the samples gives their digests (a finalize without them decodes)
        digests = {"samples_sha256": hashlib.sha256(sample_bytes(x[:, :n])).hexdigest(),
                   "times_sha256": hashlib.sha256(times_bytes(stamps[:n])).hexdigest() if timestamps else None}
        sink.close(finalize=finalize_at_end, **(digests if seed % 2 else {}))
    else:
        sink.writer.close()  # as a killed writer leaves it: no END frame
    return sink


def _check_prefix(arc, rec, n: int | None = None):
    """What an archive (or journal) holds is exactly a prefix of the recording and its timestamps."""
    _, x, _, _, stamps = rec
    n = arc.n_samples if n is None else n
    assert arc.n_samples == n <= x.shape[1]
    assert_bitwise_equal(arc.read(), x[:, :n])
    if arc.has_timestamps:
        assert np.array_equal(arc.timestamps().view(np.int64), stamps[:n].view(np.int64))


# --- round trips ------------------------------------------------------------------
@pytest.mark.parametrize("timestamps", [True, False])
def test_journal_finalizes_to_the_recording(tmp_path, rec, timestamps):
    path = tmp_path / "live.bc.h5"
    sink = _stream(path, rec, timestamps=timestamps)
    assert sink.finalized == path and not is_journal(path) and h5py.is_hdf5(path)
    assert leftovers(tmp_path) == []
    with biocompress.open(path) as arc:
        assert type(arc) is biocompress.Archive and arc.format_version == FORMAT_VERSION
        _check_prefix(arc, rec, rec[1].shape[1])
        assert arc.verify()["ok"] and arc.check_metadata() > 0
        assert "recovery" not in arc.source and arc.source["stream"]["name"] == "child"
        assert arc.has_timestamps == timestamps
        markers = np.array([d.startswith("marker ") for d in arc.annotations.description])
        ends = np.array([int(d.split()[1]) for d in arc.annotations.description[markers]])
        assert markers.sum() >= 5 and np.allclose(arc.annotations.onset[markers], ends / 500.0)
        stamps = arc.annotation_timestamps  # each marker's own timestamp, in annotation order
        assert np.isnan(stamps[~markers]).all() and np.array_equal(stamps[markers], rec[4][ends - 1])
        if timestamps:
            assert arc.clock_offsets.shape == (markers.sum(), 2)
        else:
            assert arc.clock_offsets is None
    raw = biocompress.read_raw(path)
    assert_bitwise_equal(raw.get_data(), rec[1])


def test_clean_stop_gives_the_archive_compress_writes(tmp_path):
    """Same chunks, same lanes: every dataset and attribute equal to compress's (the
    provenance included, given the same source description)."""
    src = SAMPLES_DIR / "test_NO.vhdr"
    raw = open_raw(src)
    block = 16384
    made = biocompress.compress(src, tmp_path / "compressed.bc.h5")
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, raw.get_data(start=0, stop=block))
    desc = StreamDescription(info=raw.info, recipe=recipe, kinds=kinds, block_samples=block,
                             source=source_description(src, raw), annotations=raw.annotations)
    encoder = StreamEncoder(lossless_lanes(kinds, recipe, block, 32))
    with JournalSink(tmp_path / "live.bc.h5", desc) as sink:
        for chunk in raw_chunks(raw, block):
            for b in encoder.push(chunk):
                sink.add(b)
        for b in encoder.finish():
            sink.add(b)
    assert _contents(made) == _contents(tmp_path / "live.bc.h5")


def _contents(path) -> dict:
    """Every object's attributes and every dataset's type, shape and bytes."""
    out = {}
    with h5py.File(path, "r") as f:
        def add(name, obj):
            entry = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                entry["<data>"] = (obj.dtype.str, obj.shape, obj[()].tobytes())
            out["/" + name] = entry
        add("", f)
        f.visititems(add)
    return out


def test_lossy_lanes_journal_decodes_like_compress(tmp_path):
    """The autoencoder lanes of compress --mode lossy (made to a bit rate: one latent step for
    every run of channels), fed live at that step: the finalized archive decodes to the same
    samples as compress's archive of the same recording."""
    from biocompress.codecs.lossy import model_file
    from biocompress.stream.lanes import group_runs
    from biocompress.stream.plans import lossy_lanes

    raw = open_raw(RECORDING).crop(0.0, 12.0, include_tmax=False)
    raw.load_data()
    made = biocompress.compress(raw, tmp_path / "lossy.bc.h5", mode="lossy", bitrate=0.6)
    with biocompress.open(made) as arc:
        step = float(arc.lossy_attrs["step"])
        assert {c["id"] for c in arc.codec_configs} == {"ae-v1"}
    x = raw.get_data()
    block = 16384
    recipe = scaling.recipe_for(raw)
    kinds = scaling.detect_kinds(recipe, x[:, :block])
    stim = np.array([t == "stim" for t in raw.get_channel_types()])
    units = [int(ch["unit"]) for ch in raw.info["chs"]]
    runs = {run: step for run in group_runs(stim.tolist(), len(stim)) if not stim[run[0]]}
    lanes, kinds = lossy_lanes(x[:, :block], kinds, recipe, stim, units, None, model_file.DEFAULT_MODEL, block,
                               steps=runs)
    meta = model_file.load(model_file.DEFAULT_MODEL)[2]
    desc = StreamDescription(info=raw.info, recipe=recipe, kinds=kinds, mode="lossy", block_samples=block,
                             annotations=raw.annotations,
                             lossy={"mode": "lossy", "model_id": meta["model_id"], "step": step, "quality": 3})
    encoder = StreamEncoder(lanes)
    path = tmp_path / "live-lossy.bc.h5"
    sink = JournalSink(path, desc)
    for s in range(0, x.shape[1], 1000):
        for b in encoder.push(Chunk(s, x[:, s : s + 1000])):
            sink.add(b)
    for b in encoder.finish():
        sink.add(b)
    sink.close(finalize=False)
    with biocompress.open(path) as live:  # the journal reads like the archive it will become
        assert live.live and live.mode == "lossy"
        with biocompress.open(made) as arc:
            expected = arc.read()
        assert_bitwise_equal(live.read(), expected)
    assert verify_archive(path)["ok"]
    finalize(path)
    with biocompress.open(path) as arc:
        assert arc.mode == "lossy" and arc.lossy_attrs["quality"] == 3
        assert_bitwise_equal(arc.read(), expected)
    report = verify_archive(path)
    assert report["ok"], report["lines"]


# --- live reading, kills, truncation, damage --------------------------------------------
def _child(recording, journal, *extra):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(CHILD), str(recording), str(journal), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(proc, word: str, timeout: float = 120.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.startswith(word):
            return lines
    raise AssertionError(f"child never said {word!r}: {lines[-3:]} {proc.stderr.read() if proc.poll() else ''}")


def test_reading_a_journal_while_it_is_written(tmp_path, rec):
    path = tmp_path / "growing.bc.h5"
    proc = _child(RECORDING, path, "--pause", "0.01")
    try:
        _wait_for(proc, "durable")
        seen = []
        for _ in range(4):
            with biocompress.open(path) as arc:
                assert isinstance(arc, LiveArchive)
                _check_prefix(arc, rec)
                assert arc.verify()["ok"]
                seen.append(arc.n_samples)
            raw = biocompress.read_raw(path)  # a Raw over the journal keeps reading its snapshot as it grows
            assert_bitwise_equal(raw.get_data(), rec[1][:, : raw.n_times])
            time.sleep(0.3)
            assert_bitwise_equal(raw.get_data(start=0, stop=min(raw.n_times, 900)), rec[1][:, : min(raw.n_times, 900)])
        assert seen == sorted(seen) and seen[-1] > 0
        _wait_for(proc, "done")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with biocompress.open(path) as arc:  # the clean stop finalized it
        assert not getattr(arc, "live", False)
        _check_prefix(arc, rec, rec[1].shape[1])


def test_kill_9_at_random_moments(tmp_path, rec):
    """SIGKILL while streaming (fsync every 0.2 s): every journal opens, verifies, reads back a
    prefix of the source bit for bit, at least what the writer had reported durable, and
    finalizes into an archive holding the same."""
    rng = np.random.default_rng(20261130)
    results = []
    for run in range(10):
        path = tmp_path / f"killed{run}.bc.h5"
        proc = _child(RECORDING, path)
        try:
            _wait_for(proc, "started")
            said: list[str] = []
            listener = threading.Thread(target=lambda out=said, p=proc: out.extend(iter(p.stdout.readline, "")),
                                        daemon=True)
            listener.start()
            time.sleep(float(rng.uniform(0.05, 2.5)))  # any moment: mid-block, mid-frame, mid-fsync
            reported = [int(line.split()[1]) for line in list(said) if line.startswith("durable")]
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        durable = reported[-1] if reported else 0
        if h5py.is_hdf5(path):  # the child finished before the kill
            results.append(("finished", rec[1].shape[1]))
            continue
        with biocompress.open(path) as arc:
            assert arc.live
            _check_prefix(arc, rec)
            assert arc.n_samples >= durable  # nothing reported durable is lost
            report = verify_archive(path)
            assert report["ok"] and "not finalized" in report["lines"][0]
            n, ended = arc.n_samples, arc.contents.complete  # killed after END, while finalizing: complete
        done = finalize(path)
        assert done["n_samples"] == n and done["recovered"] == (not ended)
        with biocompress.open(path) as arc:
            _check_prefix(arc, rec, n)
            assert arc.verify()["ok"]
            assert ended or arc.source["recovery"]["n_samples"] == n
        assert leftovers(tmp_path) == []
        results.append((durable, n))
    print("kill -9 (reported durable, samples read back):", results)
    assert any(isinstance(d, int) and n > 0 for d, n in results), results


@pytest.fixture(scope="module")
def finished_journal(tmp_path_factory, rec):
    """A journal that ended cleanly but was not finalized: 20 s, blocks of 512, markers."""
    path = tmp_path_factory.mktemp("journal") / "ended.bc.h5"
    _stream(path, rec, block=512, finalize_at_end=False, stop=10000, seed=3)
    with biocompress.open(path) as arc:
        assert arc.contents.complete and arc.n_samples == 10000
        assert arc.verify()["expected"] is not None
    return path


def _damaged_reads_a_prefix(path, rec, full: int) -> int | None:
    """Open a damaged journal: a clear error, or exactly a prefix (then it also finalizes)."""
    try:
        arc = biocompress.open(path)
    except (CorruptArchiveError, BadInputError):
        return None
    with arc:
        _check_prefix(arc, rec)
        assert arc.n_samples <= full
        assert arc.verify()["ok"]
        n = arc.n_samples
    finalize(path)
    with biocompress.open(path) as arc:
        _check_prefix(arc, rec, n)
        assert arc.verify()["ok"]
    return n


def test_truncated_journal_reads_up_to_its_last_valid_frame(tmp_path, rec, finished_journal):
    data = finished_journal.read_bytes()
    header_end = 8 + 20 + int.from_bytes(data[12:16], "little")  # the magic, then the HEADER frame
    rng = np.random.default_rng(5)
    cuts = sorted({0, 7, 8, 30, header_end, len(data) - 1} | set(rng.integers(9, len(data), 22).tolist()))
    held = []
    for cut in cuts:
        path = tmp_path / f"cut{cut}.bc.h5"
        path.write_bytes(data[:cut])
        held.append((cut, _damaged_reads_a_prefix(path, rec, 10000)))
    assert all((n is None) == (cut < header_end) for cut, n in held), held  # no description: no archive
    counts = [n for _, n in held if n is not None]
    assert counts == sorted(counts) and counts[-1] == 10000 and len(set(counts)) > 5  # the END frame cut: all kept


def test_a_damaged_byte_never_gives_wrong_values(tmp_path, rec, finished_journal):
    data = finished_journal.read_bytes()
    rng = np.random.default_rng(11)
    for pos in sorted(set(rng.integers(0, len(data), 25).tolist()) | {3, 12, 200}):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{pos}.bc.h5"
        path.write_bytes(bytes(damaged))
        _damaged_reads_a_prefix(path, rec, 10000)


# --- the sink, the writer, finalize ----------------------------------------------------
def test_writer_refuses_unsafe_paths_and_recovery_waits_for_the_writer(tmp_path, rec):
    raw, x, recipe, kinds, _ = rec
    desc = journal_child.description(raw, recipe, kinds)
    other = tmp_path / "notes.bc.h5"
    other.write_text("not an archive")
    with pytest.raises(BadInputError, match="exists"):
        JournalSink(other, desc)
    with pytest.raises(BadInputError, match="not a biocompress archive"):
        JournalSink(other, desc, overwrite=True)
    with pytest.raises(BadInputError, match="extension"):
        JournalSink(tmp_path / "x.edf", desc)
    path = tmp_path / "live.bc.h5"
    writer = JournalWriter(path, desc)
    with pytest.raises(BadInputError, match="still being written"):
        finalize(path)
    with pytest.raises(BadInputError, match="live recording"):  # --force never replaces it
        JournalSink(path, desc, overwrite=True)
    with pytest.raises(BadInputError, match="live recording"):
        biocompress.compress(SAMPLES_DIR / "test_bdf_stim_channel.bdf", path, overwrite=True)
    writer.close()
    finalize(path)  # a journal with only its description: an archive of no samples
    with biocompress.open(path) as arc:
        assert arc.n_samples == 0 and arc.verify()["ok"] and arc.source["recovery"]["n_samples"] == 0
    with pytest.raises(BadInputError, match="already a finalized archive"):
        finalize(path)
    sink = JournalSink(path, desc, overwrite=True)  # replaces an archive, as --force does
    sink.close()
    assert leftovers(tmp_path) == []


def test_sink_refuses_blocks_out_of_order(tmp_path, rec):
    raw, x, recipe, kinds, _ = rec
    desc = journal_child.description(raw, recipe, kinds)
    desc.clock = None
    sink = JournalSink(tmp_path / "live.bc.h5", desc)
    codec = {"id": "float-xor-zlib-v1", "level": 9, "width": 8}
    with pytest.raises(ValueError, match="order"):
        sink.add(Block(5, 10, 0, 21, codec, b"x"))
    with pytest.raises(ValueError, match="clock"):
        sink.add_clock(1.0, 0.5)
    with pytest.raises(ValueError, match="clock"):
        sink.add_times(Block(0, 10, 0, 1, {"id": "times-v1"}, b"x"))
    sink.close()


def test_an_error_ends_the_recording_with_a_note(tmp_path, rec):
    path = tmp_path / "stopped.bc.h5"
    raw, x, recipe, kinds, stamps = rec
    encoder = StreamEncoder(journal_child.lanes(raw, recipe, kinds, 1000))
    with pytest.raises(RuntimeError, match="channel count changed"):
        with JournalSink(path, journal_child.description(raw, recipe, kinds, 1000)) as sink:
            for b in encoder.push(Chunk(0, x[:, :2500], stamps[:2500])):
                sink.add(b)
            raise RuntimeError("channel count changed from 21 to 22")
    with biocompress.open(path) as arc:  # finalized: what was complete is kept
        _check_prefix(arc, rec, 2000)
        assert "channel count changed" in arc.source["notes"][0]


def test_crafted_frames_make_the_journal_corrupt(tmp_path, rec):
    """A frame that passes its CRC but says what no writer writes is corruption, not a crash."""
    from biocompress.container import frames
    from biocompress.container.frames import FrameType

    path = tmp_path / "ended.bc.h5"
    _stream(path, rec, block=512, finalize_at_end=False, stop=3000, markers=False)
    data = path.read_bytes()
    with biocompress.open(path) as arc:
        seq = arc.contents.frames
    for kind, payload in [(FrameType.BLOCK, frames.block_payload(3000, 3100, 0, 21, 99, b"x")),
                          (FrameType.HEADER, b"{}"), (FrameType.CODEC, frames.json_payload({"number": 0}))]:
        crafted = tmp_path / "crafted.bc.h5"
        crafted.write_bytes(data + frames.encode(kind, seq, payload))
        with pytest.raises(CorruptArchiveError):
            biocompress.open(crafted)


# --- the command line ----------------------------------------------------------------
def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "biocompress.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_verify_info_and_recover_a_crashed_journal(tmp_path, rec):
    path = tmp_path / "crashed.bc.h5"
    _stream(path, rec, end=False, stop=6000, block=1024)
    with open(path, "ab") as f:
        f.write(b"BCF\x03 torn frame")  # what a write cut short leaves
    proc = _cli("verify", path)
    assert proc.returncode == 0, proc.stderr
    assert "not finalized:" in proc.stdout and "samples durable" in proc.stdout and "OK" in proc.stdout
    proc = _cli("info", "--json", path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["state"].startswith("not finalized") and summary["n_samples"] == 6000
    proc = _cli("recover", path)
    assert proc.returncode == 0, proc.stderr
    assert "recovered" in proc.stdout and "bytes after the last valid frame" in proc.stdout
    proc = _cli("verify", path)
    assert proc.returncode == 0 and "not finalized" not in proc.stdout and "timestamps" in proc.stdout
    assert "recovered" in json.loads(_cli("info", "--json", path).stdout)
    proc = _cli("recover", path)
    assert proc.returncode == 2 and "already a finalized archive" in proc.stderr
    proc = _cli("recover", tmp_path / "missing.bc.h5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    with biocompress.open(path) as arc:
        _check_prefix(arc, rec, 6000)


def test_archive_recover_finalizes_in_place(tmp_path, rec):
    path = tmp_path / "crashed.bc.h5"
    _stream(path, rec, end=False, stop=4000, block=1024, timestamps=False)
    arc = biocompress.open(path)
    assert arc.live and "not finalized" in arc.state_line()
    assert arc.recover() == path
    with biocompress.open(path) as done:
        _check_prefix(done, rec, 4000)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_stream_description_round_trips_and_malformed_ones_are_corrupt(tmp_path, rec):
    from biocompress.container import frames
    from biocompress.container.journal import MAGIC

    raw, x, recipe, kinds, _ = rec
    d = journal_child.description(raw, recipe, kinds).to_dict()
    back = StreamDescription.from_dict(json.loads(json.dumps(d)), "here")
    assert back.to_dict() == d and back.has_timestamps and back.n_channels == 21
    broken = [{}, {**d, "version": 2}, {**d, "kinds": [9] * 21}, {**d, "kinds": [0] * 20}, {**d, "mode": "zip"},
              {**d, "recipe": {"steps": ["mul:e"], "params": {"e": [1.0] * 20}}}, {**d, "info": {"sfreq": 1}},
              {**d, "block_samples": 0}, {**d, "lossy_model": "%%%"}, {**d, "source": [1]}]
    for bad in broken:
        with pytest.raises(CorruptArchiveError, match="stream description"):
            StreamDescription.from_dict(bad, "here")
    path = tmp_path / "bad.bc.h5"
    path.write_bytes(MAGIC + frames.encode(frames.FrameType.HEADER, 0, frames.json_payload({"version": 1})))
    with pytest.raises(CorruptArchiveError, match="stream description"):
        biocompress.open(path)
    proc = _cli("verify", path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
