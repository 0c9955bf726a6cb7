"""Every registered codec's decoder on hostile bytes (issue 10, items 3 and 9).

For random bytes, valid payloads with random bit flips, and truncated valid payloads,
``decode`` — and ``decode_prefix``, and ``split_decode`` + ``decode_part`` + join —
either returns an array of the shape the payload's header declares (int64 codes;
float64 values for the lossy ``ae-v1``, ``grid-v1`` and the wavelet coders) or raises ``CorruptArchiveError``. Any other
exception type fails (ValueError, IndexError, … are not acceptable answers to a damaged
archive). Each example runs under an address-space cap (``RLIMIT_AS``: what the process
has plus 1 GiB), so an allocation sized from a damaged header fails with MemoryError
instead of taking the machine, and under an alarm that interrupts a Python-level loop
that never ends. Valid payloads and configs are the frozen fixtures (tests/fixtures),
the lossy ones cut from a real archive's stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocompress.codecs.base import WAVELET_IDS
from biocompress.codecs import get_codec, registered_codecs
from biocompress.errors import CorruptArchiveError

from conftest import FIXTURES_DIR

HEADROOM = 1 << 30  # address space an example may add
EXAMPLE_SECONDS = 20  # alarm: a decode of a few KiB never takes this long
BOMB_HEADROOM = 256 << 20
BOMB_BYTES = 384 << 20  # inflated size of the zlib bomb: more than BOMB_HEADROOM


def _fixtures() -> dict[str, tuple[dict, bytes, tuple[int, int]]]:
    """codec id → (config, valid payload, shape) of its first frozen fixture."""
    manifest = json.loads((FIXTURES_DIR / "manifest.json").read_text())
    out = {}
    for entry in manifest.values():
        if entry.get("kind") == "payload" and entry["codec"]["id"] not in out:
            payload = (FIXTURES_DIR / entry["payload"]).read_bytes()
            out[entry["codec"]["id"]] = (entry["codec"], payload, tuple(entry["shape"]))
    return out


FIXTURES = _fixtures()
CODECS = registered_codecs()


def test_every_codec_has_a_fixture():
    """A new codec needs a frozen payload here, or the properties below skip it."""
    assert sorted(FIXTURES) == CODECS


@pytest.fixture(scope="module")
def codecs():
    built = {cid: get_codec(FIXTURES[cid][0]) for cid in CODECS}
    for cid, codec in built.items():  # JIT kernels and models loaded before any example is timed
        codec.decode(FIXTURES[cid][1])
    return built


FLOAT_OUTPUT = ("ae-v1", "ae-v2", "grid-v1", *WAVELET_IDS)  # lossy codecs that decode to float64 values


def declared_shape(cid: str, codec, payload: bytes):
    """(channels, samples) that the payload's header declares, or None when it has none."""
    try:
        if cid in ("ae-v1", "ae-v2"):
            return codec.spatial.sigmas.size, struct.unpack_from("<I", payload)[0]
        if cid in ("nl-v1", "grid-v1"):  # grid-v1: an nl-v1 payload
            (n_sketch,) = struct.unpack_from("<I", payload)
            return struct.unpack_from("<HI", payload, 8 + n_sketch)
        if cid == "lpc-v4":  # block type, reserved, then (n_ch, n)
            return struct.unpack_from("<HI", payload, 2)
        if cid == "lpc-s1":  # varint headers; a continuation block declares no channels
            from biocompress.codecs.lossless.stream_codec import declared_shape

            return declared_shape(payload)
        return struct.unpack_from("<HI", payload)
    except struct.error:
        return None


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def guarded(headroom: int = HEADROOM):
    """An address-space cap and an alarm around one example."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status_bytes("VmSize") + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap if soft == resource.RLIM_INFINITY else min(cap, soft), hard))

    def alarm(signum, frame):
        raise TimeoutError(f"decode still running after {EXAMPLE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, EXAMPLE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_decoders(cid: str, codec, payload: bytes, stop: int | None, channels, headroom: int = HEADROOM) -> None:
    """The property: each decoding path returns the declared shape or raises CorruptArchiveError."""
    shape = declared_shape(cid, codec, payload)
    if channels is not None:  # a reader asks only for rows the block has
        channels = [c for c in channels if shape is not None and c < shape[0]] or None
    dtype = np.float64 if cid in FLOAT_OUTPUT else np.int64

    def whole():
        return codec.decode(payload)

    def prefix():
        return codec.decode_prefix(payload, stop, channels)

    def split():
        parts, join = codec.split_decode(payload, stop, channels)
        return join([codec.decode_part(p) for p in parts])

    for name, run in (("decode", whole), ("decode_prefix", prefix), ("split_decode", split)):
        try:
            with guarded(headroom):
                out = run()
        except CorruptArchiveError:
            continue
        except Exception as exc:  # noqa: BLE001 - the property is about which types escape
            raise AssertionError(f"{cid} {name}: {type(exc).__name__}: {exc} (payload of {len(payload)} bytes, "
                                 f"declared shape {shape})") from exc
        assert shape is not None, f"{cid} {name} decoded a payload too short to declare a shape"
        assert isinstance(out, np.ndarray) and out.dtype == dtype, f"{cid} {name}: {type(out)} {getattr(out, 'dtype', '')}"
        assert out.ndim == 2 and out.shape[0] == shape[0], f"{cid} {name}: shape {out.shape}, header says {shape}"
        if name == "decode" or stop is None:
            assert out.shape[1] == shape[1], f"{cid} {name}: shape {out.shape}, header says {shape}"
        else:
            assert min(stop, shape[1]) <= out.shape[1] <= shape[1], f"{cid} {name}: {out.shape[1]} samples for stop {stop}"


PROPERTY = settings(max_examples=int(os.environ.get("BIOCOMPRESS_PROPERTY_EXAMPLES", 25)), deadline=None,
                    derandomize="BIOCOMPRESS_PROPERTY_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
stops = st.one_of(st.none(), st.integers(0, 5000))
channel_sets = st.one_of(st.none(), st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))


@pytest.mark.parametrize("cid", CODECS)
@PROPERTY
@given(data=st.binary(min_size=0, max_size=4096), stop=stops, channels=channel_sets)
def test_random_bytes(codecs, cid, data, stop, channels):
    check_decoders(cid, codecs[cid], data, stop, channels)


@pytest.mark.parametrize("cid", CODECS)
@PROPERTY
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=8),
       stop=stops, channels=channel_sets)
def test_bit_flips(codecs, cid, flips, stop, channels):
    payload = bytearray(FIXTURES[cid][1])
    for where, bit in flips:
        payload[int(where * len(payload))] ^= 1 << bit
    check_decoders(cid, codecs[cid], bytes(payload), stop, channels)


@pytest.mark.parametrize("cid", CODECS)
@PROPERTY
@given(keep=st.floats(0, 1, exclude_max=True), stop=stops, channels=channel_sets)
def test_truncations(codecs, cid, keep, stop, channels):
    payload = FIXTURES[cid][1]
    check_decoders(cid, codecs[cid], payload[: int(keep * len(payload))], stop, channels)


@pytest.mark.parametrize("cid", CODECS)
def test_valid_payloads_still_decode(codecs, cid):
    """The guard itself lets a valid payload through (the properties above are not vacuous)."""
    config, payload, shape = FIXTURES[cid]
    check_decoders(cid, codecs[cid], payload, None, None)
    assert declared_shape(cid, codecs[cid], payload) == shape


def test_zlib_bomb_is_refused_before_it_inflates(codecs):
    """A float-xor-zlib-v1 block declares 1 channel × 8 samples (64 bytes) but inflates to 384 MiB:
    decompression must stop at the declared size (run with 256 MiB of headroom)."""
    z = zlib.compressobj(1)
    zero = bytes(1 << 22)
    bomb = b"".join(z.compress(zero) for _ in range(BOMB_BYTES // len(zero))) + z.flush()
    check_decoders("float-xor-zlib-v1", codecs["float-xor-zlib-v1"], struct.pack("<HI", 1, 8) + bomb, None, None,
                   headroom=BOMB_HEADROOM)


def test_zstd_frame_larger_than_its_block_is_refused_before_it_decodes(codecs):
    """A float-xor-zstd-v1 block declares 1 channel × 8 samples (32 bytes) but its frame holds
    384 MiB: the frame's declared content size is checked against the block before decoding."""
    import zstandard

    z = zstandard.ZstdCompressor(level=1).compressobj(size=BOMB_BYTES)
    zero = bytes(1 << 22)
    bomb = b"".join(z.compress(zero) for _ in range(BOMB_BYTES // len(zero))) + z.flush()
    check_decoders("float-xor-zstd-v1", codecs["float-xor-zstd-v1"], struct.pack("<HI", 1, 8) + bomb, None, None,
                   headroom=BOMB_HEADROOM)
    undeclared = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(32))
    with pytest.raises(CorruptArchiveError):
        codecs["float-xor-zstd-v1"].decode(struct.pack("<HI", 1, 8) + undeclared)
