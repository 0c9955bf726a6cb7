"""lpc-v4: levels, flat and step-like signals, partial decodes, damaged streams, frozen tables.

Conformance (check_codec) of every level runs in test_codecs.py with the other codecs.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from biocompress.codecs import get_codec
from biocompress.codecs.lossless import LPCV4Codec, LPCX3Codec, adaptive_coder, parcor
from biocompress.errors import CorruptArchiveError
from biocompress.io.codes import read_codes
from conftest import SAMPLES_DIR, synthetic_codes
from test_codecs import correlated_codes, degenerate_codes

LEVELS = ("fast", "default", "max")


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_writes_the_one_bitstream(level):
    """The level is an encoder setting: any lpc-v4 decoder reads any level's blocks."""
    codes = correlated_codes()
    payload = LPCV4Codec(level).encode(codes)
    for other in LEVELS:
        assert np.array_equal(LPCV4Codec(other).decode(payload), codes)
    assert np.array_equal(get_codec({"id": "lpc-v4"}).decode(payload), codes)


def test_config_holds_the_level_and_rejects_unknown_levels():
    assert LPCV4Codec("fast").get_config() == {"id": "lpc-v4", "level": "fast", "frame": 4096, "segment": 1024}
    for bad in ({"level": "fastest"}, {"frame": 100}, {"segment": 8}):
        with pytest.raises(ValueError):
            LPCV4Codec(**bad)


def test_codes_beyond_the_supported_range_are_refused():
    with pytest.raises(ValueError):
        LPCV4Codec().encode(np.array([[0, 2**47]], np.int64))


def test_constant_channels_cost_next_to_nothing():
    codes = np.full((32, 16384), 1234, np.int64)
    codes[5] = -8388607  # a disconnected electrode at the rail
    assert len(LPCV4Codec().encode(codes)) < codes.size / 100


def test_zero_padding_costs_next_to_nothing():
    walk = np.cumsum(np.random.default_rng(0).integers(-30, 31, (4, 16384)), axis=1)
    padded = walk.copy()
    padded[:, 8192:] = 0
    codec = LPCV4Codec()
    assert len(codec.encode(padded)) < len(codec.encode(walk[:, :8192])) + padded[:, 8192:].size / 100


def test_held_values_on_a_non_integer_grid_code_as_a_palette():
    """Sample-and-hold channels (accelerometers) whose levels are rounded from a non-integer grid."""
    rng = np.random.default_rng(1)
    held = np.round(np.repeat(rng.integers(40, 60, (4, 2731)), 6, axis=1)[:, :16384] * 2097.152).astype(np.int64)
    v4 = LPCV4Codec().encode(held)
    assert len(v4) < len(LPCX3Codec().encode(held)) / 2
    assert np.array_equal(LPCV4Codec().decode(v4), held)


def test_degenerate_channels_round_trip_at_every_level():
    codes = degenerate_codes(20000)
    for level in LEVELS:
        codec = LPCV4Codec(level)
        assert np.array_equal(codec.decode(codec.encode(codes)), codes)


def test_real_eeg_codes_smaller_than_lpc_v3():
    codes = read_codes(SAMPLES_DIR / "Subject00_2.edf").codes[:, :16384]
    v4 = LPCV4Codec().encode(codes)
    assert len(v4) < len(LPCX3Codec().encode(codes))
    assert np.array_equal(LPCV4Codec().decode(v4), codes)


@pytest.mark.parametrize("stop", [0, 1, 255, 256, 700, 5999, 6000, None])
@pytest.mark.parametrize("channels", [None, [0], [9], [2, 7], list(range(10))])
def test_decodes_a_prefix_of_some_channels(stop, channels):
    codes = correlated_codes()
    codec = LPCV4Codec(frame=256, segment=64)
    out = codec.decode_prefix(codec.encode(codes), stop, channels)
    rows = list(range(codes.shape[0])) if channels is None else channels
    upto = codes.shape[1] if stop is None else stop
    assert out.shape[0] == codes.shape[0] and out.shape[1] >= upto
    assert np.array_equal(out[rows, :upto], codes[rows, :upto])


