"""Runs tests/network (LSL, sockets) inside its own network namespace, loopback only
(tests/loopback_namespace.py)."""

from __future__ import annotations

from loopback_namespace import run_tests_in_namespace


def test_network_tests_pass_inside_a_loopback_namespace(tmp_path):
    run_tests_in_namespace("tests/network", tmp_path, "LSL streams over sockets")
