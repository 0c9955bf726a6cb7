"""Conformance checks every codec must pass (a helper module, not a test file).

``check_codec(codec, codes)`` runs all of them: exact round trip, config round
trip through ``biocompress.codecs.get_codec`` (via JSON, as archives store it),
decoding split into parts (as readers spread them over processes), input
validation, and graceful rejection of truncated / corrupted payloads.
The parts are also available one by one.
"""

from __future__ import annotations

import json

import numpy as np

from biocompress.codecs import get_codec
from biocompress.errors import CorruptArchiveError

# What a decoder may raise on damaged input; anything else is a conformance failure.
REJECTIONS = (CorruptArchiveError, ValueError)


def check_roundtrip(codec, codes: np.ndarray) -> bytes:
    """Encode → bytes → decode is bit-exact, int64, same shape; encoding is deterministic."""
    codes = np.asarray(codes)
    payload = codec.encode(codes)
    assert isinstance(payload, bytes), f"{codec!r}.encode returned {type(payload).__name__}, not bytes"
    decoded = codec.decode(payload)
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.int64, f"{codec!r} decodes to {decoded.dtype}, expected int64"
    assert decoded.shape == codes.shape, f"{codec!r}: shape {decoded.shape} != {codes.shape}"
    if not np.array_equal(decoded, codes.astype(np.int64)):
        bad = np.argwhere(decoded != codes)
        ch, t = bad[0]
        raise AssertionError(f"{codec!r}: {len(bad)} codes differ, first at [{ch}, {t}]: "
                             f"{decoded[ch, t]} != {codes[ch, t]}")
    assert codec.encode(codes) == payload, f"{codec!r}: encoding the same codes twice gave different bytes"
    # memory layout and integer width of the input must not matter
    assert codec.encode(np.asfortranarray(codes)) == payload, f"{codec!r}: Fortran-ordered input encodes differently"
    return payload


