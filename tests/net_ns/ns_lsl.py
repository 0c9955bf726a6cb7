"""A received stream published again on LSL (loopback, in a network namespace, with an LSL
configuration that knows no peer but 127.0.0.1): a float32 µV stream goes out as it came in,
every value and timestamp exactly."""

from __future__ import annotations

import time

import mne
import numpy as np

import net_helpers

from biocompress.container.description import StreamDescription
from biocompress.io import scaling
from biocompress.stream.blocks import Chunk
from biocompress.stream.encoder import StreamEncoder
from biocompress.stream.net import NetSink
from biocompress.stream.net_receive import Receiver
from biocompress.stream.plans import lossless_lanes, times_lane

net_helpers.require_namespace()

N_CH, SFREQ, N, BLOCK = 8, 500.0, 5000, 512


def _lsl_like_stream():
    """What an LSL source of float32 µV samples hands the pipeline: the samples (channel 0 a
    counter), their timestamps and the stream description."""
    rng = np.random.default_rng(3)
    uv = np.cumsum(rng.normal(0, 3, (N_CH, N)), axis=1).astype(np.float32)
    uv[0] = np.arange(N, dtype=np.float32)
    recipe = scaling.Recipe(("mul:e",), {"e": np.full(N_CH, 1e-6)})
    x = recipe.forward(uv, np.arange(N_CH))
    kinds = scaling.detect_kinds(recipe, x)
    assert kinds[0] == 0 and (kinds[1:] == 1).all()  # the counter is integer: both kinds go out exactly
    info = mne.create_info([f"ch{k}" for k in range(N_CH)], SFREQ, "eeg")
    stream = {"name": "amplifier", "type": "EEG", "source_id": "amp-1", "channel_format": "float32",
              "units": ["microvolts"] * N_CH}
    description = StreamDescription(info=info, recipe=recipe, kinds=kinds, block_samples=BLOCK, clock="lsl",
                                    stream=stream)
    stamps = 1000.0 + np.arange(N) / SFREQ + rng.normal(0, 1e-4, N)
    return uv, x, stamps, description, recipe, kinds


def test_the_relay_outlet_gives_back_the_source_samples():
    from mne_lsl.lsl import StreamInlet, resolve_streams

    uv, x, stamps, description, recipe, kinds = _lsl_like_stream()
    with Receiver(lsl_out="relay-test") as receiver:
        sink = NetSink(*receiver.address, description)  # the outlet appears with the description
        found = resolve_streams(timeout=10, name="relay-test")
        assert len(found) == 1
        sinfo = found[0]
        assert (sinfo.n_channels, sinfo.sfreq, sinfo.stype, sinfo.dtype) == (N_CH, SFREQ, "EEG", np.float32)
        inlet = StreamInlet(sinfo, recover=False)
        inlet.open_stream(timeout=10)
        full = inlet.get_sinfo(timeout=10)  # with its description: channel labels and units
        assert full.get_channel_names() == [f"ch{k}" for k in range(N_CH)]
        assert full.get_channel_units() == ["microvolts"] * N_CH
        encoder = StreamEncoder(lossless_lanes(kinds, recipe, BLOCK, 32) + [times_lane(BLOCK, SFREQ)])
        for s in range(0, N, 50):
            for block in encoder.push(Chunk(s, x[:, s : s + 50], stamps[s : s + 50])):
                sink.add(block)
            for block in encoder.flush():
                sink.add(block)
        for block in encoder.finish():
            sink.add(block)
        sink.close()
        samples, times = [], []
        deadline = time.monotonic() + 60
        while sum(len(t) for t in times) < N and time.monotonic() < deadline:
            data, ts = inlet.pull_chunk(timeout=0.5, max_samples=N)
            if len(ts):
                samples.append(np.array(data))
                times.append(np.array(ts))
        inlet.close_stream()
        assert receiver.wait(60)
    assert receiver.error is None and receiver.result["published"] == N
    got = np.concatenate(samples)
    assert got.shape == (N, N_CH) and got.dtype == np.float32
    assert np.array_equal(got.T.view(np.int32), uv.view(np.int32))
    assert np.array_equal(np.concatenate(times), stamps)
