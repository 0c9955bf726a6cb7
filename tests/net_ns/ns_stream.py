"""A live stream over TCP (loopback, inside a network namespace): what the receiver archives is
what the sender sent, bit for bit, across dropped connections; nothing lost, nothing twice."""

from __future__ import annotations

import socket
import threading

import h5py
import numpy as np
import pytest

import net_helpers
from net_helpers import COUNTER, FlakyLink, Recording, wait_until

import biocompress
from biocompress.container.journal import JournalSink, is_journal
from biocompress.errors import BackpressureError, NetworkError
from biocompress.stream.net import NetSink
from biocompress.stream.net_receive import Receiver
from biocompress.stream.tee import TeeSink

net_helpers.require_namespace()

WAIT_S = 120  # bound on any wait for the receiver (a hang guard)


@pytest.fixture(scope="module")
def rec():
    return Recording(seconds=20)


def _check_archive(path, rec: Recording, n: int | None = None) -> None:
    """The archive holds samples [0, n) exactly (values and timestamps); its counter runs 0 … n - 1."""
    with biocompress.open(path) as arc:
        n = rec.n if n is None else n
        assert arc.n_samples == n and arc.verify()["ok"]
        x = arc.read()
        assert np.array_equal(x.view(np.int64), rec.x[:, :n].view(np.int64))
        counter = x[arc.ch_names.index(COUNTER)]
        assert np.array_equal(counter, np.arange(n)), "the counter has a gap or a duplicate"
        if rec.stamps is not None:
            assert np.array_equal(arc.timestamps().view(np.int64), rec.stamps[:n].view(np.int64))


def _contents(path) -> dict:
    """Every dataset's bytes and every attribute, by HDF5 path."""
    out = {}
    with h5py.File(path, "r") as f:
        def add(name, obj):
            entry = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                entry["<data>"] = (obj.dtype.str, obj.shape, obj[()].tobytes())
            out[name] = entry
        f.visititems(add)
        out["/"] = {k: np.asarray(v).tobytes() for k, v in f.attrs.items()}
    return out


@pytest.mark.parametrize("timestamps", [True, False])
def test_the_received_archive_is_the_one_written_here(tmp_path, timestamps):
    """Journal here and network at once (TeeSink): the receiver's finalized archive is identical
    to the local one, dataset for dataset, and both hold the recording exactly."""
    rec = Recording(seconds=20, timestamps=timestamps)
    received, local = tmp_path / "received.bc.h5", tmp_path / "local.bc.h5"
    seen = []
    with Receiver(output=received, on_frame=lambda *a: seen.append(a)) as receiver:
        sent = []
        net = NetSink(*receiver.address, rec.description, on_sent=lambda *a: sent.append(a))
        tee = TeeSink(JournalSink(local, rec.description), net)
        rec.push(tee)
        tee.close(**rec.digests())
        assert receiver.wait(WAIT_S)
    assert receiver.error is None
    result = receiver.result
    assert result["complete"] and result["path"] == received and result["n_samples"] == rec.n
    assert result["duplicates"] == 0 and result["reconnects"] == 0
    assert not is_journal(received) and h5py.is_hdf5(received)
    _check_archive(received, rec)
    assert _contents(received) == _contents(local)
    # what a benchmark measures: every frame sent once, received once, in order, bytes accounted
    assert [s[0] for s in sent] == list(range(len(sent))) == [r[0] for r in seen]
    assert all(s[3] <= s[4] for s in sent)  # queued before sent
    stats = net.stats
    assert stats["frames_sent"] == len(sent) and stats["frames_resent"] == 0
    assert stats["bytes_sent"] >= sum(s[2] for s in sent) == sum(r[2] for r in seen)
    assert stats["buffered_frames"] == 0 and stats["frames_acknowledged"] == len(sent)


def test_forced_reconnections_lose_and_duplicate_nothing(tmp_path, rec):
    """Connections cut mid-stream: after the receiver got frames whose acknowledgements never came
    back, after frames were lost on the way, or just so. The sender reconnects and resends from
    the receiver's count; the archive is the recording, its counter unbroken."""
    out = tmp_path / "out.bc.h5"
    with Receiver(output=out) as receiver:
        link = FlakyLink(receiver.address[1])
        try:
            sink = NetSink("127.0.0.1", link.port, rec.description)
            plan = {2000: "replies", 3000: "cut", 4000: "frames", 5000: "cut", 6000: "cut", 7000: "replies",
                    7500: "frames", 8500: "cut"}
            mark = {}

            def between(e):
                action = next((a for at, a in plan.items() if at - 25 < e <= at), None)
                if action in ("replies", "frames"):
                    link.hold(action)
                    mark.update(held=receiver.stats["frames_held"], sent=sink.stats["frames_sent"])
                elif action == "cut":
                    if link.holding == "replies":  # frames reached the receiver, their ACKs did not come back
                        wait_until(lambda: receiver.stats["frames_held"] > mark["held"], 30, "frames arriving")
                    elif link.holding == "frames":  # frames left the sender and were lost
                        wait_until(lambda: sink.stats["frames_sent"] > mark["sent"], 30, "frames leaving")
                    link.cut()

            rec.push(sink, between=between)
            sink.close(**rec.digests())
            assert receiver.wait(WAIT_S)
        finally:
            link.close()
    assert receiver.error is None
    r = receiver.result
    assert r["complete"] and r["n_samples"] == rec.n and r["frames"] == sink.stats["frames_queued"]
    assert r["reconnects"] >= 4 and sink.stats["reconnects"] == r["reconnects"]
    assert sink.stats["frames_resent"] > 0  # the frames lost on the way went again
    _check_archive(out, rec)


