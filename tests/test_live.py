"""The live pipeline without sockets: chunks of an acquisition loop → Recorder → sinks.

(The LSL tests, which open sockets, are in tests/network and run in a network namespace.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO

import biocompress
from biocompress.errors import BadInputError
from biocompress.files.verify import verify_archive
from biocompress.stream.blocks import Chunk
from biocompress.stream.description import describe_arrays
from biocompress.stream.live import COUNTER_MODULUS, CounterCheck, Recorder
from biocompress.stream.record import compress_chunks
from biocompress.stream.sinks import ArchiveSink, MemorySink, TeeSink
from biocompress.stream.sources import ArraySource

RNG = np.random.default_rng(7)


def _signal(n_ch: int, n: int) -> np.ndarray:
    """Smooth random walks, as µV."""
    return np.cumsum(RNG.normal(scale=2.0, size=(n_ch, n)), axis=1)


def _pieces(x: np.ndarray, sizes=(1, 37, 5, 200, 64)):
    """x cut into chunks of uneven sizes, as an acquisition loop hands them over."""
    at, k = 0, 0
    while at < x.shape[1]:
        n = sizes[k % len(sizes)]
        yield x[:, at : at + n]
        at, k = at + n, k + 1


def _bits(x) -> np.ndarray:
    return np.ascontiguousarray(x, np.float64).view(np.int64)


@pytest.mark.parametrize("dtype, units, scale", [
    (np.float32, "microvolts", 1e-6),
    (np.int16, "uV", 1e-6),
    (np.float64, "volts", 1.0),
])
def test_chunks_of_any_format_are_kept_exactly(tmp_path, dtype, units, scale):
    x = _signal(5, 3000)
    x = x.astype(dtype) if dtype != np.int16 else np.rint(x * 10).astype(dtype)
    x[2, 100] = np.nan if dtype != np.int16 else x[2, 100]
    path = compress_chunks(_pieces(x), tmp_path / "a.bc.h5", sfreq=500.0, ch_names=[f"E{k}" for k in range(5)],
                           units=units, block_ms=100)
    got = biocompress.read_raw(path).get_data()
    expected = x.astype(np.float64) if dtype == np.float64 else x.astype(np.float64) * scale
    assert (_bits(got) == _bits(expected)).all()
    with biocompress.open(path) as arc:
        kinds = set(arc.h5["channels/value_kind"][()].tolist())
        assert kinds == {{np.float32: 1, np.int16: 0, np.float64: 2}[dtype]}
        assert arc.source["kind"] == "arrays" and arc.verify()["ok"]


def test_recorder_hands_every_block_timestamp_and_note_to_the_sink(tmp_path):
    x = _signal(3, 1000).astype(np.float32)
    stamps = 100.0 + np.arange(1000) / 250.0
    description = describe_arrays(["a", "b", "c"], 250.0)
    chunks = list(_pieces(x))
    starts = np.cumsum([0] + [c.shape[1] for c in chunks])[:-1]
    source = ArraySource(description, chunks, [stamps[s : s + c.shape[1]] for s, c in zip(starts, chunks)])
    memory = MemorySink()
    archive = ArchiveSink(tmp_path / "b.bc.h5")
    end = Recorder(source, TeeSink(archive, memory), block_ms=40).run()
    assert end["n_samples"] == 1000 and end["stop"] == "end of data" and end["path"] == tmp_path / "b.bc.h5"
    assert (_bits(memory.timestamps) == _bits(stamps)).all()
    covered = np.zeros(1000, int)
    for block in memory.blocks:
        assert block.t_stop - block.t_start <= 10  # 40 ms at 250 Hz: no sample waits for a larger block
        covered[block.t_start : block.t_stop] += block.ch_stop - block.ch_start
    assert (covered == 3).all()  # every sample of every channel in exactly one block
    with biocompress.open(end["path"]) as arc:
        assert memory.end["samples_sha256"] == arc.attrs["samples_sha256"]
    assert memory.header.mode == "lossless" and memory.flushes > 0


def test_lossy_chunks_verify_and_record_their_fidelity(tmp_path):
    x = (_signal(6, 4000) + 20 * np.sin(np.arange(4000) / 15)).astype(np.float32)
    path = compress_chunks(_pieces(x), tmp_path / "c.bc.h5", sfreq=250.0, ch_names=[f"E{k}" for k in range(6)],
                           mode="lossy", quality=3)
    assert verify_archive(path)["ok"]
    with biocompress.open(path) as arc:
        assert arc.mode == "lossy" and arc.lossy_attrs["quality"] == 3
        overall = arc.fidelity["overall"]
        y = arc.read()
    error = y - x.astype(np.float64) * 1e-6
    # figures are stored to 6 significant digits
    assert overall["max_abs_error_uv"] == pytest.approx(np.abs(error).max() * 1e6, rel=1e-5)
    assert overall["rmse_uv"] == pytest.approx(np.sqrt(np.mean(error**2)) * 1e6, rel=1e-5)


def test_a_stop_request_finalizes_what_came(tmp_path):
    stop = threading.Event()
    x = _signal(2, 10_000).astype(np.float32)

    def loop():
        for k, piece in enumerate(_pieces(x, (100,))):
            if k == 12:
                stop.set()
            yield piece

    path = compress_chunks(loop(), tmp_path / "d.bc.h5", sfreq=100.0, ch_names=["a", "b"], stop=stop)
    got = biocompress.read_raw(path).get_data()
    assert got.shape == (2, 1300)
    assert (_bits(got) == _bits(x[:, :1300].astype(np.float64) * 1e-6)).all()


def test_values_the_format_cannot_hold_are_refused_after_finalizing(tmp_path):
    good = np.ones((2, 50), np.float32)
    bad = np.full((2, 50), 0.1, np.float64)  # not a float32 value
    with pytest.raises(BadInputError, match="float32 cannot represent exactly") as caught:
        compress_chunks(iter([good, good, bad]), tmp_path / "e.bc.h5", sfreq=100.0, ch_names=["a", "b"])
    assert caught.value.end["n_samples"] == 100
    assert biocompress.read_raw(tmp_path / "e.bc.h5").get_data().shape == (2, 100)
    with pytest.raises(BadInputError, match="shape"):
        compress_chunks(iter([np.ones((3, 5), np.float32)]), tmp_path / "f.bc.h5", sfreq=100.0, ch_names=["a", "b"])
    assert not (tmp_path / "f.bc.h5").exists()


def test_the_output_is_checked_before_recording(tmp_path):
    taken = tmp_path / "taken.bc.h5"
    taken.write_bytes(b"not an archive")
    with pytest.raises(BadInputError, match="exists"):
        compress_chunks(iter([np.ones((1, 5), np.float32)]), taken, sfreq=10.0, ch_names=["a"])
    with pytest.raises(BadInputError, match="mode"):
        compress_chunks(iter([]), tmp_path / "g.bc.h5", sfreq=10.0, ch_names=["a"], mode="lossless", quality=3)
    assert taken.read_bytes() == b"not an archive"


def test_counter_check_counts_gaps_repeats_and_wraps():
    check = CounterCheck(0)
    top = COUNTER_MODULUS - 3
    runs = [np.arange(top, top + 6) % COUNTER_MODULUS,  # wraps at 2^24: nothing lost
            np.array([3, 3, 4, 8, 9]),  # one repeat, then 5, 6, 7 lost
            np.array([5, 6, 7, 8, 9, 10])]  # went back: 5…9 again (5 duplicates)
    start = 0
    for counts in runs:
        check.update(Chunk(start, counts[None, :].astype(np.float64)), 1.0)
        start += counts.size
    assert (check.lost, check.duplicated) == (3, 1 + 5)


def test_describe_lsl_stream_info():
    """An LSL header (no socket opened: a StreamInfo is an object) → channels, units, kinds."""
    lsl = pytest.importorskip("biocompress.stream.lsl")
    from mne_lsl.lsl import StreamInfo

    info = StreamInfo("amp", "EEG", 3, 512.0, "float32", "amp-1")
    info.set_channel_names(["Fz", "Cz", "TRIG"])
    info.set_channel_types(["eeg", "eeg", "stim"])
    info.set_channel_units(["microvolts", "mV", "none"])
    d = lsl.describe(info)
    assert d.ch_names == ["Fz", "Cz", "TRIG"] and d.ch_types == ["eeg", "eeg", "stim"]
    assert d.scale.tolist() == [1e-6, 1e-3, 1.0] and d.kinds.tolist() == [1, 1, 1]
    assert all(ch["unit_mul"] == 0 for ch in d.info["chs"])
    assert d.source["name"] == "amp" and "<nominal_srate>" in d.source["xml"]
    for fmt, kind in (("int16", 0), ("int32", 0), ("float64", 2)):
        assert lsl.describe(StreamInfo("s", "EEG", 1, 100.0, fmt, "x")).kinds.tolist() == [kind]
    with pytest.raises(BadInputError, match="strings"):
        lsl.describe(StreamInfo("m", "Markers", 1, 0.0, "string", "x"))
    with pytest.raises(BadInputError, match="no regular rate"):
        lsl.describe(StreamInfo("e", "Events", 1, 0.0, "float32", "x"))
    assert lsl.marker_text(["go"], ["m"]) == "go"
    assert lsl.marker_text(np.array([2.0]), ["m"]) == "2"
    assert lsl.marker_text(np.array([0.0, -1.0, 0.5]), ["a", "b", "c"]) == "b=-1, c=0.5"


@pytest.mark.parametrize("args, message", [
    (["stream", "--lsl", "x", "-o", "{tmp}/o.bc.h5", "--mode", "lossy"], "quality"),
    (["stream", "--lsl", "x", "-o", "{tmp}/o.edf"], "extension"),
    (["replay", "{tmp}/missing.edf", "--name", "x"], "missing.edf"),
    (["replay", str(REPO / "data_samples" / "mixed_rate.edf"), "--name", "x", "--format", "int8"], "formats"),
])
def test_command_line_refuses_bad_arguments_before_any_stream(tmp_path, args, message):
    """(Each fails before an LSL inlet or outlet exists: no socket is opened.)"""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    run = subprocess.run([sys.executable, "-m", "biocompress.cli", *args], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []
