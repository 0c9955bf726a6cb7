"""Codec conformance on every registered codec, and property tests of the LPC codec."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocompress.codecs import get_codec, registered_codecs
from biocompress.codecs.base import check_2d_int
from biocompress.codecs.lossless import (FloatLPCCodec, FloatXorCodec, FloatXorZstdCodec, LPCCodec, LPCStreamCodec,
                                         LPCV4Codec, LPCX3Codec, LPCXCodec, LZMACodec)
from biocompress.codecs.times import TimesCodec
from biocompress.errors import CorruptArchiveError
from biocompress.io import scaling
from codec_conformance import check_codec, check_corruption
from conftest import synthetic_codes

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# ---------------------------------------------------------------------------------
# Test data for the float codecs: bit codes of float samples, special values included
# ---------------------------------------------------------------------------------


def _float_specials(dtype) -> np.ndarray:
    info = np.finfo(dtype)
    nan_payload = (np.array([0x7FC00123], np.uint32).view(np.float32) if dtype == np.float32
                   else np.array([0x7FF8000000000123], np.uint64).view(np.float64))
    neg_nan = -np.abs(nan_payload)  # sign bit set, payload kept
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, -info.max, info.tiny, -info.tiny,
            info.smallest_subnormal, -info.smallest_subnormal, 1.0, -1.0]
    return np.concatenate([np.array(vals, dtype), nan_payload.astype(dtype), neg_nan.astype(dtype)])


def _float_signal(dtype, n_channels=4, n=3000, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 1e-6, (n_channels, n)), axis=1).astype(dtype)
    specials = _float_specials(dtype)
    x[1, 100 : 100 + specials.size] = specials
    x[2, :] = specials[np.arange(n) % specials.size]  # specials next to each other
    x[3, 500:700] = -0.0
    return x


def f32_codes() -> np.ndarray:
    codes = scaling.f32_to_codes(_float_signal(np.float32))
    # the codes must keep every float32 bit pattern (NaN payloads, -0.0) exactly
    back = scaling.codes_to_f32(codes)
    assert np.array_equal(back.view(np.int32), _float_signal(np.float32).view(np.int32))
    return codes


def f32_mixed_codes() -> np.ndarray:
    """float32 channels of each kind: scaled integers (k·2**-12), smooth floats crossing zero
    (with subnormals and −0.0), a channel with NaN/±inf, and a channel of only ±0.0."""
    rng = np.random.default_rng(11)
    n = 2500
    t = np.arange(n)
    scaled = (np.round(np.cumsum(rng.normal(0, 40, n))) * 2.0**-12).astype(np.float32)
    smooth = (3e-5 * np.sin(t / 17.0) + np.cumsum(rng.normal(0, 2e-7, n))).astype(np.float32)
    smooth[[10, 11, 12]] = [np.float32(1e-42), np.float32(-1e-44), np.float32(-0.0)]  # subnormals, −0.0
    special = smooth.copy()
    special[[5, 6, 7, 900]] = [np.nan, np.inf, -np.inf, np.array([0x7FC00123], np.uint32).view(np.float32)[0]]
    zeros = np.where(t % 3 == 0, np.float32(-0.0), np.float32(0.0)).astype(np.float32)
    return scaling.f32_to_codes(np.stack([scaled, smooth, special, zeros]))


def f64_codes() -> np.ndarray:
    codes = scaling.f64_to_codes(_float_signal(np.float64))
    back = scaling.codes_to_f64(codes)
    assert np.array_equal(back.view(np.int64), _float_signal(np.float64).view(np.int64))
    return codes


# ---------------------------------------------------------------------------------
# Every registered codec configuration
# ---------------------------------------------------------------------------------
_LPC_VARIANTS = [
    {},
    {"max_order": 1},
    {"max_order": 8, "segment": 16},
    {"max_order": 32, "segment": 65536},
    {"max_order": 12, "segment": 100},
    {"frame": 256},
    {"frame": 1000, "segment": 64},
]


def _lpc_cases():
    fields = set(LPCCodec.config_fields)
    for kw in _LPC_VARIANTS:
        if set(kw) <= fields:  # a variant per config field the codec has
            name = ",".join(f"{k}={v}" for k, v in kw.items()) or "default"
            yield pytest.param(lambda kw=kw: LPCCodec(**kw), lambda: synthetic_codes(6, 5000, seed=3),
                               id=f"lpc[{name}]")


def correlated_codes(n_ch: int = 10, n: int = 6000, seed: int = 11) -> np.ndarray:
    """Channels sharing a common innovation (as EEG channels do), so the cross-channel stage engages."""
    rng = np.random.default_rng(seed)
    common = rng.integers(-200, 201, n)
    x = np.cumsum(common[np.newaxis] * rng.uniform(0.5, 1.5, (n_ch, 1)) + rng.integers(-20, 21, (n_ch, n)), axis=1)
    x[1, 100:160] = x[1, 99]  # a flat run
    x[2, 3000] += 30000  # a spike
    return np.round(x).astype(np.int64)


def degenerate_codes(n: int = 3000) -> np.ndarray:
    """Flat and step-like channels: constant, zero-padded, saturated runs, sample-and-hold
    values on a non-integer grid (palette), a status line, and one ordinary channel."""
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.integers(-30, 31, n))
    held = np.round(np.repeat(rng.integers(40, 60, n // 6 + 1), 6)[:n] * 2097.152).astype(np.int64)
    padded = walk.copy()
    padded[n // 2 :] = 0
    saturated = np.clip(walk * 40, -20000, 20000)
    status = np.where((np.arange(n) // 250) % 3 == 0, 0, 4)
    return np.vstack([np.full(n, -8388607), padded, saturated, held, status, walk]).astype(np.int64)


def test_cross_channel_stage_engages_and_pays():
    codes = correlated_codes()
    with_xc, without = LPCXCodec().encode(codes), LPCXCodec(refs=0).encode(codes)
    assert len(with_xc) < 0.9 * len(without)
    assert np.array_equal(LPCXCodec().decode(with_xc), codes)


def periodic_codes() -> np.ndarray:
    """What a signal generator records (a sine, a square wave, a ramp: exact repeats), a flat
    channel, and the int64 extremes (width 8)."""
    t = np.arange(5000)
    signals = np.vstack([np.round(3000 * np.sin(2 * np.pi * t / 50)), np.where(t % 40 < 20, 800, -800),
                         (t % 100) * 7, np.zeros(5000)]).astype(np.int64)
    extremes = np.tile(np.array([-(2**63), 2**63 - 1, 0, 1], np.int64), 1250)
    return np.vstack([signals, extremes[np.newaxis]])


CASES = [
    *_lpc_cases(),
    pytest.param(lambda: LPCXCodec(), correlated_codes, id="lpc-v2[default,correlated]"),
    pytest.param(lambda: LPCXCodec(refs=1, frame=256, segment=64), correlated_codes, id="lpc-v2[refs=1,frame=256]"),
    pytest.param(lambda: LPCXCodec(refs=8), lambda: synthetic_codes(6, 5000, seed=3), id="lpc-v2[refs=8]"),
    pytest.param(lambda: LPCXCodec(refs=0), correlated_codes, id="lpc-v2[refs=0]"),
    pytest.param(lambda: LPCXCodec(), lambda: synthetic_codes(3, 9000, seed=4, bits=24), id="lpc-v2[24bit]"),
    pytest.param(lambda: LPCX3Codec(), correlated_codes, id="lpc-v3[default,correlated]"),
    pytest.param(lambda: LPCX3Codec(refs=0, frame=256, segment=16), lambda: synthetic_codes(6, 5000, seed=3),
                 id="lpc-v3[refs=0,segment=16]"),
    pytest.param(lambda: LPCX3Codec(), lambda: synthetic_codes(3, 9000, seed=4, bits=24), id="lpc-v3[24bit]"),
    pytest.param(lambda: LPCCodec(), lambda: synthetic_codes(3, 9000, seed=4, bits=24), id="lpc[24bit]"),
    *[pytest.param(lambda level=level: LPCV4Codec(level), correlated_codes, id=f"lpc-v4[{level},correlated]")
      for level in ("fast", "default", "max")],
    pytest.param(lambda: LPCV4Codec(frame=256, segment=64), lambda: synthetic_codes(6, 5000, seed=3),
                 id="lpc-v4[frame=256,segment=64]"),
    pytest.param(lambda: LPCV4Codec(), lambda: synthetic_codes(3, 9000, seed=4, bits=24), id="lpc-v4[24bit]"),
    pytest.param(lambda: LPCV4Codec(frame=256, segment=16), lambda: degenerate_codes(), id="lpc-v4[degenerate]"),
    pytest.param(lambda: FloatXorCodec(4), f32_codes, id="float-xor[4,f32-specials]"),
    pytest.param(lambda: FloatLPCCodec(), f32_codes, id="float-lpc[f32-specials]"),
    pytest.param(lambda: FloatLPCCodec(frame=256, segment=64), f32_mixed_codes, id="float-lpc[grid,scaled,ord]"),
    pytest.param(lambda: FloatXorCodec(8), f64_codes, id="float-xor[8,f64-specials]"),
    pytest.param(lambda: FloatXorCodec(8, level=1), f64_codes, id="float-xor[8,level=1]"),
    pytest.param(lambda: FloatXorCodec(8), lambda: synthetic_codes(4, 2000, seed=5), id="float-xor[8,int-codes]"),
    pytest.param(lambda: FloatXorZstdCodec(4), f32_codes, id="float-xor-zstd[4,f32-specials]"),
    pytest.param(lambda: FloatXorZstdCodec(8), f64_codes, id="float-xor-zstd[8,f64-specials]"),
    pytest.param(TimesCodec, lambda: scaling.f64_to_codes(512.25 + np.arange(3000) / 500.0)[np.newaxis],
                 id="times[regular]"),
    pytest.param(TimesCodec, lambda: f64_codes()[-1:], id="times[f64-specials]"),
    pytest.param(lambda: LPCStreamCodec(), correlated_codes, id="lpc-s1[default,correlated]"),
    pytest.param(lambda: LZMACodec(), lambda: synthetic_codes(3, 4000, seed=6, bits=24), id="lzma-v1[24bit]"),
    pytest.param(lambda: LZMACodec(), periodic_codes, id="lzma-v1[periodic,extremes]"),
    pytest.param(lambda: LPCStreamCodec(update_interval=128, window=256),
                 lambda: synthetic_codes(3, 9000, seed=4, bits=24), id="lpc-s1[24bit,updates]"),
]


@pytest.mark.parametrize("make_codec, make_codes", CASES)
def test_codec_conformance(make_codec, make_codes):
    codec, codes = make_codec(), make_codes()
    payload = check_codec(codec, codes)
    assert len(payload) > 0


LOSSY_CONFORMANCE = {"ae-v1": "test_ae_codec_conformance", "ae-v2": "test_equalized_codec_conformance",
                     "nl-v1": "test_near_lossless_codec_conformance",
                     "grid-v1": "test_grid_codec_conformance", "dwt-v1": "test_wavelet_codec_conformance",
                     "sdwt-v1": "test_spatial_wavelet_codec_conformance", "dwt-v2": "test_wavelet_codec_conformance",
                     "sdwt-v2": "test_spatial_wavelet_codec_conformance",
                     "sdwt-v3": "test_spatial_wavelet_codec_conformance",
                     "sdwt-v4": "test_spatial_wavelet_codec_conformance",
                     "dwt-v3": "test_equalized_codec_conformance", "sdwt-v5": "test_equalized_codec_conformance"}


def test_every_registered_codec_has_a_conformance_case():
    """Lossless codecs run check_codec here; lossy ones check_lossy_codec in test_lossy.py."""
    import test_lossy

    covered = {case.values[0]().codec_id for case in CASES}
    covered |= {cid for cid, test in LOSSY_CONFORMANCE.items() if hasattr(test_lossy, test)}
    assert set(registered_codecs()) <= covered, f"codecs without conformance cases: {set(registered_codecs()) - covered}"


class _IgnoresPayload(FloatXorCodec):
    """Decodes every payload to the same codes: the conformance check must notice."""

    def decode(self, payload):
        return synthetic_codes(2, 300, seed=1)


class _RaisesKeyError(FloatXorCodec):
    def decode(self, payload):
        if payload != self.encode(synthetic_codes(2, 300, seed=1)):
            raise KeyError("not a rejection the codec interface allows")
        return super().decode(payload)


class _Lossy(FloatXorCodec):
    def decode(self, payload):
        out = super().decode(payload)
        out[0, -1] += 1
        return out


@pytest.mark.parametrize("bad", [_IgnoresPayload, _RaisesKeyError, _Lossy])
def test_conformance_check_catches_bad_codecs(bad):
    with pytest.raises(AssertionError):
        check_codec(bad(8), synthetic_codes(2, 300, seed=1))


def test_lpc_rejects_damaged_payloads():
    """Regression: constriction's AssertionError on invalid data used to escape decode."""
    codes = synthetic_codes(3, 700, seed=0)
    payload = LPCCodec().encode(codes)
    check_corruption(LPCCodec(), payload, codes)


def _lpc_low_bits_dtype_offset(payload: bytes) -> int:
    """Offset of the dtype code of the residual stream's low-bits array (lpc-v1 layout)."""
    (plen,) = struct.unpack_from("<I", payload, 6)
    body = 10 + plen
    code, n_words = struct.unpack_from("<BI", payload, body)
    assert code == 4  # uint32 words of the range coder
    return body + 5 + 4 * n_words


def test_lpc_wrong_array_dtype_is_corrupt_archive_error():
    rng = np.random.default_rng(7)
    codes = np.cumsum(rng.integers(-5000, 5001, (2, 2000)), axis=1)  # big residuals → low bits
    payload = LPCCodec().encode(codes)
    pos = _lpc_low_bits_dtype_offset(payload)
    assert payload[pos] == 0  # uint8
    damaged = bytearray(payload)
    damaged[pos] = 1  # int8: same size, wrong type
    with pytest.raises(CorruptArchiveError):
        LPCCodec().decode(bytes(damaged))


# ---------------------------------------------------------------------------------
# Configs and input validation
# ---------------------------------------------------------------------------------
def test_get_codec_rejects_unknown_id_and_keys():
    with pytest.raises(CorruptArchiveError, match="unknown codec"):
        get_codec({"id": "no-such-codec-v9"})
    with pytest.raises(CorruptArchiveError, match="unknown config keys"):
        get_codec({**LPCCodec().get_config(), "surprise": 1})


@pytest.mark.parametrize("kwargs", [{"max_order": 3}, {"max_order": 64}, {"segment": 8}, {"segment": 70000}])
def test_lpc_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        LPCCodec(**kwargs)


def test_float_codec_rejects_bad_width_and_out_of_range_codes():
    with pytest.raises(ValueError):
        FloatXorCodec(2)
    with pytest.raises(ValueError):
        FloatXorCodec(4).encode(np.array([[2**31]], np.int64))
    with pytest.raises(ValueError):
        FloatXorCodec(4).encode(np.array([[-(2**31) - 1]], np.int64))


def test_check_2d_int_accepts_every_integer_dtype():
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64):
        out = check_2d_int(np.ones((2, 3), dt))
        assert out.dtype == np.int64 and out.flags.c_contiguous
    with pytest.raises(TypeError):
        check_2d_int(np.ones((2, 3), bool))
    with pytest.raises(ValueError):
        check_2d_int(np.array([[2**64 - 1]], np.uint64))


def test_float_lpc_modes_and_special_values():
    """Scaled integers go to the integer coder, finite floats to the grid, channels with
    NaN/inf to code-domain prediction; every bit pattern comes back."""
    from biocompress.codecs.bytepack import unpack_arrays
    from biocompress.codecs.lossless import float_lpc

    codes = f32_mixed_codes()
    payload = FloatLPCCodec().encode(codes)
    (plen,) = np.frombuffer(payload[6:10], "<u4")
    modes = unpack_arrays(payload[10 : 10 + int(plen)], 7)[0]
    assert modes.tolist() == [float_lpc.SCALED_INT, float_lpc.GRID, float_lpc.ORD, float_lpc.GRID]
    assert np.array_equal(FloatLPCCodec().decode(payload), codes)


