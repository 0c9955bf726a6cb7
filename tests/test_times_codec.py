"""times-v1: timestamps exactly, whatever their values; a regular stream's almost free."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biocompress.codecs import get_codec
from biocompress.codecs.float_codes import codes_to_f64, f64_to_codes
from biocompress.codecs.times import LINE, PREVIOUS, RATE, STEP, TimesCodec
from biocompress.container.layout import TIMES
from biocompress.errors import CorruptArchiveError
from biocompress.stream.blocks import Chunk
from biocompress.stream.plans import times_lane
from codec_conformance import check_codec

N = 16384


def lsl_like(n: int, sfreq: float, t0: float, chunk: int, jitter: float, seed: int = 0) -> np.ndarray:
    """As LSL stamps a stream: each chunk's first sample from the clock (jittered), the others
    the previous timestamp plus 1.0 / srate."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    for s in range(0, n, chunk):
        x[s] = t0 + s / sfreq + rng.normal(0, jitter)
        for i in range(s + 1, min(n, s + chunk)):
            x[i] = x[i - 1] + 1.0 / sfreq
    return x


def special_series(n: int = 600) -> np.ndarray:
    """Gaps, repeated values, a step back, NaN (with a payload), ±inf, ±0.0, extremes."""
    x = 100.0 + np.arange(n) / 1000.0
    x[n // 3 :] += 3.5
    x[n // 2 : n // 2 + 10] = x[n // 2 - 1]
    x[n // 2 + 20] = x[n // 2 + 19] - 1.0
    nan = np.array([0x7FF8000000000123], np.uint64).view(np.float64)[0]
    x[8:16] = [nan, -0.0, 0.0, np.inf, -np.inf, np.finfo(float).max, -np.finfo(float).max, 5e-324]
    return x


def _roundtrip(x: np.ndarray, hints=()):
    codes = f64_to_codes(np.asarray(x, np.float64))[np.newaxis]
    payload, chosen = TimesCodec().encode_with(codes, hints)
    out = TimesCodec().decode(payload)
    assert out.dtype == np.int64 and np.array_equal(out, codes)
    assert np.array_equal(codes_to_f64(out[0]).view(np.int64), np.asarray(x, np.float64).view(np.int64))
    return payload, chosen


@pytest.mark.parametrize("series", ["lsl", "special", "irregular", "line"])
def test_times_codec_conformance(series):
    x = {"lsl": lsl_like(700, 500.0, 1234.5, 32, 1e-4), "special": special_series(),
         "irregular": np.cumsum(np.random.default_rng(1).exponential(0.01, 500)),
         "line": 50.0 + np.arange(800) / 300.0}[series]
    check_codec(TimesCodec(), f64_to_codes(x)[np.newaxis])


@pytest.mark.parametrize("sfreq", [250.0, 256.0, 500.0, 1000.0, 2048.0, 300.0, 512.5])
@pytest.mark.parametrize("t0", [0.0, 12345.678, 987654.321])
def test_regular_series_cost_almost_nothing(sfreq, t0):
    for x in (t0 + np.arange(N) / sfreq, t0 + np.arange(N) * (1.0 / sfreq)):
        payload, _ = _roundtrip(x)
        assert 8 * len(payload) / N < 0.25  # bits per sample, against 64 stored plainly


def test_lsl_timestamps_cost_only_their_jitter():
    """Within a chunk LSL's timestamps are exactly predictable: the cost is the jitter of each
    chunk's first timestamp, well under a bit a sample for chunks of 32 and 100 µs of jitter."""
    x = lsl_like(N, 1000.0, 98765.4321, 32, 1e-4)
    payload, chosen = _roundtrip(x)
    assert chosen[0] == STEP
    assert 8 * len(payload) / N < 1.0
    without_jitter = lsl_like(N, 1000.0, 98765.4321, N, 0.0)
    assert len(_roundtrip(without_jitter)[0]) < 64


def test_block_after_block_with_hints_stays_exact_and_free():
    """A clock stamping sample j as t0 + j / sfreq: the block-local line of a later block
    rounds differently, the previous block's line moved on by its length does not."""
    full = 100000.123 + np.arange(4 * N) / 1000.0
    lane = times_lane(N, 1000.0)
    blocks = []
    for b in range(4):
        blocks += lane.push(Chunk(b * N, np.zeros((1, N)), full[b * N : (b + 1) * N]))
    assert [(bl.t_start, bl.t_stop, bl.section) for bl in blocks] == [(b * N, (b + 1) * N, TIMES) for b in range(4)]
    for b, block in enumerate(blocks):
        codes = get_codec(block.config).decode(block.payload)
        assert np.array_equal(codes_to_f64(codes[0]), full[b * N : (b + 1) * N])
        assert len(block.payload) < 64


def test_times_lane_cuts_where_told_and_needs_timestamps():
    lane = times_lane(100, 500.0)
    t = 10.0 + np.arange(250) / 500.0
    blocks = lane.push(Chunk(0, np.zeros((2, 130)), t[:130]))
    blocks += lane.flush()
    blocks += lane.push(Chunk(130, np.zeros((2, 120)), t[130:]))
    blocks += lane.finish()
    assert [(b.t_start, b.t_stop) for b in blocks] == [(0, 100), (100, 130), (130, 230), (230, 250)]
    back = np.concatenate([codes_to_f64(get_codec(b.config).decode(b.payload)[0]) for b in blocks])
    assert np.array_equal(back, t)
    with pytest.raises(ValueError, match="timestamp"):
        lane.push(Chunk(250, np.zeros((2, 5)), None))
    with pytest.raises(ValueError, match="timestamp"):
        lane.push(Chunk(250, np.zeros((2, 5)), np.zeros(4)))


@pytest.mark.parametrize("kind", [PREVIOUS, STEP, LINE, RATE])
def test_every_predictor_decodes_any_series_exactly(kind):
    """Whatever predictor a payload names, the differences make up for it exactly."""
    x = special_series(300)
    codes = f64_to_codes(x)[np.newaxis]
    a, d = (12.5, 0.001) if kind != RATE else (12.5, 1000.0)
    payload, chosen = TimesCodec().encode_with(codes, [(kind, a, d, 7)], search=False)
    assert chosen[0] == kind
    assert np.array_equal(TimesCodec().decode(payload), codes)


@pytest.mark.parametrize("kind, x", [
    (PREVIOUS, np.repeat(5.0 + np.arange(40) * 0.37, 50)),  # a coarse clock: mostly repeated values
    (STEP, lsl_like(2000, 500.0, 321.0, 2000, 0.0)),  # one LSL chunk: previous + 1.0 / srate
    (LINE, 12345.678 + np.arange(2000) * (1.0 / 300.0)),  # first + i · period
    (RATE, np.arange(2000) / 300.0),  # first + i / rate
])
def test_encoder_finds_the_predictor_that_made_the_series(kind, x):
    payload, chosen = _roundtrip(x)
    assert chosen[0] == kind
    assert 8 * len(payload) < x.size  # under a bit a sample


def test_damaged_payloads_are_refused():
    payload, _ = _roundtrip(special_series())
    codec = TimesCodec()
    with pytest.raises(CorruptArchiveError):
        codec.decode(payload[:10])
    bad_rows = bytearray(payload)
    bad_rows[0] = 2
    with pytest.raises(CorruptArchiveError):
        codec.decode(bytes(bad_rows))
    huge = bytearray(payload)
    huge[2:6] = (0xFFFFFFFF).to_bytes(4, "little")  # more samples than a block holds
    with pytest.raises(CorruptArchiveError):
        codec.decode(bytes(huge))
    with pytest.raises(ValueError):
        codec.encode(np.zeros((2, 5), np.int64))  # one row of timestamps only


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=80))
def test_any_float64_series_roundtrips(values):
    _roundtrip(np.array(values, np.float64))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=60))
def test_any_bit_pattern_roundtrips(bits):
    """Every 64-bit pattern (signalling NaNs included) comes back."""
    x = np.array(bits, np.int64).view(np.float64)
    _roundtrip(x)
