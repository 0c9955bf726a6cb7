"""The wire protocol of a live stream over TCP (docs/FORMAT.md §12).

Everything on the wire is a frame (:mod:`biocompress.container.frames`): the journal's
frame types carry the stream, and types 16–21 run the connection::

    receiver → CHALLENGE  {"protocol", "nonce", "auth", "max_payload"}
    sender   → HELLO      {"protocol", "session", "nonce", "mac"}
    receiver → WELCOME    {"next", "mac"}            (or REFUSE {"reason"} and it closes)
    sender   → the stream's frames from number ``next`` on: HEADER (0), CODEC, BLOCK, …, END
    receiver → ACK        header ``seq`` = how many frames it holds, contiguous from 0
    either   → BYE        {"reason"}: this side ends the session

With a shared secret both sides prove they know it (HMAC-SHA256 over both nonces and the
session): the receiver refuses a sender that cannot, and a sender refuses a receiver that
cannot. The secret authenticates the peers; it does not encrypt the stream nor protect it
from someone on the path (use a VPN or an SSH tunnel for that).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import secrets
from enum import IntEnum
from pathlib import Path

from ..container import frames
from ..container.frames import Frame, FrameError, FrameType
from ..errors import BadInputError, NetworkError

PROTOCOL = 1
MAX_PAYLOAD = 64 << 20  # the receiver's default limit on one frame's payload
CONTROL_PAYLOAD = 64 << 10  # the limit on handshake and control frames (nothing is allocated past it)
NONCE_BYTES = 16
MIN_SECRET_BYTES = 16
HANDSHAKE_TIMEOUT = 10.0  # seconds a peer has for each handshake step


class NetType(IntEnum):
    CHALLENGE = 16
    HELLO = 17
    WELCOME = 18
    ACK = 19
    BYE = 20
    REFUSE = 21


# Frame types each side may send.
STREAM_TYPES = frozenset(int(k) for k in FrameType)
FROM_SENDER = STREAM_TYPES | {NetType.HELLO, NetType.BYE}
FROM_RECEIVER = frozenset({NetType.CHALLENGE, NetType.WELCOME, NetType.ACK, NetType.BYE, NetType.REFUSE})


class PeerClosed(ConnectionError):
    """The peer closed the connection (between frames, or in the middle of one)."""


async def read_frame(reader: asyncio.StreamReader, max_payload: int, kinds) -> Frame:
    """The next frame: its declared length checked against ``max_payload`` and its type
    against ``kinds`` before the payload is read; its CRC after."""
    try:
        raw = await reader.readexactly(frames.HEAD.size)
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed("connection closed" + (" within a frame header" if exc.partial else "")) from None
    head = frames.parse_header(raw, max_payload)
    if head.kind not in kinds:
        raise FrameError(f"unexpected frame type {head.kind}")
    try:
        payload = await reader.readexactly(head.length) if head.length else b""
    except asyncio.IncompleteReadError:
        raise PeerClosed("connection closed within a frame") from None
    return head.check(payload)


def control(kind: NetType, obj: dict | None = None, seq: int = 0) -> bytes:
    """A control frame's bytes (JSON payload, or none)."""
    return frames.encode(kind, seq, b"" if obj is None else frames.json_payload(obj))


def parse_control(frame: Frame, what: str) -> dict:
    try:
        return frames.parse_json(frame, what)
    except Exception as exc:  # noqa: BLE001 - any malformed payload is a protocol error
        raise FrameError(str(exc)) from None


# --- handshake messages -------------------------------------------------------------
def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def new_session() -> str:
    return secrets.token_hex(16)


def _hex(value, size: int, what: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value):
        raise FrameError(f"{what} is not {size} bytes of hexadecimal")
    return bytes.fromhex(value)


def _integer(value, what: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or value >= 1 << 63:
        raise FrameError(f"{what} is not an integer ≥ {low}")
    return value


def parse_challenge(frame: Frame) -> dict:
    d = parse_control(frame, "CHALLENGE")
    if d.get("protocol") != PROTOCOL:
        raise NetworkError(f"the receiver speaks protocol {d.get('protocol')!r}, this sender {PROTOCOL}")
    return {"nonce": _hex(d.get("nonce"), NONCE_BYTES, "nonce"), "auth": d.get("auth") is True,
            "max_payload": _integer(d.get("max_payload"), "max_payload", 1)}


def parse_hello(frame: Frame) -> dict:
    """HELLO's fields; ``protocol`` is returned as given (the receiver refuses another)."""
    d = parse_control(frame, "HELLO")
    mac = d.get("mac")
    return {"protocol": d.get("protocol"), "session": _hex(d.get("session"), 16, "session").hex(),
            "nonce": _hex(d.get("nonce"), NONCE_BYTES, "nonce"),
            "mac": None if mac is None else _hex(mac, 32, "mac")}


def parse_welcome(frame: Frame) -> dict:
    d = parse_control(frame, "WELCOME")
    mac = d.get("mac")
    return {"next": _integer(d.get("next"), "next"), "mac": None if mac is None else _hex(mac, 32, "mac")}


def reason_of(frame: Frame) -> str:
    """The reason a REFUSE or BYE gives (printable, bounded)."""
    try:
        reason = parse_control(frame, "REFUSE/BYE").get("reason")
    except FrameError:
        reason = None
    if not isinstance(reason, str):
        return "no reason given"
    return "".join(c if c.isprintable() else "?" for c in reason)[:300]


def hello_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes, session: str) -> bytes:
    """The sender's proof that it knows the secret."""
    msg = b"biocompress-net hello\0" + server_nonce + client_nonce + bytes.fromhex(session)
    return hmac.new(secret, msg, hashlib.sha256).digest()


def welcome_mac(secret: bytes, server_nonce: bytes, client_nonce: bytes, session: str, next_seq: int) -> bytes:
    """The receiver's proof that it knows the secret (binding the frame number it resumes at)."""
    msg = (b"biocompress-net welcome\0" + client_nonce + server_nonce + bytes.fromhex(session)
           + next_seq.to_bytes(8, "little"))
    return hmac.new(secret, msg, hashlib.sha256).digest()


def same_mac(a: bytes | None, b: bytes) -> bool:
    return a is not None and hmac.compare_digest(a, b)


# --- command-line values ------------------------------------------------------------
def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\s\[\]]+):(\d{1,5})", text.strip())
    if not m:
        raise BadInputError(None, f"{what} {text!r} is not HOST:PORT")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if not 0 <= int(port) <= 65535:
        raise BadInputError(None, f"{what} {text!r}: port {port} is not 0–65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret(path) -> bytes:
    """A shared secret from a file (surrounding whitespace ignored), at least 16 bytes."""
    path = Path(path)
    try:
        if not path.is_file():
            raise BadInputError(path, "secret file not found (or not a regular file)")
        data = path.read_bytes()[: 1 << 16].strip()
    except OSError as exc:
        raise BadInputError(path, f"cannot read the secret file: {exc.strerror or exc}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise BadInputError(path, f"the secret is {len(data)} bytes; use at least {MIN_SECRET_BYTES} "
                            "(e.g. `openssl rand -hex 32 > FILE`)")
    return data
