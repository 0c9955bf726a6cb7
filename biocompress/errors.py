"""Exceptions shared by every layer; the CLI maps them to exit codes.

* ``BadInputError`` (exit 2): an input file or argument that cannot be used.
* ``WriteError`` (exit 2): an output that cannot be written (disk full, permission
  denied, read-only file system, file size limit, an output refused as unsafe).
* ``CorruptArchiveError`` (exit 1): an archive damaged or not following the format.
* ``VerificationError`` (exit 1): decoded data differ from what was meant to be stored.
* ``StreamError`` (exit 2): a live stream that cannot be recorded further (lost, or
  restarted with other channels or rate); what was recorded before is kept.
* ``NetworkError`` (exit 2): a network peer that cannot be reached, refuses the connection
  or breaks the protocol; ``BackpressureError`` when a sender's resend buffer is full.
"""

from __future__ import annotations


class BiocompressError(Exception):
    """Base class of every error biocompress raises on purpose."""


class _PathProblem(BiocompressError):
    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")

    def __reduce__(self):  # crosses process boundaries (worker pools) intact
        return type(self), (self.path, self.problem)


class BadInputError(_PathProblem, ValueError):
    """An input file or argument that cannot be used (CLI exit code 2)."""


class WriteError(_PathProblem):
    """An output that cannot or must not be written, with the path and what to do (CLI exit code 2)."""


class CorruptArchiveError(BiocompressError):
    """An archive whose bytes do not match their checksums or the format (CLI exit code 1)."""


class VerificationError(BiocompressError):
    """Decoded data differ from what was meant to be stored (CLI exit code 1)."""


class StreamError(BiocompressError):
    """A live stream that cannot be recorded further: lost, or restarted with another channel
    count, rate or format. ``samples``: how many were recorded before (CLI exit code 2)."""

    def __init__(self, message: str, samples: int = 0):
        self.samples = samples
        super().__init__(message)

    def __reduce__(self):
        return type(self), (str(self), self.samples)


class NetworkError(BiocompressError):
    """A network peer that cannot be reached, refuses us or breaks the protocol (CLI exit code 2)."""


class BackpressureError(NetworkError):
    """A network sender's buffer of unacknowledged frames is full: the receiver is gone or slower
    than the stream, and the sender will not drop frames silently (CLI exit code 2)."""