def test_float_lpc_beats_shuffle_and_zstd_on_smooth_floats():
    zstandard = pytest.importorskip("zstandard")
    x = scaling.codes_to_f32(f32_mixed_codes()[1:2])
    raw = x.T.astype("<f4").tobytes()
    shuffled = np.frombuffer(raw, np.uint8).reshape(-1, 4).T.copy().tobytes()
    best = min(len(zstandard.ZstdCompressor(level=19).compress(b)) for b in (raw, shuffled))
    assert len(FloatLPCCodec().encode(scaling.f32_to_codes(x))) < best


@pytest.mark.parametrize("width", [4, 8])
def test_float_codec_keeps_special_float_bits(width):
    """Through the codec and back to floats: NaN payloads, ±inf and -0.0 survive bit for bit."""
    dtype = np.float32 if width == 4 else np.float64
    x = _float_signal(dtype)
    to_codes = scaling.f32_to_codes if width == 4 else scaling.f64_to_codes
    to_float = scaling.codes_to_f32 if width == 4 else scaling.codes_to_f64
    codec = FloatXorCodec(width)
    y = to_float(codec.decode(codec.encode(to_codes(x))))
    ints = np.int32 if width == 4 else np.int64
    assert np.array_equal(np.asarray(y, dtype).view(ints), x.view(ints))


