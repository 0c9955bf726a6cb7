"""The network stream's parts that open no socket: addresses and secrets, the checks a received
frame goes through, decoding lanes that arrive out of step, the tee, the LSL outlet's values.
(Everything over sockets runs in tests/net_ns, inside a network namespace.)"""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from net_streams import Recording, stream_frames

import biocompress
from biocompress.container import frames
from biocompress.container.description import StreamDescription
from biocompress.container.frames import Frame, FrameError, FrameType
from biocompress.container.journal import JournalSink
from biocompress.errors import BadInputError, CorruptArchiveError, NetworkError
from biocompress.io import scaling
from biocompress.stream import net_protocol as proto
from biocompress.stream.assemble import SampleAssembler
from biocompress.stream.incoming import IncomingStream
from biocompress.stream.lsl_outlet import OutletFormat
from biocompress.stream.tee import TeeSink


@pytest.fixture(scope="module")
def rec():
    return Recording(seconds=8)


@pytest.fixture(scope="module")
def sent(rec):
    return stream_frames(rec)


# --- addresses and secrets ------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)), ("localhost:0", ("localhost", 0)), ("[::1]:80", ("::1", 80)),
    ("eeg-lab.example.org:65535", ("eeg-lab.example.org", 65535)),
])
def test_addresses(text, expected):
    assert proto.parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":5000", "host:65536", "host:port", "[::1]", "a b:1", ""])
def test_bad_addresses(text):
    with pytest.raises(BadInputError, match="HOST:PORT|port"):
        proto.parse_address(text)


def test_loopback():
    assert all(map(proto.is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "localhost"]))
    assert not any(map(proto.is_loopback, ["10.0.0.1", "0.0.0.0", "::", "eeg-lab.example.org"]))


def test_secrets(tmp_path):
    (tmp_path / "ok").write_text("  0123456789abcdef0123\n")
    assert proto.read_secret(tmp_path / "ok") == b"0123456789abcdef0123"
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(BadInputError, match="at least 16"):
        proto.read_secret(tmp_path / "short")
    with pytest.raises(BadInputError, match="not found"):
        proto.read_secret(tmp_path / "missing")
    with pytest.raises(BadInputError, match="not found"):
        proto.read_secret(tmp_path)


def test_proofs_bind_both_nonces_the_session_and_the_resume_point():
    secret, a, b, session = b"s" * 16, b"\1" * 16, b"\2" * 16, "ab" * 16
    hello = proto.hello_mac(secret, a, b, session)
    assert proto.same_mac(hello, proto.hello_mac(secret, a, b, session))
    others = [proto.hello_mac(b"t" * 16, a, b, session), proto.hello_mac(secret, b, a, session),
              proto.hello_mac(secret, a, b, "cd" * 16)]
    assert not any(proto.same_mac(o, hello) for o in others)
    assert proto.welcome_mac(secret, a, b, session, 5) != proto.welcome_mac(secret, a, b, session, 6)
    assert not proto.same_mac(None, hello)


def test_handshake_messages_are_checked():
    ok = proto.control(proto.NetType.CHALLENGE, {"protocol": 1, "nonce": "00" * 16, "auth": True, "max_payload": 9})
    assert proto.parse_challenge(_frame(ok))["max_payload"] == 9
    with pytest.raises(NetworkError, match="protocol 2"):
        proto.parse_challenge(_frame(proto.control(proto.NetType.CHALLENGE, {"protocol": 2})))
    for bad in ({"next": -1}, {"next": True}, {"next": 1.5}, {"next": 3, "mac": "zz"}):
        with pytest.raises(FrameError):
            proto.parse_welcome(_frame(proto.control(proto.NetType.WELCOME, bad)))
    for bad in ({"session": "ab"}, {"session": "ab" * 16, "nonce": "0"}, {}):
        with pytest.raises(FrameError):
            proto.parse_hello(_frame(proto.control(proto.NetType.HELLO, bad)))
    assert proto.reason_of(_frame(proto.control(proto.NetType.REFUSE, {"reason": "no\x1b[31m" + "x" * 999}))) \
        == "no?[31m" + "x" * 293


def _frame(data: bytes) -> Frame:
    head = frames.parse_header(data[:frames.HEAD.size], 1 << 20)
    return head.check(data[frames.HEAD.size:])