def check_split_decode(codec, payload: bytes, codes: np.ndarray) -> None:
    """Parts of ``split_decode`` are picklable, decode in any order (as on worker
    processes) and join to what ``decode_prefix`` gives, for whole and partial requests."""
    import pickle

    n_ch, n = codes.shape
    requests = [(None, None), (max(1, n // 3), None), (None, [n_ch - 1]), (max(1, n // 2), [0, n_ch - 1])]
    for stop, channels in requests:
        parts, join = codec.split_decode(payload, stop, channels)
        assert all(isinstance(part, tuple) and isinstance(part[0], bytes) for part in parts), \
            f"{codec!r}: parts must be tuples starting with their bytes"
        shipped = [pickle.loads(pickle.dumps(part)) for part in parts]
        results = [None] * len(shipped)
        for i in reversed(range(len(shipped))):
            results[i] = pickle.loads(pickle.dumps(codec.decode_part(shipped[i])))
        joined = join(results)
        whole = codec.decode_prefix(payload, stop, channels)
        rows = range(n_ch) if channels is None else channels
        need = n if stop is None else stop
        assert joined.shape[0] == n_ch and joined.shape[1] >= need, f"{codec!r}: joined shape {joined.shape}"
        for c in rows:
            assert np.array_equal(joined[c, :need], codes[c, :need]), \
                f"{codec!r}: split decode of stop={stop}, channels={channels} differs on row {c}"
            assert np.array_equal(whole[c, :need], codes[c, :need])


def check_config(codec, payload: bytes, codes: np.ndarray) -> None:
    """get_config() is JSON-able and get_codec(config) rebuilds an equal codec that decodes the payload."""
    config = codec.get_config()
    assert config["id"] == type(codec).codec_id
    stored = json.loads(json.dumps(config))  # archives keep configs as JSON
    rebuilt = get_codec(stored)
    assert type(rebuilt) is type(codec)
    assert rebuilt.get_config() == config
    assert repr(rebuilt) == repr(codec)
    decoded = rebuilt.decode(payload)
    assert decoded.dtype == np.int64 and np.array_equal(decoded, codes)


def check_input_validation(codec, codes: np.ndarray) -> None:
    """Floats are refused with TypeError; arrays that are not 2-D with ValueError."""
    import pytest

    codes = np.asarray(codes)
    with pytest.raises(TypeError):
        codec.encode(codes.astype(np.float64))
    with pytest.raises(TypeError):
        codec.encode(codes.astype(np.float32))
    with pytest.raises(ValueError):
        codec.encode(codes.ravel())
    with pytest.raises(ValueError):
        codec.encode(codes[np.newaxis])


def _corruptions(payload: bytes, max_flips: int = 160):
    """Deterministic damaged variants: truncations, and single bytes XOR-ed with 0xFF."""
    n = len(payload)
    cuts = sorted({0, 1, 2, 5, 9, n // 4, n // 2, (3 * n) // 4, n - 2, n - 1} - {n})
    for cut in cuts:
        if 0 <= cut < n:
            yield f"truncated to {cut} of {n} bytes", payload[:cut]
    if n <= max_flips:
        positions = range(n)
    else:  # every header byte, then evenly spread positions, then the tail
        positions = sorted(set(range(16)) | set(np.linspace(16, n - 1, max_flips - 24).astype(int))
                           | set(range(n - 8, n)))
    for i in positions:
        b = bytearray(payload)
        b[i] ^= 0xFF
        yield f"byte {i} of {n} flipped", bytes(b)


def check_corruption(codec, payload: bytes, codes: np.ndarray, *, max_unnoticed: float = 0.05) -> None:
    """Damaged payloads raise CorruptArchiveError (or ValueError) or decode to something else.

    Any other exception type escaping ``decode`` is a failure, and so is a
    truncated payload that decodes to the original codes. A flipped byte may
    decode to the original codes only where the format has redundant bits (for
    example the high bits of an lpc-v1 escape value that the low-bit shift
    discards; archives catch those with the block CRC), so at most
    ``max_unnoticed`` of the flips may go unnoticed: a decoder that ignores its
    input fails. A crash of the interpreter ends the run, which is also a failure.
    """
    codes = np.asarray(codes)
    problems, unnoticed, n_flips = [], [], 0
    for what, damaged in _corruptions(payload):
        flipped = "flipped" in what
        n_flips += flipped
        try:
            out = codec.decode(damaged)
        except REJECTIONS:
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to report which type escaped
            problems.append(f"{what}: {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:100]}")
            continue
        if not isinstance(out, np.ndarray):
            problems.append(f"{what}: decode returned {type(out).__name__}")
        elif out.shape == codes.shape and np.array_equal(out, codes):
            (unnoticed if flipped else problems).append(f"{what}: decoded to the original codes")
    if len(unnoticed) > max_unnoticed * n_flips:
        problems += [f"{len(unnoticed)} of {n_flips} byte flips went unnoticed"] + unnoticed[:5]
    assert not problems, f"{codec!r}: damaged payloads were mishandled:\n" + "\n".join(problems[:10])


def check_codec(codec, codes, *, corruption: bool = True) -> bytes:
    """Run every conformance check on ``codec`` with ``codes`` (2-D integers); return the payload."""
    codes = np.asarray(codes)
    assert codes.ndim == 2 and codes.dtype.kind in "iu", "check_codec needs 2-D integer codes"
    payload = check_roundtrip(codec, codes)
    check_config(codec, payload, codes)
    check_split_decode(codec, payload, codes)
    check_input_validation(codec, codes)
    if corruption:
        check_corruption(codec, payload, codes)
    return payload


def check_lossy_codec(codec, values, *, max_error=None, max_prdn: float = 50.0) -> bytes:
    """The checks a lossy codec must pass: shape and finiteness of the decoded values, a
    deterministic decode, config round trip through JSON, bounded error (``max_error``
    per channel when the codec guarantees one, else PRDN ≤ ``max_prdn`` %), and damaged
    payloads rejected with CorruptArchiveError/ValueError or decoded to other values."""
    values = np.asarray(values)
    payload = codec.encode(values)
    assert isinstance(payload, bytes)
    out = codec.decode(payload)
    assert out.shape == values.shape and np.isfinite(out).all()
    assert np.array_equal(codec.decode(payload), out), f"{codec!r}: decoding twice differs"
    rebuilt = get_codec(json.loads(json.dumps(codec.get_config())))
    assert type(rebuilt) is type(codec) and np.array_equal(rebuilt.decode(payload), out)
    err = out.astype(np.float64) - values
    if max_error is not None:
        assert (np.abs(err) <= np.asarray(max_error).reshape(-1, 1)).all(), f"{codec!r}: error bound exceeded"
    else:
        centred = values - values.mean(axis=1, keepdims=True)
        prdn = 100 * np.linalg.norm(err) / np.linalg.norm(centred)
        assert prdn <= max_prdn, f"{codec!r}: PRDN {prdn:.1f} % above {max_prdn} %"
    problems = []
    for what, damaged in _corruptions(payload, max_flips=40):
        try:
            codec.decode(damaged)
        except REJECTIONS:
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:80]}")
    assert not problems, f"{codec!r}: damaged payloads were mishandled:\n" + "\n".join(problems[:10])
    return payload


# --- stateful codecs (live streams: key and continuation blocks) -----------------------------
def encode_chain(codec, codes, block_sizes) -> list[bytes]:
    """Payloads of ``codes`` cut into blocks of ``block_sizes`` (cycled) by one stream encoder."""
    stream = codec.encode_stream()
    payloads, t, i = [], 0, 0
    while t < codes.shape[1]:
        n = block_sizes[i % len(block_sizes)]
        payloads.append(stream.encode(codes[:, t : t + n]))
        t, i = t + n, i + 1
    return payloads


def decode_chain(codec, payloads, state=None) -> tuple[np.ndarray, object]:
    parts = []
    for p in payloads:
        out, state = codec.decode_with(p, state)
        parts.append(out)
    return np.concatenate(parts, axis=1), state


def check_stream_codec(codec, codes, block_sizes=(7, 50, 1, 33)) -> list[bytes]:
    """The checks a stateful codec must pass on ``codes`` cut into blocks of ``block_sizes``:
    the chain decodes exactly block by block (``decode_with``) from a rebuilt codec, the
    first block is a key block, decoding never changes a state it was given (readers cache
    them), every key block decodes on its own, a continuation block refuses to decode without
    its state or after the wrong block, and damaged blocks raise CorruptArchiveError (or
    ValueError) or decode to other values, never anything else."""
    codes = np.asarray(codes)
    payloads = encode_chain(codec, codes, block_sizes)
    assert all(isinstance(p, bytes) for p in payloads)
    rebuilt = get_codec(json.loads(json.dumps(codec.get_config())))
    decoded, _ = decode_chain(rebuilt, payloads)
    assert decoded.dtype == np.int64 and np.array_equal(decoded, codes.astype(np.int64)), \
        f"{codec!r}: the chain does not decode to its codes"
    assert codec.is_key(payloads[0]), f"{codec!r}: a stream starts with a key block"
    assert encode_chain(codec, codes, block_sizes) == payloads, f"{codec!r}: encoding is not deterministic"
    # states are values: decoding from one twice gives the same, and leaves it as it was
    states, state = [], None
    for p in payloads:
        _, state = codec.decode_with(p, state)
        states.append(state)
    starts = np.cumsum([0] + [codec.decode_with(p, s)[0].shape[1] for p, s in zip(payloads, [None] + states[:-1])])
    for k in range(1, len(payloads)):
        again, _ = codec.decode_with(payloads[k], states[k - 1])
        assert np.array_equal(again, codes[:, starts[k] : starts[k + 1]]), f"{codec!r}: a state changed when used"
        if codec.is_key(payloads[k]):
            alone = codec.decode(payloads[k])
            assert np.array_equal(alone, codes[:, starts[k] : starts[k + 1]]), f"{codec!r}: key block {k}"
        else:
            try:
                codec.decode(payloads[k])
            except CorruptArchiveError:
                pass
            else:
                raise AssertionError(f"{codec!r}: continuation block {k} decoded without its chain")
            if k >= 2 and not codec.is_key(payloads[k - 1]):
                try:
                    out, _ = codec.decode_with(payloads[k], states[k - 2])
                except CorruptArchiveError:
                    pass
                else:
                    raise AssertionError(f"{codec!r}: block {k} decoded after block {k - 2}")
    # damaged blocks, one at a time, anywhere in the chain
    problems = []
    for k in sorted({0, 1, len(payloads) // 2, len(payloads) - 1}):
        for what, damaged in _corruptions(payloads[k], max_flips=24):
            chain = payloads[:k] + [damaged] + payloads[k + 1 :]
            try:
                decode_chain(codec, chain)
            except REJECTIONS:
                continue
            except Exception as exc:  # noqa: BLE001 - which type escaped is the point
                problems.append(f"block {k}, {what}: {type(exc).__name__}: {str(exc)[:100]}")
    assert not problems, f"{codec!r}: damaged blocks were mishandled:\n" + "\n".join(problems[:10])
    return payloads
