"""lpc-s1, the stateful codec of live streams: chains of key and continuation blocks, the
lane that writes them, and archives whose blocks continue each other."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
from codec_conformance import (
    REJECTIONS,
    check_codec,
    check_stream_codec,
    decode_chain,
    encode_chain,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocompress.codecs import get_codec
from biocompress.codecs.lossless import (
    LPCStreamCodec,
    LPCX3Codec,
    stream_codec,
    stream_entropy,
)
from biocompress.container.reader import Archive, sample_bytes
from biocompress.container.writer import ArchiveWriter, write_description
from biocompress.errors import CorruptArchiveError
from biocompress.io import scaling
from biocompress.stream.blocks import Chunk
from biocompress.stream.encoder import StreamEncoder
from biocompress.stream.lanes import ChainLane
from biocompress.container.recode import archive_blocks
from biocompress.stream.plans import live_lossless_lanes


def correlated(n_ch=6, n=900, seed=0):
    """A counter channel, then random walks sharing an innovation (cross-channel stage engages)."""
    rng = np.random.default_rng(seed)
    common = rng.integers(-300, 301, n)
    gains = np.linspace(-1.2, 1.5, n_ch - 1)[:, None]
    x = np.cumsum(np.round(common * gains) + rng.integers(-15, 16, (n_ch - 1, n)), axis=1)
    return np.vstack([np.arange(n), x]).astype(np.int64)


def oscillation(n_ch=4, n=3000, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = [np.round(800 * np.sin(2 * np.pi * t / p + c) + rng.normal(0, 9, n)) for p, c in
         zip(rng.uniform(20, 90, n_ch), rng.uniform(0, 6, n_ch))]
    return np.asarray(x, np.int64)


CASES = {
    "correlated": lambda: correlated(),
    "oscillation": lambda: oscillation(),
    "int32 extremes": lambda: np.vstack([
        np.cumsum(np.random.default_rng(2).integers(-3000, 3001, 400)),
        np.tile([-(2**31), 2**31 - 1, 0, -1], 100)]).astype(np.int64),
    "int64 extremes": lambda: np.array([[-(2**63), 2**63 - 1, 0, -1, 2**62, -(2**62)] * 30], np.int64),
    "constant": lambda: np.full((3, 300), -7, np.int64),
    "coarse grid": lambda: (np.cumsum(np.random.default_rng(3).integers(-9, 10, (2, 500)), axis=1) * 7
                            - 123456).astype(np.int64),
    "white noise": lambda: np.random.default_rng(4).integers(-2**20, 2**20, (3, 400)).astype(np.int64),
    "one channel": lambda: oscillation(1, 700),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("key_interval,update_interval", [(4096, 1024), (97, 40)])
def test_chains_conform(case, key_interval, update_interval):
    codes = CASES[case]()
    codec = LPCStreamCodec(key_interval=key_interval, update_interval=update_interval, window=256)
    check_stream_codec(codec, codes, block_sizes=(7, 50, 1, 33, 120))


@pytest.mark.parametrize("case", ["correlated", "int32 extremes", "coarse grid", "constant"])
def test_self_contained_payloads_conform(case):
    check_codec(LPCStreamCodec(update_interval=64, window=256), CASES[case]())


def test_key_blocks_come_every_key_interval():
    codes = oscillation(3, 2000)
    codec = LPCStreamCodec(key_interval=300, update_interval=100, window=256)
    payloads = encode_chain(codec, codes, (50,))
    keys = [i for i, p in enumerate(payloads) if codec.is_key(p)]
    assert keys == list(range(0, len(payloads), 6))  # 6 blocks of 50 make the first chain ≥ 300 samples


def test_forced_keys_and_first_block():
    codes = correlated(3, 200)
    stream = LPCStreamCodec().encode_stream()
    with pytest.raises(ValueError):
        stream.encode(codes[:, :10], key=False)
    blocks = [stream.encode(codes[:, :50]), stream.encode(codes[:, 50:100], key=True),
              stream.encode(codes[:, 100:200])]
    codec = LPCStreamCodec()
    assert [codec.is_key(b) for b in blocks] == [True, True, False]
    assert np.array_equal(decode_chain(codec, blocks)[0], codes)
    with pytest.raises(ValueError):
        stream.encode(codes[:2, :10])  # the stream's channels are fixed


def test_lattice_changes_mid_stream():
    """A channel on a coarse grid that later leaves it: the step is sent again, history kept."""
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.integers(-5, 6, (2, 1200)), axis=1) * 8 + 3
    x[0, 700:] += rng.integers(0, 8, 500)
    codec = LPCStreamCodec(key_interval=10_000, update_interval=200, window=256)
    payloads = check_stream_codec(codec, x.astype(np.int64), block_sizes=(64,))
    assert sum(codec.is_key(p) for p in payloads) == 1


def test_merged_chain_is_one_self_contained_block():
    codes = correlated(4, 600)
    codec = LPCStreamCodec(key_interval=10_000, update_interval=100, window=256)
    payloads = encode_chain(codec, codes, (40,))
    merged = stream_codec.merge_chain(payloads)
    assert codec.is_key(merged)
    assert np.array_equal(codec.decode(merged), codes)
    assert stream_codec.declared_shape(merged) == codes.shape
    with pytest.raises(ValueError):
        stream_codec.merge_chain(payloads[1:])
    with pytest.raises(CorruptArchiveError):  # a chain block whose second block is missing
        codec.decode(stream_codec.merge_chain(payloads[:1] + payloads[2:]))


def test_decoders_check_sizes_before_allocating():
    """A header declaring more samples than its bytes can hold is refused at once."""
    bomb = bytes([stream_codec.KEY]) + stream_codec._varint(64) + stream_codec._varint(400_000) + b"\x55" * 40
    with pytest.raises(CorruptArchiveError, match="declares"):
        LPCStreamCodec().decode(bomb)
    assert stream_entropy.max_values(40) < 64 * 400_000


def test_stateless_codecs_have_the_stream_interface():
    codec = LPCX3Codec()
    codes = correlated(3, 300)
    payload = codec.encode_stream().encode(codes)
    assert codec.is_key(payload) and not codec.stateful
    out, state = codec.decode_with(payload, None)
    assert state is None and np.array_equal(out, codes)


def test_config_round_trip_and_limits():
    codec = LPCStreamCodec(max_order=16, refs=2, key_interval=1000, update_interval=200, window=512)
    assert get_codec(json.loads(json.dumps(codec.get_config()))).get_config() == codec.get_config()
    for bad in ({"max_order": 5}, {"refs": 8}, {"key_interval": 0}, {"window": 10}):
        with pytest.raises(ValueError):
            LPCStreamCodec(**bad)


def test_entropy_tables_are_frozen():
    """The integer frequency tables are part of the lpc-s1 bitstream (FORMAT.md §8.11): a
    platform whose math library builds other tables must fail here, not write archives."""
    assert stream_entropy.table_digest() == "3530e2950f9df636b49ed51ed8a878b2813da87f38dfda6cf68833ff2b862d66"


def test_continuation_seq_and_state_checks():
    codes = correlated(3, 400)
    codec = LPCStreamCodec()
    p = encode_chain(codec, codes, (50,))
    _, s0 = codec.decode_with(p[0], None)
    _, s1 = codec.decode_with(p[1], s0)
    with pytest.raises(CorruptArchiveError, match="without the blocks before"):
        codec.decode_with(p[1], None)
    with pytest.raises(CorruptArchiveError, match="does not follow"):
        codec.decode_with(p[1], s1)
    with pytest.raises(CorruptArchiveError):
        codec.decode_with(b"", s0)
    with pytest.raises(CorruptArchiveError):
        codec.decode_with(bytes([7]) + p[1][1:], s0)


# --- properties ---------------------------------------------------------------------------
@st.composite
def streams(draw):
    n_ch = draw(st.integers(1, 5))
    n = draw(st.integers(1, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["walk", "noise", "steps", "wide"]))
    if style == "walk":
        x = np.cumsum(rng.integers(-50, 51, (n_ch, n)), axis=1)
    elif style == "noise":
        x = rng.integers(-1000, 1000, (n_ch, n))
    elif style == "steps":
        x = np.repeat(rng.integers(-5, 5, (n_ch, n // 10 + 1)), 10, axis=1)[:, :n] * 1365
    else:
        x = rng.integers(-(2**62), 2**62, (n_ch, n))
    sizes = draw(st.lists(st.integers(1, 80), min_size=1, max_size=5))
    key = draw(st.integers(1, 300))
    return x.astype(np.int64), tuple(sizes), key


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_any_stream_round_trips(stream):
    codes, sizes, key = stream
    codec = LPCStreamCodec(key_interval=key, update_interval=max(16, key // 2), window=128)
    payloads = encode_chain(codec, codes, sizes)
    assert np.array_equal(decode_chain(codec, payloads)[0], codes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.data())
def test_damaged_block_anywhere_in_a_chain_is_refused_or_decodes(stream, data):
    """Random bytes, flipped bits or a truncation in any block: CorruptArchiveError (or a
    ValueError) or some values of the right kind; never a crash, a hang or another error.
    (Archives catch such damage with each block's CRC-32 before decoding.)"""
    codes, sizes, key = stream
    codec = LPCStreamCodec(key_interval=key, update_interval=max(16, key // 2), window=128)
    payloads = encode_chain(codec, codes, sizes)
    k = data.draw(st.integers(0, len(payloads) - 1))
    how = data.draw(st.sampled_from(["flip", "random", "truncate"]))
    block = bytearray(payloads[k])
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(block) - 1))
            block[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "random":
        block = bytearray(data.draw(st.binary(min_size=0, max_size=2 * len(block) + 8)))
    else:
        block = block[: data.draw(st.integers(0, max(0, len(block) - 1)))]
    try:
        out, _ = decode_chain(codec, payloads[:k] + [bytes(block)] + payloads[k + 1 :])
    except REJECTIONS:
        return
    assert out.dtype == np.int64 and out.shape[0] == codes.shape[0]


# --- lanes and archives -----------------------------------------------------------------
def _raw(n_ch=40, n=6000, sfreq=250.0, seed=0):
    codes = np.vstack([np.arange(n)] + [oscillation(1, n, seed + c)[0] + 50 * c for c in range(n_ch - 1)])
    info = mne.create_info([f"EEG{c:03d}" for c in range(n_ch)], sfreq, "eeg")
    return codes, info


def _live_archive(path, codes, info, block=25, chunk_sizes=(7, 40, 13, 100), key_seconds=2.0, group=16):
    """An archive written as a live stream is: chunks pushed, flushes every ``block`` samples."""
    recipe = scaling.Recipe(("mul:cal",), {"cal": np.full(codes.shape[0], 1e-7)})
    values = codes * 1e-7
    kinds = np.zeros(codes.shape[0], np.int8)
    lanes = live_lossless_lanes(kinds, recipe, info["sfreq"], block, group, key_seconds=key_seconds,
                                key_min_samples=0)
    enc = StreamEncoder(lanes)
    blocks, t, i = [], 0, 0
    held = 0
    while t < codes.shape[1]:
        n = min(chunk_sizes[i % len(chunk_sizes)], codes.shape[1] - t)
        blocks += enc.push(Chunk(t, values[:, t : t + n]))
        held += n
        if held >= block:
            blocks += enc.flush()
            held = 0
        t, i = t + n, i + 1
    blocks += enc.finish()
    import hashlib

    with ArchiveWriter(path) as writer:
        for b in blocks:
            writer.add(b)
        write_description(writer.h5, info=info, ch_types=["eeg"] * codes.shape[0], recipe=recipe, kinds=kinds,
                          stored=np.full(codes.shape[0], codes.shape[1]), annotations=mne.Annotations([], [], []),
                          source={"file_name": None})
        writer.finish({"n_samples": codes.shape[1], "n_channels": codes.shape[0], "sfreq": info["sfreq"],
                       "block_samples": block,
                       "samples_sha256": hashlib.sha256(sample_bytes(recipe.forward(codes.astype(np.float64),
                                                                                    np.arange(codes.shape[0]))
                                                                     )).hexdigest()})
        writer.publish()
    return blocks, recipe


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    codes, info = _raw()
    path = tmp_path_factory.mktemp("live") / "live.bc.h5"
    blocks, recipe = _live_archive(path, codes, info)
    return path, codes, blocks, recipe


def test_chain_lane_emits_ordinary_blocks_in_chains(live):
    _, codes, blocks, _ = live
    codec = LPCStreamCodec()
    assert all(b.config["id"] == "lpc-s1" for b in blocks)
    for group in {(b.ch_start, b.ch_stop) for b in blocks}:
        mine = [b for b in blocks if (b.ch_start, b.ch_stop) == group]
        assert [b.t_start for b in mine] == sorted(b.t_start for b in mine)
        assert all(b.t_stop - b.t_start <= 25 for b in mine)
        keys = [b.t_start for b in mine if codec.is_key(b.payload)]
        assert keys[0] == 0 and len(keys) >= 2 and all(np.diff(keys) >= 500)  # 2 s at 250 Hz
        out = decode_chain(codec, [b.payload for b in mine])[0]
        assert np.array_equal(out, codes[group[0] : group[1]])


def test_archive_of_chains_reads_any_window(live):
    path, codes, _, recipe = live
    rng = np.random.default_rng(0)
    expected = recipe.forward(codes.astype(np.float64), np.arange(codes.shape[0]))
    with Archive(path) as arc:
        assert arc.verify()["ok"]
        assert np.array_equal(arc.read(), expected)
    for _ in range(12):  # a fresh reader each time: windows in the middle of chains, any channels
        with Archive(path, cache_blocks=4) as arc:
            a = int(rng.integers(0, codes.shape[1] - 1))
            b = int(rng.integers(a + 1, min(codes.shape[1], a + 700) + 1))
            picks = np.sort(rng.choice(codes.shape[0], int(rng.integers(1, 6)), replace=False))
            assert np.array_equal(arc.read(a, b, picks), expected[picks, a:b])


def test_reading_front_to_back_decodes_each_block_once(live, monkeypatch):
    path, _, blocks, _ = live
    calls = []
    real = LPCStreamCodec.decode_with
    monkeypatch.setattr(LPCStreamCodec, "decode_with", lambda self, p, s: calls.append(1) or real(self, p, s))
    with Archive(path, cache_blocks=2) as arc:
        for t0, t1, _ in arc.iter_chunks():
            pass
    assert len(calls) == len(blocks)


def _damage_block(path, i):
    import h5py

    from biocompress.container.layout import segment_path

    with Archive(path) as arc:
        row = arc.index[i]
        seg, off = int(row["segment"]), int(row["offset"]) + int(row["length"]) // 2
    with h5py.File(path, "r+") as h5:
        ds = h5[segment_path("data", seg)]
        ds[off] = ds[off] ^ 0xFF


def test_damaged_block_takes_the_rest_of_its_chain_only(live, tmp_path):
    path, codes, _, recipe = live
    copy = tmp_path / "damaged.bc.h5"
    copy.write_bytes(path.read_bytes())
    with Archive(copy) as arc:
        idx = arc.index
        codec = LPCStreamCodec()
        group = (int(idx["ch_start"][0]), int(idx["ch_stop"][0]))
        rows = [i for i in np.argsort(idx["t_start"]) if (idx["ch_start"][i], idx["ch_stop"][i]) == group]
        conts = [i for i in rows[1:] if not codec.is_key(arc.block_bytes(i))]
        victim = conts[3]
        after = rows[rows.index(victim) + 1]
        next_key = next(i for i in rows[rows.index(victim):] if codec.is_key(arc.block_bytes(i)))
    _damage_block(copy, victim)
    expected = recipe.forward(codes.astype(np.float64), np.arange(codes.shape[0]))
    with Archive(copy) as arc:
        t = lambda i: (int(arc.index[i]["t_start"]), int(arc.index[i]["t_stop"]))
        a, b = t(rows[rows.index(victim) - 1])
        assert np.array_equal(arc.read(a, b, [group[0]]), expected[[group[0]], a:b])  # before: fine
        for i in (victim, after):
            with pytest.raises(CorruptArchiveError):
                arc.read(*t(i), [group[0]])
        a, b = t(next_key)  # the next chain starts afresh
        assert np.array_equal(arc.read(a, b, [group[0]]), expected[[group[0]], a:b])
        a, b = t(victim)  # other channel groups are not affected
        other = group[1]
        assert np.array_equal(arc.read(a, b, [other]), expected[[other], a:b])
        with pytest.raises(CorruptArchiveError):
            arc.verify()


def test_chain_without_its_key_block_is_corrupt(tmp_path):
    codes, info = _raw(4, 600)
    path = tmp_path / "a.bc.h5"
    blocks, recipe = _live_archive(path, codes, info, block=50, key_seconds=100, group=4)
    # the same blocks with the key block's payload replaced by a continuation block of the chain
    forged = tmp_path / "b.bc.h5"
    with ArchiveWriter(forged) as writer:
        for k, b in enumerate(blocks):
            writer.add(b if k else type(b)(b.t_start, b.t_stop, b.ch_start, b.ch_stop, b.config, blocks[1].payload))
        write_description(writer.h5, info=info, ch_types=["eeg"] * 4, recipe=recipe, kinds=np.zeros(4, np.int8),
                          stored=np.full(4, 600), annotations=mne.Annotations([], [], []), source={})
        writer.finish({"n_samples": 600, "n_channels": 4, "sfreq": info["sfreq"], "samples_sha256": "0" * 64})
        writer.publish()
    with Archive(forged) as arc, pytest.raises(CorruptArchiveError, match="key block is missing"):
        arc.read(300, 350)


def test_chain_lane_flushes_what_it_holds():
    recipe = scaling.Recipe(("mul:cal",), {"cal": np.ones(3)})
    lane = ChainLane(0, 3, 0, recipe, 100, LPCStreamCodec())
    codes = correlated(3, 250)
    out = lane.push(Chunk(0, codes[:, :130].astype(np.float64)))
    assert [(b.t_start, b.t_stop) for b in out] == [(0, 100)]
    out += lane.flush() + lane.flush()
    assert [(b.t_start, b.t_stop) for b in out] == [(0, 100), (100, 130)]
    out += lane.push(Chunk(130, codes[:, 130:].astype(np.float64))) + lane.finish()
    assert np.array_equal(decode_chain(LPCStreamCodec(), [b.payload for b in out])[0], codes)


def test_merged_chains_make_an_archive_that_reads_the_same(live, tmp_path):
    """A finished archive may hold one block per chain (stream_codec.merge_chain): the same
    samples from far fewer index rows."""
    from biocompress.container.chains import merge_chains

    path, codes, blocks, recipe = live
    merged = merge_chains(blocks)
    assert len(merged) < len(blocks) // 5
    assert sum(b.t_stop - b.t_start for b in merged) == sum(b.t_stop - b.t_start for b in blocks)
    copy = tmp_path / "merged.bc.h5"
    with Archive(path) as arc:
        info, sha = arc.info, arc.attrs["samples_sha256"]
    with ArchiveWriter(copy) as writer:
        for b in merged:
            writer.add(b)
        write_description(writer.h5, info=info, ch_types=["eeg"] * codes.shape[0], recipe=recipe,
                          kinds=np.zeros(codes.shape[0], np.int8), stored=np.full(codes.shape[0], codes.shape[1]),
                          annotations=mne.Annotations([], [], []), source={})
        writer.finish({"n_samples": codes.shape[1], "n_channels": codes.shape[0], "sfreq": info["sfreq"],
                       "samples_sha256": sha})
        writer.publish()
    with Archive(copy) as arc:
        assert arc.verify()["ok"]
        assert all(LPCStreamCodec().is_key(arc.block_bytes(i)) for i in range(arc.index.size))
        assert arc.index.shape[0] == len(merged)


def test_streamed_merge_gives_the_same_chains(live):
    """iter_merged_chains (finalize's, one chain held per lane) joins the same chains as merge_chains."""
    from biocompress.container.chains import iter_merged_chains, merge_chains

    _, _, blocks, _ = live
    key = lambda b: (b.section, b.ch_start, b.t_start)
    assert sorted(iter_merged_chains(blocks), key=key) == sorted(merge_chains(blocks), key=key)


# --- the format document ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lpc-s1_chain", "lpc-s1_default"])
def test_format_document_decodes_the_frozen_payloads(name):
    """A decoder written from FORMAT.md §8.11 alone (tests/stream_reference.py) reads the
    frozen lpc-s1 payloads to their expected codes."""
    import stream_reference
    from conftest import FIXTURES_DIR

    entry = json.loads((FIXTURES_DIR / "manifest.json").read_text())[name]
    out, _ = stream_reference.decode_block((FIXTURES_DIR / entry["payload"]).read_bytes(), None)
    assert np.array_equal(out, np.load(FIXTURES_DIR / entry["expected"]).astype(np.int64))


def test_format_document_follows_a_chain_with_keys_and_extremes():
    import stream_reference

    rng = np.random.default_rng(9)
    codes = np.vstack([correlated(4, 500), np.cumsum(rng.integers(-5, 6, (1, 500)), axis=1) * 8 + 3,
                       np.tile([-(2**63), 2**63 - 1, 5, -1, 0], 100)[None]]).astype(np.int64)
    codes[4, 300:] += rng.integers(0, 8, 200)
    codec = LPCStreamCodec(key_interval=180, update_interval=60, window=128)
    state, parts = None, []
    for p in encode_chain(codec, codes, (13, 40, 1, 70)):
        out, state = stream_reference.decode_block(p, state)
        parts.append(out)
    assert np.array_equal(np.concatenate(parts, axis=1), codes)


def test_a_live_recording_in_lpc_s1_chains_survives_journal_and_finalize(tmp_path, monkeypatch):
    """The journal sink carries lpc-s1 blocks unchanged (int16 chunks flushed every 50 ms, with
    chains); finalizing codes them again as compress would (lpc-v4 blocks of up to 16384
    samples) and the archive reads back exactly."""
    import biocompress.container.journal_finalize as journal_finalize
    import biocompress.stream.live as live
    from biocompress.stream.record import compress_chunks

    sfreq = 250.0
    monkeypatch.setattr(live, "live_lossless_lanes", lambda kinds, recipe, rate, block, group: live_lossless_lanes(
        kinds, recipe, rate, block, group, key_seconds=2.0, key_min_samples=0))
    journal_blocks = []

    def spy(rows):
        rows = list(rows)
        journal_blocks.extend(rows)
        return archive_blocks(rows)

    monkeypatch.setattr(journal_finalize, "archive_blocks", spy)
    codes = correlated(6, 3000, seed=4)[1:].astype(np.int16)
    chunks = [codes[:, t : t + 13] for t in range(0, codes.shape[1], 13)]
    path = compress_chunks(chunks, tmp_path / "live.bc.h5", sfreq=sfreq, ch_names=[f"C{i}" for i in range(5)],
                           units="microvolts", block_ms=50)
    codec = LPCStreamCodec()
    assert {b.config["id"] for b in journal_blocks} == {"lpc-s1"}
    assert sum(not codec.is_key(b.payload) for b in journal_blocks) > 10
    with Archive(path) as arc:
        assert {c["id"] for c in arc.codec_configs} == {"lpc-v4"} and arc.index.size == 1
        assert arc.verify()["ok"]
        assert np.array_equal(np.rint(arc.read() * 1e6).astype(np.int64), codes.astype(np.int64))


def test_archive_blocks_code_a_stream_as_compress_cuts_a_file(live):
    """recode.archive_blocks: a lane's chains and flushes become blocks of block_samples (the
    last shorter) in the codec compress uses, holding exactly the same codes."""
    _, codes, blocks, _ = live
    out = list(archive_blocks(blocks, block_samples=700))
    assert {b.config["id"] for b in out} == {"lpc-v4"}
    for group in {(b.ch_start, b.ch_stop) for b in blocks}:
        mine = sorted((b for b in out if (b.ch_start, b.ch_stop) == group), key=lambda b: b.t_start)
        assert [b.t_stop - b.t_start for b in mine[:-1]] == [700] * (len(mine) - 1)
        assert mine[-1].t_stop == codes.shape[1]
        back = np.concatenate([get_codec(b.config).decode(b.payload) for b in mine], axis=1)
        assert np.array_equal(back, codes[group[0] : group[1]])
