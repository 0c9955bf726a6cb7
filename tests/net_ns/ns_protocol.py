"""The receiver against senders that are wrong, hostile or broken (loopback, in a network
namespace): refused with a reason, never crashed, nothing allocated past the declared limit."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest

import net_helpers
from net_helpers import RawClient, Recording, frame_bytes, stream_frames, wait_until

import biocompress
from biocompress.container import frames
from biocompress.container.frames import FrameType
from biocompress.errors import NetworkError
from biocompress.stream import net_protocol as proto
from biocompress.stream.net import NetSink
from biocompress.stream.net_protocol import NetType
from biocompress.stream.net_receive import Receiver

net_helpers.require_namespace()

WAIT_S = 120
SECRET = b"correct horse battery staple 42"


@pytest.fixture(scope="module")
def rec():
    return Recording(seconds=6)


@pytest.fixture(scope="module")
def sent(rec):
    return stream_frames(rec)


def _refusal(client: RawClient) -> str:
    """The reason of the REFUSE the receiver answers with, after which it closes the connection."""
    frame = client.read_frame()
    while frame is not None and frame.kind in (NetType.CHALLENGE, NetType.ACK):
        frame = client.read_frame()
    assert frame is not None and frame.kind == NetType.REFUSE, frame
    reason = proto.reason_of(frame)
    assert client.read_frame() is None  # closed
    return reason


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _check(path, rec):
    with biocompress.open(path) as arc:
        assert arc.n_samples == rec.n and arc.verify()["ok"]
        assert np.array_equal(arc.read().view(np.int64), rec.x.view(np.int64))


def test_a_shared_secret_is_proved_both_ways(tmp_path, rec):
    out = tmp_path / "out.bc.h5"
    with Receiver(output=out, secret=SECRET) as receiver:
        with pytest.raises(NetworkError, match="refused the stream: authentication failed"):
            NetSink(*receiver.address, rec.description, secret=b"not the secret, but long enough")
        with pytest.raises(NetworkError, match="requires a shared secret"):
            NetSink(*receiver.address, rec.description)
        assert not out.exists() and receiver.stats["refused"] == 1
        sink = NetSink(*receiver.address, rec.description, secret=SECRET)
        rec.push(sink)
        sink.close()
        assert receiver.wait(WAIT_S)
    assert receiver.error is None and receiver.result["complete"]
    _check(out, rec)
    with Receiver(output=tmp_path / "open.bc.h5") as open_receiver:  # no secret: it cannot prove one
        with pytest.raises(NetworkError, match="cannot prove who it is"):
            NetSink(*open_receiver.address, rec.description, secret=SECRET)
    assert not (tmp_path / "open.bc.h5").exists()


def test_a_receiver_that_does_not_know_the_secret_gets_nothing(rec):
    """A server that asks for authentication but answers with a made-up proof."""
    server = socket.create_server(("127.0.0.1", 0))
    got = []

    def impostor():
        conn, _ = server.accept()
        with conn:
            conn.sendall(proto.control(NetType.CHALLENGE, {"protocol": proto.PROTOCOL, "nonce": "11" * 16,
                                                           "auth": True, "max_payload": 1 << 20}))
            conn.recv(4096)
            conn.sendall(proto.control(NetType.WELCOME, {"next": 0, "mac": "22" * 32}))
            conn.settimeout(2)
            try:
                got.append(conn.recv(4096))
            except OSError:
                got.append(b"")

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    with pytest.raises(NetworkError, match="does not know the shared secret"):
        NetSink(*server.getsockname(), rec.description, secret=SECRET)
    thread.join(10)
    server.close()
    assert got == [b""]  # not one frame of the stream


def test_frames_larger_than_the_limit_are_refused_before_their_payload(tmp_path, sent):
    """The declared length is checked on the 20-byte header: the refusal comes although the
    payload was never sent (a receiver that waited for it would hang here)."""
    with Receiver(output=tmp_path / "out.bc.h5", max_payload=1 << 16) as receiver:
        before = RawClient(receiver.address[1])  # before authentication: the control limit
        assert before.read_frame().kind == NetType.CHALLENGE
        before.send(frames.encode(NetType.HELLO, 0, b"")[:4] + (1 << 30).to_bytes(4, "little") + bytes(12))
        assert "allowed" in _refusal(before)

        after = RawClient(receiver.address[1])  # in a session: the receiver's limit
        after.handshake()
        after.send(frame_bytes(sent, 0, 1))
        head = frames.encode(FrameType.BLOCK, 1, b"")
        after.send(head[:4] + ((1 << 16) + 1).to_bytes(4, "little") + head[8:])
        assert "65537 payload bytes, more than the 65536 allowed" in _refusal(after)
        assert not receiver.wait(0)


def test_a_sender_told_a_smaller_limit_refuses_to_send(tmp_path, rec):
    with Receiver(output=tmp_path / "out.bc.h5", max_payload=2048) as receiver:
        with pytest.raises(NetworkError, match="exceeds the receiver's limit of 2048"):
            NetSink(*receiver.address, rec.description)


def test_garbage_does_not_crash_the_receiver(tmp_path, rec, sent):
    out = tmp_path / "out.bc.h5"
    with Receiver(output=out, handshake_timeout=0.5, max_connections=4) as receiver:
        port = receiver.address[1]

        socket.create_connection(("127.0.0.1", port)).close()  # gone at once

        silent = RawClient(port)  # says nothing: dropped after the handshake timeout
        assert silent.read_frame().kind == NetType.CHALLENGE
        assert silent.read_frame() is None

        noise = RawClient(port)
        noise.send(os.urandom(5000))
        assert "bad magic" in _refusal(noise)

        crowd = [RawClient(port) for _ in range(6)]  # more than max_connections at once
        answers = [c.read_frame().kind for c in crowd]
        assert answers.count(NetType.REFUSE) >= 2 and NetType.CHALLENGE in answers
        for c in crowd:
            c.close()

        cases = {
            "random bytes": os.urandom(3000),
            "bad CRC": _flip_last(frame_bytes(sent, 0, 1)),
            "a block first": frames.encode(FrameType.BLOCK, 0, os.urandom(100)),
            "a description that is not one": frames.encode(FrameType.HEADER, 0, b'{"version": 1, "info": 7}'),
            "not JSON": frames.encode(FrameType.HEADER, 0, b"\xff\xfe"),
            "a frame number skipped": frames.encode(FrameType.HEADER, 3, sent[0][1]),
            "a control frame of the receiver's": proto.control(NetType.WELCOME, {"next": 0, "mac": None}),
        }
        for name, data in cases.items():
            client = RawClient(port)
            client.handshake()
            client.send(data)
            assert _refusal(client), name

        bad_hello = RawClient(port)
        bad_hello.read_frame()
        bad_hello.send(proto.control(NetType.HELLO, {"protocol": 1, "session": "nope", "nonce": "00", "mac": None}))
        assert "session" in _refusal(bad_hello)
        other_protocol = RawClient(port)
        other_protocol.read_frame()
        other_protocol.send(proto.control(NetType.HELLO, {"protocol": 99, "session": "ab" * 16, "nonce": "00" * 16,
                                                          "mac": None}))
        assert "protocol 99" in _refusal(other_protocol)

        idle = RawClient(port)  # a session that says nothing more holds no one up
        assert idle.handshake()["next"] == 0
        assert not receiver.wait(0) and not out.exists()
        sink = NetSink("127.0.0.1", port, rec.description)  # a real sender still gets through
        assert idle.read_frame() is None  # replaced
        rec.push(sink)
        sink.close()
        assert receiver.wait(WAIT_S)
    assert receiver.error is None and receiver.result["complete"]
    _check(out, rec)


def test_frames_received_twice_are_dropped_and_a_session_resumes(tmp_path, rec, sent):
    """A hand-driven sender sends frames again (as after a lost acknowledgement), breaks a frame
    mid-session, and comes back on the same session: the receiver keeps each frame once, says
    where to resume, and the archive is the recording."""
    out = tmp_path / "out.bc.h5"
    session = proto.new_session()
    third = len(sent) // 3
    with Receiver(output=out) as receiver:
        port = receiver.address[1]
        first = RawClient(port)
        assert first.handshake(session=session)["next"] == 0
        first.send(frame_bytes(sent, 0, third) + frame_bytes(sent, 0, third))  # everything twice
        wait_until(lambda: receiver.stats["duplicates"] == third, 30, "duplicates counted")
        first.send(_flip_last(frame_bytes(sent, third, third + 1)))  # a damaged frame: the connection goes
        assert "CRC" in _refusal(first)

        intruder = RawClient(port)  # another session meanwhile: refused, the stream is not its
        intruder.read_frame()
        intruder.send(proto.control(NetType.HELLO, {"protocol": 1, "session": proto.new_session(),
                                                    "nonce": "00" * 16, "mac": None}))
        assert "another stream" in _refusal(intruder)

        second = RawClient(port)
        assert second.handshake(session=session)["next"] == third
        second.send(frame_bytes(sent, third - 5, len(sent)))  # five again, then the rest
        second.send(proto.control(NetType.BYE, {"reason": "done"}))
        assert receiver.wait(WAIT_S)
    assert receiver.error is None
    r = receiver.result
    assert r["complete"] and r["duplicates"] == third + 5 and r["frames"] == len(sent) and r["reconnects"] == 1
    _check(out, rec)
