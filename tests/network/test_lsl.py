"""Live LSL streams → archives (run inside a loopback network namespace only).

A recording of data_samples/ is replayed as an LSL stream with a counter channel; the
recorder's archive must hold exactly the samples pushed (the counter 0, 1, 2, … with no
gap or repeat), bit for bit in lossless mode, every sample's timestamp and every
marker's, and survive the stream disappearing mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mne
import numpy as np
import pytest
from lsl_helpers import playing

import biocompress
from biocompress.errors import StreamError
from biocompress.files.verify import verify_archive
from biocompress.stream.record import record
from biocompress.stream.replay import Replay
from biocompress.stream.sinks import ArchiveSink, MemorySink, TeeSink

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data_samples"
MODULUS = 1 << 24


def _raw(name: str, seconds: float) -> mne.io.BaseRaw:
    raw = mne.io.read_raw(SAMPLES / name, preload=True, verbose="error")
    return raw.crop(0, seconds - 1 / raw.info["sfreq"])


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float64).view(np.int64)


def _float32_view(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """What a float32 replay delivers, as the archive holds it: µV float32 back in volts."""
    scale = np.where(gain == 1e6, 1e-6, 1.0)
    return (x * gain[:, None]).astype(np.float32).astype(np.float64) * scale[:, None]


def _record(name: str, dst: Path, **kw):
    memory = MemorySink()
    try:
        end = record(name, sink=TeeSink(ArchiveSink(dst), memory), timeout=20, **kw)
    except StreamError as exc:
        end = exc.end
        end["error_raised"] = exc
    return end, memory


def test_lossless_stream_holds_exactly_what_was_pushed(tmp_path):
    raw = _raw("mixed_rate.edf", 2.5)
    n = raw.n_times
    replay = Replay(raw, "bc-lossless", counter=True, chunk_size=16)
    with playing(replay) as player:
        end, memory = _record("bc-lossless", tmp_path / "a.bc.h5", markers=["bc-lossless-markers"],
                              duration=n / raw.info["sfreq"])
        pushed = player.join()
    assert pushed == n and end["n_samples"] == n and end["stop"] == "duration"
    assert end["lost"] == 0 and end["duplicated"] == 0
    arc_raw = biocompress.read_raw(end["path"])
    got = arc_raw.get_data()
    assert got.shape == (raw.info["nchan"] + 1, n)
    np.testing.assert_array_equal(got[-1], np.arange(n))  # the counter: nothing lost, nothing twice
    expected = _float32_view(raw.get_data(), replay.gain)
    assert (_bits(got[:-1]) == _bits(expected)).all()  # lossless: bit for bit what the stream delivered
    assert arc_raw.ch_names == raw.ch_names + ["counter"]
    # every sample's timestamp, exactly as pushed
    assert (_bits(memory.timestamps) == _bits(replay.stamp(np.arange(n)))).all()
    # markers: the annotations' texts, with the exact timestamps of their onset samples
    assert [m.description for m in memory.markers] == replay.descriptions
    onset_stamps = memory.timestamps[replay.onsets]
    assert (_bits(np.array([m.timestamp for m in memory.markers])) == _bits(onset_stamps)).all()
    assert list(arc_raw.annotations.description) == replay.descriptions
    np.testing.assert_allclose(arc_raw.annotations.onset, replay.onsets / raw.info["sfreq"], atol=1e-3)
    assert memory.clocks and all(np.isfinite(c.offset) for c in memory.clocks)
    with biocompress.open(end["path"]) as arc:
        assert arc.source["kind"] == "lsl" and arc.source["name"] == "bc-lossless"
        assert "<channel_format>float32</channel_format>" in arc.source["xml"]
        assert (_bits(arc.h5["annotations/timestamp"][()]) == _bits(onset_stamps)).all()
        assert (_bits(arc.timestamps()) == _bits(memory.timestamps)).all()  # the archive keeps them exactly
        assert arc.clock_offsets is not None and len(arc.clock_offsets)
        assert arc.verify()["ok"]


def test_double_stream_through_the_command_line_is_bit_exact(tmp_path):
    """replay --format double64 --counter | stream: MNE's own values, bit for bit."""
    seconds = 1.5
    src = SAMPLES / "Subject00_2.edf"
    out = tmp_path / "cli.bc.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "biocompress.cli"]
    player = subprocess.Popen(cli + ["replay", str(src), "--name", "bc-cli", "--counter", "--format", "double64",
                                     "--wait", "30"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rec = subprocess.run(cli + ["stream", "--lsl", "bc-cli", "-o", str(out), "--duration", str(seconds),
                                    "--timeout", "20"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        player.send_signal(signal.SIGTERM)
        player_out, player_err = player.communicate(timeout=30)
    assert rec.returncode == 0, rec.stderr
    assert "wrote" in rec.stdout and "lost 0, duplicated 0" in rec.stdout
    assert player.returncode == 0, player_err
    raw = mne.io.read_raw(src, verbose="error")
    n = int(round(seconds * raw.info["sfreq"]))
    got = biocompress.read_raw(out).get_data()
    np.testing.assert_array_equal(got[-1], np.arange(n))
    assert (_bits(got[:-1]) == _bits(raw.get_data(stop=n))).all()


def test_lossy_stream_keeps_the_counter_exact(tmp_path):
    raw = _raw("Subject00_2.edf", 3.0)
    n = raw.n_times
    replay = Replay(raw, "bc-lossy", counter=True, chunk_size=25)
    with playing(replay) as player:
        end, _ = _record("bc-lossy", tmp_path / "lossy.bc.h5", mode="lossy", quality=3,
                         duration=n / raw.info["sfreq"])
        player.join()
    assert end["n_samples"] == n and end["lost"] == 0 and end["duplicated"] == 0
    assert verify_archive(end["path"])["ok"]
    with biocompress.open(end["path"]) as arc:
        assert arc.mode == "lossy" and arc.fidelity["overall"]["prdn"] > 0
        got = arc.read(0, n)
    np.testing.assert_array_equal(got[-1], np.arange(n))  # a stim channel: exact in lossy modes too
    expected = _float32_view(raw.get_data(), replay.gain)
    assert np.sqrt(np.mean((got[:-1] - expected) ** 2)) < 0.5 * np.std(expected)


def test_a_stream_that_disappears_is_finalized(tmp_path):
    raw = _raw("mixed_rate.edf", 3.0)
    stop_at = 700
    replay = Replay(raw, "bc-lost", counter=True, chunk_size=16)
    with playing(replay, max_samples=stop_at) as player:
        end, memory = _record("bc-lost", tmp_path / "lost.bc.h5", reconnect_s=1.0)
        assert player.join() == stop_at
    error = end["error_raised"]
    assert "bc-lost" in str(error) and "lost" in str(error) and error.samples == stop_at
    assert end["n_samples"] == stop_at and end["lost"] == 0 and end["duplicated"] == 0
    got = biocompress.read_raw(end["path"]).get_data()
    np.testing.assert_array_equal(got[-1], np.arange(stop_at))
    with biocompress.open(end["path"]) as arc:
        assert arc.verify()["ok"]
        assert any("recording stopped" in note for note in arc.source["notes"])
    assert memory.timestamps.size == stop_at


def test_a_stream_restarted_with_other_channels_stops_the_recording(tmp_path):
    first = _raw("mixed_rate.edf", 2.0)
    other = _raw("mixed_rate.edf", 2.0).pick(list(range(8)))
    stop_at = 600
    result = {}

    def run_recorder():
        result["end"], _ = _record("bc-restart", tmp_path / "restart.bc.h5", reconnect_s=15.0)

    recorder = threading.Thread(target=run_recorder, daemon=True)
    with playing(Replay(first, "bc-restart", counter=True, chunk_size=16), max_samples=stop_at) as player:
        recorder.start()
        assert player.join() == stop_at
    with playing(Replay(other, "bc-restart", loop=True, chunk_size=16), wait_for_consumer=None):
        recorder.join(60)
    assert not recorder.is_alive()
    end = result["end"]
    error = end["error_raised"]
    assert "restarted with 8 channels where it had 17" in str(error)
    assert end["n_samples"] == stop_at
    np.testing.assert_array_equal(biocompress.read_raw(end["path"]).get_data()[-1], np.arange(stop_at))


def test_sigterm_stops_the_recorder_cleanly(tmp_path):
    raw = _raw("mixed_rate.edf", 6.0)
    out = tmp_path / "term.bc.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with playing(Replay(raw, "bc-term", counter=True, chunk_size=16)) as player:
        rec = subprocess.Popen([sys.executable, "-m", "biocompress.cli", "stream", "--lsl", "bc-term", "-o", str(out),
                                "--timeout", "20"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while player.pushed < 512 and time.monotonic() < deadline and rec.poll() is None:
            time.sleep(0.05)
        rec.send_signal(signal.SIGTERM)
        stdout, stderr = rec.communicate(timeout=60)
    assert rec.returncode == 0, stderr
    assert "stopped: stopped" in stdout
    got = biocompress.read_raw(out).get_data()
    assert got.shape[1] > 0
    np.testing.assert_array_equal(got[-1], np.arange(got.shape[1]))


def test_int16_stream_and_numeric_markers(tmp_path):
    """Integer samples are stored as integers (value kind int, unit scale as the recipe);
    a numeric, irregular marker stream becomes annotations with its exact timestamps."""
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    n_ch, sfreq, n = 4, 250.0, 500
    samples = (np.arange(n * n_ch).reshape(n, n_ch) * 37 % 2001 - 1000).astype(np.int16)
    info = StreamInfo("bc-int", "EEG", n_ch, sfreq, "int16", "bc-int-src")
    info.set_channel_names([f"E{k}" for k in range(n_ch)])
    info.set_channel_types("eeg")
    info.set_channel_units("microvolts")
    minfo = StreamInfo("bc-int-events", "Markers", 1, 0.0, "int32", "bc-int-events-src")
    outlet, moutlet = StreamOutlet(info, 10), StreamOutlet(minfo, 1)
    stamps = 1000.0 + np.arange(n) / sfreq
    marks = [(7, 1000.25), (-3, 1001.5)]

    def push():
        for o in (outlet, moutlet):
            assert o.wait_for_consumers(30)
        t0 = local_clock()
        for a in range(0, n, 50):
            while local_clock() < t0 + a / sfreq:
                time.sleep(0.005)
            outlet.push_chunk(samples[a : a + 50], timestamp=stamps[a : a + 50])
            for value, ts in marks:
                if stamps[a] <= ts < stamps[min(n - 1, a + 49)] + 1e-9:
                    moutlet.push_sample(np.array([value], np.int32), timestamp=ts)

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    end, memory = _record("bc-int", tmp_path / "int.bc.h5", markers=["bc-int-events"], duration=n / sfreq)
    pusher.join(30)
    del outlet, moutlet
    assert end["n_samples"] == n
    with biocompress.open(end["path"]) as arc:
        assert (arc.h5["channels/value_kind"][()] == 0).all()  # int
        got = arc.read(0, n)
    assert (_bits(got) == _bits(samples.T.astype(np.float64) * 1e-6)).all()
    assert (_bits(memory.timestamps) == _bits(stamps)).all()
    assert [(m.description, m.timestamp) for m in memory.markers] == [("7", 1000.25), ("-3", 1001.5)]
    np.testing.assert_allclose(memory.onsets, [0.25, 1.5], atol=1e-3)
