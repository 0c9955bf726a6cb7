"""The context-adaptive coefficient coder of dwt-v2 / sdwt-v2: exact round trips on any
integers it accepts, damaged streams refused, and sparse sub-bands coded for almost nothing."""

import numpy as np
import pytest

from biocompress.codecs.lossless import residual_coder
from biocompress.codecs.lossy import coefficient_coder as cc
from biocompress.errors import CorruptArchiveError


def _cases():
    rng = np.random.default_rng(7)
    yield "one coefficient", np.array([[5]]), [1]
    yield "all zero", np.zeros((3, 40), np.int64), [5, 5, 10, 20]
    yield "extremes", np.array([[cc.MAX_MAGNITUDE, -cc.MAX_MAGNITUDE, 0, 1, -1, 2**20]]), [2, 2, 2]
    for trial in range(40):
        sizes = rng.integers(1, 70, size=rng.integers(1, 7)).tolist()
        q = np.rint(rng.laplace(0, 10.0 ** rng.uniform(-2, 9), size=(int(rng.integers(1, 6)), sum(sizes))))
        q[rng.random(q.shape) < rng.random()] = 0  # sparse, in places
        yield f"laplace {trial}", np.clip(q, -cc.MAX_MAGNITUDE, cc.MAX_MAGNITUDE).astype(np.int64), sizes


@pytest.mark.parametrize("name, q, sizes", list(_cases()), ids=[c[0] for c in _cases()])
def test_round_trip_is_exact(name, q, sizes):
    assert np.array_equal(cc.decode("test", cc.encode(q, sizes), q.shape[0], sizes), q)


def test_refuses_coefficients_it_cannot_code():
    with pytest.raises(ValueError):
        cc.encode(np.array([[cc.MAX_MAGNITUDE + 1]]), [1])
    with pytest.raises(ValueError):
        cc.encode(np.zeros((2, 5), np.int64), [2, 2])  # sub-bands do not cover the row


def test_damaged_streams_raise_or_decode_to_bounded_integers():
    """Every byte string decodes to integers within the coder's range or raises CorruptArchiveError
    (the block's CRC catches the rest before a decoder sees it)."""
    rng = np.random.default_rng(3)
    q = np.rint(rng.laplace(0, 3, size=(4, 300))).astype(np.int64)
    sizes = [19, 19, 38, 75, 149]
    payload = bytearray(cc.encode(q, sizes))
    outcomes = set()
    for trial in range(300):
        damaged = bytearray(payload)
        if trial % 3 == 0:
            damaged = damaged[: int(rng.integers(0, len(damaged)))]
        else:
            damaged[int(rng.integers(0, len(damaged)))] ^= 1 << int(rng.integers(0, 8))
        try:
            out = cc.decode("test", bytes(damaged), 4, sizes)
        except CorruptArchiveError:
            outcomes.add("refused")
            continue
        assert out.shape == q.shape and np.abs(out).max() <= cc.MAX_MAGNITUDE
        outcomes.add("decoded")
    assert "refused" in outcomes


def test_zero_sub_bands_cost_almost_nothing():
    """Principal components far below the step are zero throughout: a few bits each, where a
    scale class per 256 coefficients pays for every coefficient."""
    rng = np.random.default_rng(1)
    sizes = [16, 16, 32, 63, 125, 250, 500, 1000]
    dense = np.rint(rng.laplace(0, 4, size=(2, sum(sizes)))).astype(np.int64)
    q = np.vstack([dense, np.zeros((30, sum(sizes)), np.int64)])
    extra = len(cc.encode(q, sizes)) - len(cc.encode(dense, sizes))
    extra_segments = (len(residual_coder.encode_rows(list(q), 256, shaped=True))
                      - len(residual_coder.encode_rows(list(dense), 256, shaped=True)))
    assert extra <= 30 * len(sizes) * 1 / 8 + 4  # at most about a bit per zero sub-band
    assert extra < extra_segments / 10


@pytest.mark.parametrize("name", ["dwt-v2_prdn5", "sdwt-v2_step017", "sdwt-v3_step017", "sdwt-v4_step10", "random"])
def test_a_decoder_written_from_the_format_document_reads_the_streams(name):
    """tests/coefficient_reference.py decodes from FORMAT.md §8.15, §8.17, §8.18 and §8.19 alone:
    the same integers (and sdwt-v3/v4's offsets; sdwt-v4: fewer rows than channels)."""
    import json
    from pathlib import Path

    import coefficient_reference
    from biocompress.codecs import get_codec
    from biocompress.codecs.lossy import wavelet

    fixtures = Path(__file__).parent / "fixtures"
    if name == "random":
        rng = np.random.default_rng(5)
        x = np.cumsum(rng.laplace(0, 1, size=(3, 1500)), axis=1) + rng.laplace(0, 20, size=(3, 1500)) * (
            rng.random((3, 1500)) < 0.01)
        x[:, 700] += 5000.0  # a spike: magnitudes beyond the unary code (wide values), and low bits
        config = wavelet.ContextWaveletCodec(8, [0.7, 3.0, 40.0], [0.0, 1.0, -2.0]).get_config()
        payload = get_codec(config).encode(x)
    else:
        config = json.loads((fixtures / "manifest.json").read_text())[name]["codec"]
        payload = (fixtures / f"{name}.bin").read_bytes()
    n_rows, n = int.from_bytes(payload[:2], "little"), int.from_bytes(payload[2:6], "little")
    sizes = wavelet.band_sizes(n, config["levels"])
    offsets = config["id"] in ("sdwt-v3", "sdwt-v4")
    kept = config.get("kept")
    if kept is not None:
        assert sum(kept) < n_rows  # the fixture leaves components out
        n_rows = sum(kept)
    expected = cc.decode("test", payload[6 + (len(sizes) if offsets else 0) :], n_rows, sizes)
    decoded = coefficient_reference.decode_payload(payload, config["levels"], offsets, kept)
    assert np.array_equal(np.array(decoded), expected)
    if offsets:
        pulls = coefficient_reference.sub_band_offsets(payload, config["levels"])
        assert len(pulls) == len(sizes) and any(pulls) and all(-128 <= o <= 127 for o in pulls)
    assert (expected != 0).any() and (expected == 0).any()