def test_f32_codes_preserve_float_order():
    x = np.sort(np.random.default_rng(0).normal(0, 1e3, 2000).astype(np.float32))
    x = np.concatenate([[-np.inf], x, [np.inf]]).astype(np.float32)
    assert (np.diff(scaling.f32_to_codes(x)) >= 0).all()


# ---------------------------------------------------------------------------------
# Property tests of the LPC codec
# ---------------------------------------------------------------------------------
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lpc_configs():
    out = [LPCCodec(), LPCCodec(max_order=4, segment=16)]
    if "frame" in LPCCodec.config_fields:
        out.append(LPCCodec(max_order=16, segment=64, frame=256))
    out += [LPCXCodec(), LPCXCodec(refs=2, max_order=8, segment=64, frame=256)]
    out += [LPCX3Codec(), LPCX3Codec(refs=1, max_order=4, segment=32, frame=256)]
    out += [LPCV4Codec(), LPCV4Codec("fast", frame=256, segment=32), LPCV4Codec("max", frame=512, segment=64)]
    return out


codecs = st.sampled_from(_lpc_configs())


def assert_lpc_roundtrip(codec, codes):
    codes = np.asarray(codes, np.int64)
    payload = codec.encode(codes)
    assert isinstance(payload, bytes)
    out = codec.decode(payload)
    assert out.dtype == np.int64 and out.shape == codes.shape
    assert np.array_equal(out, codes)
    assert np.array_equal(get_codec(codec.get_config()).decode(payload), codes)


@PROPS
@given(codec=codecs, value=st.integers(INT32_MIN, INT32_MAX), n_ch=st.integers(1, 5), n=st.integers(1, 3000))
def test_lpc_constant_channels(codec, value, n_ch, n):
    codes = np.full((n_ch, n), value, np.int64)
    codes[n_ch // 2] = -1 - value  # a second constant, mirrored (also in int32 range)
    assert_lpc_roundtrip(codec, codes)


@PROPS
@given(codec=codecs, values=st.lists(st.integers(INT32_MIN, INT32_MAX), min_size=1, max_size=12))
def test_lpc_one_sample(codec, values):
    assert_lpc_roundtrip(codec, np.array(values, np.int64)[:, np.newaxis])


@PROPS
@given(codec=codecs, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5000), step=st.integers(1, 2**12))
def test_lpc_one_channel(codec, seed, n, step):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(-step, step + 1, n))
    assert_lpc_roundtrip(codec, np.clip(x, INT32_MIN, INT32_MAX)[np.newaxis])


@PROPS
@given(codec=codecs, seed=st.integers(0, 2**32 - 1), n_ch=st.integers(1, 4), n=st.integers(2, 3000),
       white=st.booleans())
