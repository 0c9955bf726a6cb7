"""Runs tests/dask_ns (Dask clusters, which open sockets) inside a network namespace of their
own, loopback only (tests/loopback_namespace.py). Skips with the reason where dask is absent."""

from __future__ import annotations

import pytest

from loopback_namespace import run_tests_in_namespace


def test_dask_tests_in_their_own_network_namespace(tmp_path):
    pytest.importorskip("distributed", reason="dask/distributed not installed (pip install 'biocompress[batch]')")
    run_tests_in_namespace("tests/dask_ns", tmp_path, "Dask clusters", timeout_s=600)
