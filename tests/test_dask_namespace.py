"""Runs tests/dask_ns (Dask clusters, which open sockets) inside a network namespace of their
own, with only the loopback interface up: nothing they do can reach or be reached from the
network. Skips with the reason where ``unshare -n`` is not permitted or dask is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

TIMEOUT_S = 600


def test_dask_tests_in_their_own_network_namespace():
    pytest.importorskip("distributed", reason="dask/distributed not installed (pip install 'biocompress[batch]')")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) to make a network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n not permitted here: {probe.stderr.strip() or probe.returncode}")
    env = dict(os.environ, BIOCOMPRESS_NETNS="1", PYTHONPATH=str(REPO))
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider tests/dask_ns'
    res = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    said = res.stdout + res.stderr
    assert res.returncode == 0, said[-6000:]
    assert " passed" in said and "skipped" not in said.splitlines()[-1], said[-2000:]
