"""Kill campaign of `biocompress stream` (issue 11): SIGKILL at random moments of a live recording.

A replayed recording (64 channels at 1 kHz with a counter channel, float32) is published on
LSL; `biocompress stream --lsl NAME -o run_K.bc.h5` records it and is killed with SIGKILL
after a random 3–20 s. Then `biocompress recover` finalizes what the journal holds and
`biocompress verify` checks it. Each run passes when the archive opens and verifies, its
counter channel runs 0, 1, 2 … without a gap or a repeat, and it holds every sample pushed
up to one second before the kill (the journal is fsynced every half second).

It opens sockets and LSL streams, so it runs only inside a network namespace holding nothing
but loopback, with the LSL configuration the tests use. From the repository root::

    printf '[ports]\\nIPv6 = disable\\n[lab]\\nKnownPeers = {127.0.0.1}\\n[log]\\nlevel = -2\\n' > /tmp/lsl_api.cfg
    LSLAPICFG=/tmp/lsl_api.cfg PYTHONPATH=$PWD unshare -n sh -c \\
      'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo \\
       && exec python pipelines/kill_stream.py --runs 10'
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mne  # noqa: E402
import numpy as np  # noqa: E402

RATE, CHANNELS = 1000.0, 64
SYNC_S = 1.0  # what a kill may cost at most (the journal fsyncs every 0.5 s; a block fills in 50 ms)


def _loopback_only() -> bool:
    return sorted(n for _, n in socket.if_nameindex()) == ["lo"]


def _cli(*args, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "biocompress.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_run(k: int, folder: Path, rng: random.Random) -> dict:
    from biocompress.stream.replay import Replay

    mne.set_log_level("ERROR")
    x = np.random.default_rng(k).normal(0, 20e-6, (CHANNELS, int(RATE * 30)))
    raw = mne.io.RawArray(x, mne.create_info([f"C{i:02d}" for i in range(CHANNELS)], RATE, "eeg"))
    name = f"kill{k}"
    pushed = []  # (monotonic time, samples pushed so far)
    replay = Replay(raw, name, chunk_size=10, loop=True, counter=True, markers=False)
    stop = threading.Event()
    publisher = threading.Thread(target=replay.run, args=(stop,), daemon=True,
                                 kwargs={"wait_for_consumer": 30,
                                         "on_chunk": lambda *a: pushed.append((time.monotonic(), replay.pushed))})
    publisher.start()
    out = folder / f"run_{k}.bc.h5"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "biocompress.cli", "stream", "--lsl", name, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not pushed and time.monotonic() < deadline:
        time.sleep(0.05)
    after = rng.uniform(3.0, 20.0)
    time.sleep(after)
    killed_at = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    publisher.join(5)
    before = [n for t, n in pushed if t <= killed_at - SYNC_S]
    must_have = before[-1] if before else 0
    row = {"run": k, "killed_after_s": round(after, 2), "pushed_at_kill": next((n for t, n in reversed(pushed)
                                                                                  if t <= killed_at), 0),
           "must_have": must_have}
    rec = _cli("recover", str(out))
    row["recover_exit"] = rec.returncode
    ver = _cli("verify", str(out))
    row["verify_exit"] = ver.returncode
    try:
        import biocompress

        with biocompress.open(out) as arc:
            names = list(arc.ch_names)
            counter = arc.read(picks=[names.index("counter")])[0] if "counter" in names else None
            row["samples"] = int(arc.n_samples)
        if counter is not None:
            steps = np.diff(np.rint(counter).astype(np.int64))
            row["counter_ok"] = bool(counter.size == 0 or (np.rint(counter[0]) == 0 and (steps == 1).all()))
        else:
            row["counter_ok"] = False
    except Exception as exc:  # noqa: BLE001 - a run that fails is reported, the campaign goes on
        row["samples"], row["counter_ok"], row["error"] = 0, False, f"{type(exc).__name__}: {exc}"
    row["lost_s"] = round(max(0, row["pushed_at_kill"] - row["samples"]) / RATE, 3)
    row["ok"] = (row["recover_exit"] == 0 and row["verify_exit"] == 0 and row["counter_ok"]
                 and row["samples"] >= must_have)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    if not _loopback_only():
        print("refused: run this inside a network namespace holding nothing but loopback (see the docstring)")
        return 2
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kill_stream_") as tmp:
        for k in range(a.runs):
            row = one_run(k, Path(tmp), rng)
            rows.append(row)
            print(f"run {k + 1}: SIGKILL after {row['killed_after_s']} s: {row['samples']} samples kept of "
                  f"{row['pushed_at_kill']} pushed (lost {row['lost_s']} s), recover {row['recover_exit']}, "
                  f"verify {row['verify_exit']}, counter {'ok' if row['counter_ok'] else 'BROKEN'}: "
                  f"{'OK' if row['ok'] else 'FAIL'}" + (f" ({row['error']})" if row.get("error") else ""), flush=True)
    ok = sum(r["ok"] for r in rows)
    lost = [r["lost_s"] for r in rows]
    print(f"\n{ok}/{len(rows)} runs OK (seed {seed}); samples lost at the kill: at most {max(lost):.3f} s "
          f"(median {float(np.median(lost)):.3f} s); target: every archive verifies, at most the last second lost")
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