# --- received frames --------------------------------------------------------------------
class Calls:
    """A sink that records the calls it gets."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a, k))


def test_received_frames_make_the_journal_the_sender_would_have_written(tmp_path, rec, sent):
    """Frames through IncomingStream into a JournalSink: the archive is the recording."""
    description = StreamDescription.from_dict(json.loads(sent[0][1]), "test")
    stream = IncomingStream(description)
    sink = JournalSink(tmp_path / "out.bc.h5", description)
    end = None
    for seq, (kind, payload) in enumerate(sent[1:], 1):
        end = stream.apply(Frame(kind, seq, payload), sink)
    assert end is not None and end["n_samples"] == rec.n == stream.samples
    sink.close(samples_sha256=end["samples_sha256"], times_sha256=end["times_sha256"])
    with biocompress.open(tmp_path / "out.bc.h5") as arc:
        assert arc.verify()["ok"] and np.array_equal(arc.read().view(np.int64), rec.x.view(np.int64))
        assert np.array_equal(arc.timestamps(), rec.stamps)


def _crafted(sent):
    """Frames no sender sends, each with the frames before it that make it wrong."""
    kinds = [k for k, _ in sent]
    first_block = kinds.index(FrameType.BLOCK)
    codec = sent[kinds.index(FrameType.CODEC)][1]
    block = sent[first_block][1]
    t0, t1, c0, c1, number = frames.BLOCK_HEAD.unpack_from(block)
    body = block[frames.BLOCK_HEAD.size:]

    def with_head(*fields):
        return frames.BLOCK_HEAD.pack(*fields) + body

    return {
        "a second description": [(FrameType.HEADER, sent[0][1])],
        "a codec out of turn": [(FrameType.CODEC, json.dumps({"number": 3, "config": {"id": "lpc-v3"}}).encode())],
        "an unknown codec": [(FrameType.CODEC, json.dumps({"number": 0, "config": {"id": "zip-bomb"}}).encode())],
        "a codec with made-up settings": [(FrameType.CODEC, json.dumps(
            {"number": 0, "config": {"id": "lpc-v3", "order": "x", "nonsense": 1}}).encode())],
        "a block with an undeclared codec": [(FrameType.BLOCK, block)],
        "a block that does not start at 0": [(FrameType.CODEC, codec), (FrameType.BLOCK, with_head(5, t1, c0, c1, 0))],
        "an empty block": [(FrameType.CODEC, codec), (FrameType.BLOCK, with_head(0, 0, c0, c1, 0))],
        "channels past the last": [(FrameType.CODEC, codec), (FrameType.BLOCK, with_head(0, t1, 0, 999, 0))],
        "a block too large to decode": [(FrameType.CODEC, codec), (FrameType.BLOCK, with_head(0, 1 << 40, c0, c1, 0))],
        "overlapping lanes": [(FrameType.CODEC, codec), (FrameType.BLOCK, block),
                              (FrameType.BLOCK, with_head(0, t1, c0 + 1, c1 + 1, 0))],
        "a short block header": [(FrameType.CODEC, codec), (FrameType.BLOCK, b"\0" * 5)],
        "markers that are not": [(FrameType.MARKERS, b'{"onset": [1], "duration": [], "description": ["a"]}')],
        "markers with a string onset": [(FrameType.MARKERS, b'{"onset": ["1"], "duration": [0], "description": ["a"]}')],
        "a clock offset that is not a number": [(FrameType.CLOCK, b'{"time": [1], "offset": [null]}')],
        "a note without text": [(FrameType.NOTE, b'{"text": 5}')],
        "an END without a count": [(FrameType.END, b'{"n_samples": "all"}')],
        "not JSON": [(FrameType.NOTE, b"\xff")],
        "JSON that is not an object": [(FrameType.NOTE, b"[1, 2]")],
        "an unknown frame type": [(42, b"")],
        "a frame after END": [(FrameType.END, b'{"n_samples": 0}'), (FrameType.NOTE, b'{"text": "late"}')],
    }


def test_frames_no_sender_sends_reach_no_sink(sent):
    description = StreamDescription.from_dict(json.loads(sent[0][1]), "test")
    for name, sequence in _crafted(sent).items():
        stream, sink = IncomingStream(description), Calls()
        *before, (kind, payload) = sequence
        for seq, (k, p) in enumerate(before, 1):
            stream.apply(Frame(k, seq, p), sink)
        made = len(sink.calls)
        with pytest.raises(FrameError):
            stream.apply(Frame(kind, len(sequence), payload), sink)
        assert len(sink.calls) == made, name


def test_digests_of_other_samples_are_not_passed_on(sent):
    """An END whose count is not what arrived keeps its count but not its digests."""
    description = StreamDescription.from_dict(json.loads(sent[0][1]), "test")
    stream = IncomingStream(description)
    for seq, (kind, payload) in enumerate(sent[1:-1], 1):
        stream.apply(Frame(kind, seq, payload), Calls())
    end = json.loads(sent[-1][1])
    end["n_samples"] -= 1
    got = stream.apply(Frame(FrameType.END, len(sent), json.dumps(end).encode()), Calls())
    assert got == {"n_samples": end["n_samples"], "samples_sha256": None, "times_sha256": None, "fidelity": None}


# --- decoding as blocks arrive ----------------------------------------------------------
def test_lanes_out_of_step_decode_to_the_samples_in_order(rec, sent):
    """Blocks of one lane held back (as a lossy lane lags): chunks come out only when every
    channel and the timestamps have them, in order, exactly."""
    description = StreamDescription.from_dict(json.loads(sent[0][1]), "test")
    stream = IncomingStream(description)
    blocks = Calls()
    for seq, (kind, payload) in enumerate(sent[1:], 1):
        stream.apply(Frame(kind, seq, payload), blocks)
    blocks = [a[0] for name, a, _ in blocks.calls if name == "add"]
    lagging = [b for b in blocks if (b.ch_start, b.section) == (0, "data")]
    others = [b for b in blocks if b not in lagging]
    assert lagging and others
    assembler = SampleAssembler(description)
    chunks = [c for b in others for c in assembler.add(b)]
    assert chunks == []  # channels [0, …) have nothing yet
    for b in lagging:
        chunks += assembler.add(b)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks) and chunks[0].start == 0
    x = np.concatenate([c.values for c in chunks], axis=1)
    assert np.array_equal(x.view(np.int64), rec.x.view(np.int64))
    assert np.array_equal(np.concatenate([c.timestamps for c in chunks]), rec.stamps)
    with pytest.raises(CorruptArchiveError, match="out of order"):
        assembler.add(others[0])


# --- the tee ----------------------------------------------------------------------------
class Failing(Calls):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def add(self, block):
        raise self.error


def test_an_optional_copy_that_fails_is_dropped_with_a_note():
    main, copy = Calls(), Failing(NetworkError("the network buffer is full"))
    tee = TeeSink(main, copy, optional=[copy])
    tee.add("block")
    tee.add("block 2")
    assert tee.dropped == [(copy, copy.error)] and tee.sinks == [main]
    assert [c[0] for c in main.calls] == ["add", "note", "add"]
    assert "buffer is full" in main.calls[1][1][0]
    assert ("abort", (), {}) in copy.calls


def test_an_optional_copy_that_cannot_start_stops_the_recording():
    """A receiver that is not there when the stream starts is a mistake to report, not a copy to drop."""
    class NoStart(Calls):
        def start(self, header):
            raise NetworkError("no receiver answered")

    main, copy = Calls(), NoStart()
    tee = TeeSink(main, copy, optional=[copy])
    with pytest.raises(NetworkError, match="no receiver"):
        tee.start("header")
    assert tee.sinks == [main, copy] and tee.dropped == []


def test_a_required_sink_that_fails_stops_the_stream_after_the_others_had_the_call():
    first, broken, last = Calls(), Failing(OSError("disk full")), Calls()
    tee = TeeSink(first, broken, last)
    with pytest.raises(OSError, match="disk full"):
        tee.add("block")
    assert first.calls == last.calls == [("add", ("block",), {})]


# --- the LSL outlet's values ------------------------------------------------------------
@pytest.mark.parametrize("channel_format, dtype", [("float32", np.float32), ("int16", np.int16),
                                                   ("double64", np.float64)])
def test_an_lsl_stream_goes_out_in_its_own_format_and_values(channel_format, dtype):
    rng = np.random.default_rng(0)
    native = (rng.normal(0, 300, (3, 50))).astype(dtype)
    recipe = scaling.Recipe(("mul:e",), {"e": np.full(3, 1e-6)})
    x = recipe.forward(native, np.arange(3))
    info = mne.create_info(["a", "b", "c"], 100.0, "eeg")
    d = StreamDescription(info=info, recipe=recipe, kinds=scaling.detect_kinds(recipe, x),
                          stream={"name": "amp", "type": "EEG", "channel_format": channel_format})
    fmt = OutletFormat(d)
    out = fmt.samples(x)
    assert fmt.channel_format == channel_format and out.dtype == dtype and out.shape == (50, 3)
    if dtype == np.float64:
        assert np.allclose(out.T, native, rtol=1e-15, atol=0)
    else:
        assert np.array_equal(out.T, native)


def test_a_file_stream_goes_out_as_float32_microvolts():
    info = mne.create_info(["eeg", "temp"], 100.0, ["eeg", "misc"])
    x = np.array([[1e-6, -2.5e-6], [36.6, 36.7]])
    d = StreamDescription(info=info, recipe=scaling.Recipe((), {}), kinds=np.array([2, 2]))
    fmt = OutletFormat(d)
    assert fmt.channel_format == "float32" and fmt.units[0] == "microvolts"
    assert np.allclose(fmt.samples(x), np.array([[1.0, 36.6], [-2.5, 36.7]], np.float32))
