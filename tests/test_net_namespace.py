"""Runs tests/net_ns (live streams over TCP, LSL re-publishing) inside a network namespace of
their own, where nothing but loopback exists: ``unshare -n``, ``lo`` up, an LSL configuration
that disables IPv6 and knows no peer but 127.0.0.1. Their files are named ``ns_*.py`` so that
the normal collection never picks them up outside it. Skipped, saying why, where
``unshare -n`` is not permitted; the run is bounded in time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LSL_CONFIG = "[ports]\nIPv6 = disable\n[lab]\nKnownPeers = {127.0.0.1}\n[log]\nlevel = -2\n"
ONLY_LOOPBACK = 'import socket, sys; sys.exit(0 if [n for _, n in socket.if_nameindex()] == ["lo"] else 97)'
RUN_LIMIT_S = 900


def _unshare_problem() -> str | None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare -n` failed ({exc})"
    if probe.returncode != 0:
        return f"`unshare -n` is not permitted here ({probe.stderr.strip() or probe.returncode})"
    return None


def test_network_stream_tests_pass_in_a_loopback_namespace(tmp_path):
    problem = _unshare_problem()
    if problem:
        pytest.skip(f"tests/net_ns (streams over sockets) not run: {problem}")
    config = tmp_path / "lsl_api.cfg"
    config.write_text(LSL_CONFIG)
    script = ('ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo '
              f"&& \"$0\" -c '{ONLY_LOOPBACK}' "
              '&& exec "$0" -m pytest tests/net_ns -q -p no:cacheprovider -o "python_files=ns_*.py" '
              f'--basetemp "{tmp_path / "run"}"')
    env = {**os.environ, "LSLAPICFG": str(config),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=RUN_LIMIT_S)
    report = (run.stdout + run.stderr)[-8000:]
    assert run.returncode != 97, "refused: the namespace has interfaces besides loopback"
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"skipped|failed|error", summary), report
