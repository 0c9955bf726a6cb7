"""Tests that open sockets (LSL): they run only inside their own network namespace.

tests/test_network_namespace.py starts them there (``unshare -n``, loopback only, an LSL
configuration that knows no peer but 127.0.0.1). This file refuses to go on anywhere
else: a machine with any interface besides loopback, or without that configuration.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REQUIRED_CONFIG = ("KnownPeers = {127.0.0.1}", "IPv6 = disable")


def _refusal() -> str | None:
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        return f"network interfaces besides loopback: {interfaces}"
    config = os.environ.get("LSLAPICFG")
    if not config or not Path(config).is_file():
        return "LSLAPICFG does not name an LSL configuration file"
    text = Path(config).read_text()
    missing = [line for line in REQUIRED_CONFIG if line not in text]
    return f"the LSL configuration lacks {missing}" if missing else None


_REFUSED = _refusal()
if _REFUSED:
    pytest.exit(f"tests/network runs only inside a network namespace with nothing but loopback "
                f"(tests/test_network_namespace.py starts it): {_REFUSED}", returncode=4)
