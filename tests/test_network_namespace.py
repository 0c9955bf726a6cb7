"""Runs tests/network (LSL, sockets) inside its own network namespace: loopback only.

The namespace (``unshare -n``) has no interface but ``lo``, so nothing the tests open can
reach another machine; the LSL configuration written here disables IPv6 and knows no
peer but 127.0.0.1. The run is refused if the namespace shows any other interface, and
bounded in time. Where ``unshare -n`` is not permitted (no root, no user namespaces) the
test is skipped and says so.
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
LSL_CONFIG = """[ports]
IPv6 = disable
[lab]
KnownPeers = {127.0.0.1}
[log]
level = -2
"""
NOT_LOOPBACK_ONLY = 97  # exit status of the namespace's check when it sees another interface
RUN_TIMEOUT_S = 900
LOOPBACK_CHECK = ("import socket, sys; "
                  f"sys.exit(0 if sorted(n for _, n in socket.if_nameindex()) == ['lo'] else {NOT_LOOPBACK_ONLY})")


def _namespace_problem() -> str | None:
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


def test_network_tests_pass_inside_a_loopback_namespace(tmp_path):
    problem = _namespace_problem()
    if problem:
        pytest.skip(f"tests/network (LSL streams over sockets) not run: {problem}")
    config = tmp_path / "lsl_api.cfg"
    config.write_text(LSL_CONFIG)
    script = ('ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo '
              f'&& "$0" -c "{LOOPBACK_CHECK}" '
              f'&& exec "$0" -m pytest tests/network -q -p no:cacheprovider --basetemp "{tmp_path / "run"}"')
    env = {**os.environ, "BIOCOMPRESS_NETNS": "1", "LSLAPICFG": str(config),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    run = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = (run.stdout + run.stderr)[-6000:]
    assert run.returncode != NOT_LOOPBACK_ONLY, "refused: the namespace has interfaces besides loopback"
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"skipped|failed|error", summary), report
