"""Running a folder of tests inside a network namespace of its own, where nothing but the
loopback interface exists (``unshare -n``): nothing the tests open can reach another
machine. The LSL configuration written for them disables IPv6 and knows no peer but
127.0.0.1; the run is refused if the namespace shows any other interface, and bounded in
time. A helper module, not a test file."""

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
NOT_LOOPBACK_ONLY = 97  # exit status of the namespace's check when it sees another interface
LOOPBACK_CHECK = ("import socket, sys; "
                  f"sys.exit(0 if sorted(n for _, n in socket.if_nameindex()) == ['lo'] else {NOT_LOOPBACK_ONLY})")


def namespace_problem() -> str | None:
    """Why ``unshare -n`` cannot be used here, or None."""
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


def run_tests_in_namespace(folder: str, tmp_path: Path, what: str, *, pytest_args: str = "",
                           timeout_s: float = 900) -> None:
    """Run ``pytest tests/<folder>`` in a loopback-only namespace and assert that every test
    passed (skip, saying ``what`` was not run, where no namespace can be made)."""
    problem = namespace_problem()
    if problem:
        pytest.skip(f"{folder} ({what}) not run: {problem}")
    config = tmp_path / "lsl_api.cfg"
    config.write_text(LSL_CONFIG)
    script = ('ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo '
              f'&& "$0" -c "{LOOPBACK_CHECK}" '
              f'&& exec "$0" -m pytest {folder} -q -p no:cacheprovider {pytest_args} --basetemp "{tmp_path / "run"}"')
    env = {**os.environ, "BIOCOMPRESS_NETNS": "1", "LSLAPICFG": str(config),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout_s)
    report = (run.stdout + run.stderr)[-8000:]
    assert run.returncode != NOT_LOOPBACK_ONLY, "refused: the namespace has interfaces besides loopback"
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"skipped|failed|error", summary), report
