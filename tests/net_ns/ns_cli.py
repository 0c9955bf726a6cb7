"""`biocompress receive` as a user runs it (loopback, in a network namespace)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import net_helpers
from net_helpers import REPO, Recording

import biocompress
from biocompress.container.journal import is_journal
from biocompress.errors import NetworkError
from biocompress.stream.net import NetSink, send_stream

net_helpers.require_namespace()

SECRET = "0123456789abcdef0123456789abcdef\n"


@pytest.fixture(scope="module")
def rec():
    return Recording(seconds=10)


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "biocompress.cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _listening(proc) -> int:
    """The port the receiver printed; the rest of its output is gathered on a thread."""
    line = proc.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line + proc.stderr.read()
    return int(line.rsplit(":", 1)[1])


def _finish(proc, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_receive_writes_the_archive(tmp_path, rec):
    out, secret = tmp_path / "out.bc.h5", tmp_path / "secret"
    secret.write_text(SECRET)
    proc = _cli("receive", "--listen", "127.0.0.1:0", "-o", out, "--secret-file", secret)
    port = _listening(proc)
    sink = send_stream(f"127.0.0.1:{port}", rec.description, secret_file=secret)
    rec.push(sink)
    sink.close(**rec.digests())
    code, stdout, stderr = _finish(proc)
    assert code == 0, stderr
    assert f"wrote {out}: {rec.n} samples (10.0 s)" in stdout and "the stream ended cleanly" in stdout
    with biocompress.open(out) as arc:
        assert arc.verify()["ok"] and np.array_equal(arc.read().view(np.int64), rec.x.view(np.int64))


def test_sigterm_stops_and_finalizes(tmp_path, rec):
    out = tmp_path / "out.bc.h5"
    proc = _cli("receive", "--listen", "127.0.0.1:0", "-o", out)
    sink = NetSink("127.0.0.1", _listening(proc), rec.description)
    pushed = rec.push(sink, stop=3000, flush_every=1)  # flushed: every pushed sample is in a block
    assert sink.wait_acknowledged(60)
    proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = _finish(proc)
    assert code == 0, stderr
    assert f"wrote {out}: {pushed} samples" in stdout and "interrupted" in stdout
    with pytest.raises(NetworkError, match="receiver"):
        net_helpers.wait_until(lambda: sink.flush() and False, 30, "the sender learning the receiver stopped")
    sink.abort()
    assert not is_journal(out)
    with biocompress.open(out) as arc:
        assert arc.n_samples == pushed and arc.verify()["ok"]
        assert np.array_equal(arc.read().view(np.int64), rec.x[:, :pushed].view(np.int64))


@pytest.mark.parametrize("args, message", [
    (["--listen", "127.0.0.1:0"], "nothing to do with the stream"),
    (["--listen", "10.1.2.3:4000", "-o", "{tmp}/x.bc.h5"], "needs a shared secret"),
    (["--listen", "127.0.0.1:0", "-o", "{tmp}/x.bc.h5", "--secret-file", "{tmp}/short"], "at least 16"),
    (["--listen", "127.0.0.1:0", "-o", "{tmp}/x.bc.h5", "--secret-file", "{tmp}/missing"], "not found"),
    (["--listen", "127.0.0.1", "-o", "{tmp}/x.bc.h5"], "is not HOST:PORT"),
    (["--listen", "127.0.0.1:{busy}", "-o", "{tmp}/x.bc.h5"], "cannot listen on 127.0.0.1"),
    (["--listen", "127.0.0.1:0", "-o", "{tmp}/x.bc.h5", "--duration", "0.5"], "no stream arrived"),
    (["--listen", "127.0.0.1:0", "-o", "{tmp}/x.edf"], "extension"),
])
def test_bad_usage_is_a_message_and_exit_2(tmp_path, args, message):
    (tmp_path / "short").write_text("tooshort")
    busy = socket.create_server(("127.0.0.1", 0))
    try:
        args = [a.format(tmp=tmp_path, busy=busy.getsockname()[1]) for a in args]
        proc = _cli("receive", *args)
        code, stdout, stderr = _finish(proc)
    finally:
        busy.close()
    assert code == 2 and message in stderr and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short"]  # nothing written


def test_no_thread_outlives_a_receiver_or_its_sender(tmp_path, rec):
    """A Python program's receiver: after the stream, no thread of it is left running."""
    from biocompress.stream.net_receive import Receiver

    before = set(threading.enumerate())
    with Receiver(output=tmp_path / "out.bc.h5") as receiver:
        sink = NetSink(*receiver.address, rec.description)
        rec.push(sink, stop=1000)
        sink.close()
        assert receiver.wait(60)
    net_helpers.wait_until(lambda: set(threading.enumerate()) <= before, 10, "the threads ending")


def test_stream_send_to_receive_end_to_end(tmp_path):
    """replay --counter | stream -o local --send | receive -o received: both archives are the same
    archive (dataset for dataset), the counter unbroken; the sender says everything arrived."""
    import h5py

    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    local, received = tmp_path / "local.bc.h5", tmp_path / "received.bc.h5"
    receiver = _cli("receive", "--listen", "127.0.0.1:0", "-o", received, "--secret-file", secret)
    port = _listening(receiver)
    player = _cli("replay", REPO / "data_samples" / "Subject00_2.edf", "--name", "bc-net", "--counter",
                  "--wait", "30")
    try:
        sender = _cli("stream", "--lsl", "bc-net", "-o", local, "--send", f"127.0.0.1:{port}", "--secret-file",
                      secret, "--duration", "3", "--timeout", "20")
        code, stdout, stderr = _finish(sender)
    finally:
        player.send_signal(signal.SIGTERM)
        player.communicate(timeout=30)
    assert code == 0, stderr
    assert "lost 0, duplicated 0" in stdout and f"sent to 127.0.0.1:{port}: " in stdout, stdout
    assert "everything acknowledged" in stdout
    code, stdout, stderr = _finish(receiver)
    assert code == 0 and "the stream ended cleanly" in stdout, stderr

    def contents(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, (dict(obj.attrs), obj[()].tobytes())
                                                           if isinstance(obj, h5py.Dataset) else dict(obj.attrs)))
        return out

    assert repr(contents(local)) == repr(contents(received))
    with biocompress.open(received) as arc:
        assert arc.verify()["ok"] and arc.n_samples == 1500
        assert np.array_equal(arc.read()[-1], np.arange(arc.n_samples))  # the counter