def test_an_end_whose_acknowledgement_was_lost_still_closes_cleanly(tmp_path, rec):
    """The receiver holds END but its ACK never arrives: the sender comes back, learns that
    everything arrived, says BYE; the receiver waited for it before finalizing."""
    out = tmp_path / "out.bc.h5"
    with Receiver(output=out) as receiver:
        link = FlakyLink(receiver.address[1])
        try:
            sink = NetSink("127.0.0.1", link.port, rec.description)
            rec.push(sink, stop=2000)
            assert sink.wait_acknowledged(30)
            link.hold("replies")
            closed = []
            closer = threading.Thread(target=lambda: closed.append(sink.close(**rec.digests(2000)) or "closed"))
            closer.start()
            wait_until(lambda: receiver.stats["frames_held"] == sink.stats["frames_queued"], 30, "END arriving")
            link.cut()
            closer.join(60)
            assert closed == ["closed"]
            assert receiver.wait(WAIT_S)
        finally:
            link.close()
    r = receiver.result
    assert receiver.error is None and r["complete"] and r["reconnects"] == 1 and r["n_samples"] == 2000
    _check_archive(out, rec, 2000)


def test_decoded_samples_reach_a_program_exactly(tmp_path, rec):
    """on_samples: every sample decoded on arrival, in order, bit for bit, with its timestamp."""
    chunks = []
    with Receiver(on_samples=lambda chunk, t: chunks.append(chunk)) as receiver:
        sink = NetSink(*receiver.address, rec.description)
        rec.push(sink)
        sink.close()
        assert receiver.wait(WAIT_S)
    assert receiver.error is None and receiver.result["path"] is None
    assert [c.start for c in chunks] == list(np.cumsum([0] + [c.values.shape[1] for c in chunks[:-1]]))
    x = np.concatenate([c.values for c in chunks], axis=1)
    stamps = np.concatenate([c.timestamps for c in chunks])
    assert np.array_equal(x.view(np.int64), rec.x.view(np.int64))
    assert np.array_equal(stamps.view(np.int64), rec.stamps.view(np.int64))
    assert receiver.result["published"] == rec.n


def test_a_receiver_stopped_mid_stream_keeps_what_arrived(tmp_path, rec):
    """The receiver stops (Ctrl-C, --duration): the archive is finalized with every sample it
    holds, and the sender learns the receiver is gone instead of buffering forever."""
    out = tmp_path / "out.bc.h5"
    receiver = Receiver(output=out)
    receiver.start()
    sink = NetSink(*receiver.address, rec.description)

    def between(e):
        if e == 4000:
            wait_until(lambda: receiver.stats["samples"] >= 2000, 30, "samples arriving")
            receiver.stop("was stopped by the test")
            assert receiver.wait(WAIT_S)

    with pytest.raises(NetworkError, match="receiver"):
        rec.push(sink, between=between)
        sink.close()
    sink.abort()
    assert receiver.error is None
    r = receiver.result
    assert not r["complete"] and r["path"] == out and 2000 <= r["n_samples"] < rec.n
    _check_archive(out, rec, r["n_samples"])
    with biocompress.open(out) as arc:
        assert any("did not end" in note for note in arc.source.get("notes", []))


def _silent_receiver(stop: threading.Event):
    """A server that completes the handshake and then never acknowledges anything."""
    from biocompress.stream import net_protocol as proto
    from biocompress.stream.net_protocol import NetType

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)

    def serve():
        conns = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            conn.sendall(proto.control(NetType.CHALLENGE, {"protocol": proto.PROTOCOL, "nonce": "00" * 16,
                                                           "auth": False, "max_payload": 1 << 20}))
            conn.recv(4096)  # HELLO
            conn.sendall(proto.control(NetType.WELCOME, {"next": 0, "mac": None}))
            conn.setblocking(False)
        for c in conns:
            c.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def test_a_full_buffer_is_reported_not_dropped(tmp_path, rec):
    """A receiver that never acknowledges: once the resend buffer is full the sender raises
    BackpressureError (and keeps raising it); beside a journal (TeeSink, optional) the network
    copy is dropped with a note and the local archive is complete."""
    stop = threading.Event()
    port, thread = _silent_receiver(stop)
    try:
        sink = NetSink("127.0.0.1", port, rec.description, buffer_frames=8, full_timeout=0.2)
        with pytest.raises(BackpressureError, match="buffer is full"):
            rec.push(sink)
        assert sink.stats["buffer_fill"] == 1.0
        with pytest.raises(BackpressureError):
            sink.flush()
        sink.abort()

        local = tmp_path / "local.bc.h5"
        net = NetSink("127.0.0.1", port, rec.description, buffer_frames=8, full_timeout=0.2)
        tee = TeeSink(JournalSink(local, rec.description), net, optional=[net])
        rec.push(tee)
        tee.close(**rec.digests())
        assert [s for s, _ in tee.dropped] == [net]
    finally:
        stop.set()
        thread.join(10)
    _check_archive(local, rec)
    with biocompress.open(local) as arc:
        assert any("buffer is full" in note for note in arc.source["notes"])


def test_no_receiver_is_a_clear_error(rec):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(NetworkError, match=f"127.0.0.1:{port}.*no receiver answered"):
        NetSink("127.0.0.1", port, rec.description, connect_timeout=0.5)