def test_lpc_24bit_values(codec, seed, n_ch, n, white):
    rng = np.random.default_rng(seed)
    lo, hi = -(2**23), 2**23 - 1
    if white:  # full-scale noise: no prediction possible
        x = rng.integers(lo, hi + 1, (n_ch, n))
    else:
        x = np.clip(np.cumsum(rng.integers(-50000, 50001, (n_ch, n)), axis=1), lo, hi)
    x[:, 0] = lo
    x[:, -1] = hi
    assert_lpc_roundtrip(codec, x)


EXTREMES = [INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 0, -1, 1]


@PROPS
@given(codec=codecs, data=st.data(), n_ch=st.integers(1, 3), n=st.integers(1, 2500))
def test_lpc_full_range_int32(codec, data, n_ch, n):
    pattern = data.draw(st.sampled_from(["alternating", "random-extremes", "uniform", "step"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if pattern == "alternating":
        x = np.where(np.arange(n) % 2 == 0, INT32_MIN, INT32_MAX)[np.newaxis].repeat(n_ch, 0)
        x[-1] = -1 - x[-1]  # the other phase on the last channel
    elif pattern == "random-extremes":
        x = rng.choice(EXTREMES, (n_ch, n))
    elif pattern == "uniform":
        x = rng.integers(INT32_MIN, INT32_MAX, (n_ch, n), endpoint=True)
    else:  # long runs jumping between the extremes
        x = np.where((np.arange(n) // max(1, n // 7)) % 2 == 0, INT32_MAX, INT32_MIN)[np.newaxis].repeat(n_ch, 0)
    assert x.min() >= INT32_MIN and x.max() <= INT32_MAX
    assert_lpc_roundtrip(codec, x.astype(np.int64))


@PROPS
@given(codec=codecs, seed=st.integers(0, 2**32 - 1), n_ch=st.integers(1, 6), n=st.integers(50, 4000),
       bits=st.sampled_from([12, 16, 24, 32]))
def test_lpc_random_walks_with_spikes_and_saturation(codec, seed, n_ch, n, bits):
    assert_lpc_roundtrip(codec, synthetic_codes(n_ch, n, seed=seed % 2**31, bits=bits))


@PROPS
@given(seed=st.integers(0, 2**32 - 1), segment=st.sampled_from([16, 100, 256, 1000]),
       blocks=st.integers(0, 6), rest=st.integers(1, 999))
def test_lpc_length_not_multiple_of_segment(seed, segment, blocks, rest):
    rest = rest % segment or 1
    n = blocks * segment + rest
    assert n % segment != 0
    codec = LPCCodec(segment=segment)
    assert_lpc_roundtrip(codec, synthetic_codes(3, n, seed=seed % 2**31))


@PROPS
@given(codec=codecs, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       scale=st.sampled_from([1, 7, 256, 1000]), offset=st.integers(-(2**20), 2**20))
def test_lpc_values_on_a_coarse_grid(codec, seed, n, scale, offset):
    """Codes that are multiples of a step plus an offset (unused low bits, gain-scaled codes)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(-20, 21, (2, n)), axis=1) * scale + offset
    assert_lpc_roundtrip(codec, x)


# SHA-256 of every Laplace (lpc-v1/v2) and shaped (lpc-v3) table's float64 probabilities,
# computed with numpy 2 on x86-64 Linux when lpc-v3 was introduced.
SHAPED_TABLES_SHA256 = "2b1ca085ea163916d6d542aa17820b27d6801bb26da3c32f57d84f534750891d"


def test_shaped_tables_are_frozen():
    """lpc-v3's tables are computed at run time: their exact float64 bits must never drift
    (a different libm or numpy could otherwise make a decoder disagree with the encoder)."""
    import hashlib

    from biocompress.codecs.lossless import residual_coder as rc

    sha = hashlib.sha256()
    for c in range(rc.N_CLASSES):
        sha.update(rc._table(c)[0].tobytes())
        for shape in range(len(rc.SHAPES)):
            sha.update(rc._shaped_table(c, shape)[0].tobytes())
    assert sha.hexdigest() == SHAPED_TABLES_SHA256, "entropy-model tables changed on this platform"


def test_shaped_coding_beats_laplace_on_gaussian_residuals():
    from biocompress.codecs.lossless import residual_coder as rc

    rows = [np.round(np.random.default_rng(3).normal(0, 40, 20000)).astype(np.int64)]
    assert len(rc.encode_rows(rows, 256, shaped=True)) < 0.995 * len(rc.encode_rows(rows, 256))
    assert np.array_equal(rc.decode_rows(rc.encode_rows(rows, 256, True), [20000], 256, True)[0], rows[0])


@pytest.mark.parametrize("stop", [0, 1, 255, 256, 700, 5999, 6000, None])
@pytest.mark.parametrize("channels", [None, [0], [9], [2, 7], list(range(10))])
def test_lpc_v3_decodes_a_prefix_of_some_channels(stop, channels):
    """Frames past ``stop`` and channels outside ``channels`` (and their references) may be skipped."""
    codes = correlated_codes()
    codec = LPCX3Codec(frame=256, segment=64)
    out = codec.decode_prefix(codec.encode(codes), stop, channels)
    rows = list(range(codes.shape[0])) if channels is None else channels
    upto = codes.shape[1] if stop is None else stop
    assert out.shape[0] == codes.shape[0] and out.shape[1] >= upto
    assert np.array_equal(out[rows, :upto], codes[rows, :upto])


def test_archive_partial_then_full_reads(tmp_path):
    """Blocks cached from a partial decode are not served to a request they do not cover."""
    import biocompress
    from biocompress.io.source import open_raw
    from conftest import SAMPLES_DIR

    src = SAMPLES_DIR / "Subject00_2.edf"
    ref = open_raw(src).get_data()
    dst = biocompress.compress(src, tmp_path / "a.bc.h5")
    with biocompress.open(dst) as arc:
        assert np.array_equal(arc.read(100, 900, picks=[3]), ref[[3], 100:900])
        assert np.array_equal(arc.read(100, 16000, picks=[3, 4]), ref[[3, 4], 100:16000])
        assert np.array_equal(arc.read(0, 31000), ref)


def test_blocks_that_repeat_take_the_smaller_coding():
    """codecs.fallback: a generator's periodic block the predictor codes in few bits per sample
    is also tried with lzma-v1, and the smaller kept; recorded-like noise never is."""
    from biocompress.codecs.fallback import smaller_of

    periodic = periodic_codes()[:4]
    config, payload = smaller_of(LPCV4Codec().get_config(), periodic, LPCV4Codec().encode(periodic))
    assert config == {"id": "lzma-v1"} and len(payload) < len(LPCV4Codec().encode(periodic))
    assert np.array_equal(get_codec(config).decode(payload), periodic)
    noisy = synthetic_codes(4, 5000, seed=2)
    lpc = LPCV4Codec().encode(noisy)
    assert smaller_of(LPCV4Codec().get_config(), noisy, lpc) == (LPCV4Codec().get_config(), lpc)


def test_float32_blocks_take_the_smaller_float_coding():
    """codecs.fallback: a float32 block is coded by float-lpc-v1 and float-xor-zlib-v1 and the
    smaller kept, exactly decodable either way."""
    from biocompress.codecs.fallback import smaller_of

    rng = np.random.default_rng(4)
    off_grid = np.cumsum(rng.normal(0, 3.7, (3, 3000)), axis=1).astype(np.float32)  # µV in floating point
    codes = scaling.f32_to_codes(off_grid)
    lpc = FloatLPCCodec().encode(codes)
    config, payload = smaller_of(FloatLPCCodec().get_config(), codes, lpc)
    assert len(payload) == min(len(lpc), len(FloatXorCodec(4).encode(codes)))
    assert np.array_equal(get_codec(config).decode(payload), codes)


def test_shipped_codec_ids_are_the_registered_ones():
    """codecs.base.SHIPPED_IDS (what a reader accepts before loading any codec module) lists
    exactly the codecs biocompress registers."""
    from biocompress.codecs.base import SHIPPED_IDS

    assert set(registered_codecs()) == SHIPPED_IDS
