"""Runs tests/net_ns (live streams over TCP, LSL re-publishing) inside a network namespace of
their own, loopback only (tests/loopback_namespace.py). Their files are named ``ns_*.py`` so
that the normal collection never picks them up outside it."""

from __future__ import annotations

from loopback_namespace import run_tests_in_namespace


def test_network_stream_tests_pass_in_a_loopback_namespace(tmp_path):
    run_tests_in_namespace("tests/net_ns", tmp_path, "streams over sockets", pytest_args='-o "python_files=ns_*.py"')