def test_reserved_block_type_is_rejected():
    payload = bytearray(LPCV4Codec().encode(synthetic_codes(2, 500, seed=1)))
    payload[0] = 1  # continuation blocks are reserved (FORMAT.md §8.9)
    with pytest.raises(CorruptArchiveError, match="block type"):
        LPCV4Codec().decode(bytes(payload))


def test_declared_shape_is_checked_before_allocating():
    payload = bytearray(LPCV4Codec().encode(synthetic_codes(2, 500, seed=1)))
    struct.pack_into("<HI", payload, 2, 60000, 2**31)
    with pytest.raises(CorruptArchiveError):
        LPCV4Codec().decode(bytes(payload))


# ---------------------------------------------------------------------------------
# The residual coder and the predictor tables
# ---------------------------------------------------------------------------------
def test_adaptive_coder_round_trips_extremes_runs_and_empty_rows():
    rng = np.random.default_rng(0)
    rows = [rng.laplace(0, 5, 1000).round().astype(np.int64), np.zeros(3000, np.int64),
            rng.normal(0, 3000, 2000).round().astype(np.int64), np.zeros(0, np.int64),
            np.array([2**62 - 1, -(2**62), 0, 1, -1, 2**40, -(2**45)], np.int64), rng.integers(-2, 3, 777)]
    rows[1][1500] = 100000  # one spike in a zero run
    for segment in (16, 256, 1024):
        payload = adaptive_coder.encode_rows(rows, segment)
        back = adaptive_coder.decode_rows(payload, [r.size for r in rows], segment)
        assert all(np.array_equal(a, b) for a, b in zip(rows, back))


def test_adaptive_coder_reports_damage():
    rows = [np.random.default_rng(1).laplace(0, 50, 4000).round().astype(np.int64)]
    payload = adaptive_coder.encode_rows(rows, 256)
    for damaged in (payload[:-3], payload[:9], payload + b"\0\0\0\0", payload[:4] + b"\xff" + payload[5:]):
        with pytest.raises(CorruptArchiveError):
            out = adaptive_coder.decode_rows(damaged, [4000], 256)
            assert not np.array_equal(out[0], rows[0])
            raise CorruptArchiveError("decoded to other values")


def test_fixed_polynomial_predictors_are_exact():
    """κ = ±1 at resolution 4 rebuild FLAC's fixed predictors exactly."""
    expected = ([1], [2, -1], [3, -3, 1])
    for (values, kind), q in zip(parcor.POLYNOMIALS, expected):
        coefs, shift = parcor.predictor(values, kind)
        assert coefs.tolist() == [v << shift for v in q]


def test_out_of_range_predictor_values_are_corrupt():
    with pytest.raises(CorruptArchiveError):
        parcor.predictor(np.array([9], np.int64), 0)  # |index| > 2^(4−1)
    with pytest.raises(CorruptArchiveError):
        parcor.predictor(np.array([-(2**63)], np.int64), 0)
    with pytest.raises(CorruptArchiveError):
        parcor.predictor(np.array([1 << 41], np.int64), parcor.DIRECT_CODE)
    with pytest.raises(CorruptArchiveError):
        parcor.predictor(np.array([1], np.int64), parcor.MAX_CODE + 1)


# SHA-256 of lpc-v4's normative tables (adaptive coder frequencies, reflection coefficients),
# computed with numpy 2 on x86-64 Linux when lpc-v4 was introduced.
V4_TABLES_SHA256 = "17dbb5fdd30ffe9d58d83c66912cb9105f04185a7ba50f351acb462e78eff4ef"


def _v4_tables_sha256() -> str:
    sha = hashlib.sha256()
    freq, cum, Ks, _, _ = adaptive_coder.tables()
    for a in (freq, cum, Ks):
        sha.update(np.ascontiguousarray(a, np.int64).tobytes())
    for res in range(parcor.MIN_RES, parcor.MAX_RES + 1):
        sha.update(parcor.kappa_table(res).tobytes())
    return sha.hexdigest()


def test_v4_tables_are_frozen():
    """The tables are computed at run time from floats: their integers must never drift
    (another libm could otherwise make a decoder disagree with the encoder)."""
    assert _v4_tables_sha256() == V4_TABLES_SHA256, "lpc-v4 tables changed on this platform"
