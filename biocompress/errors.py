"""Exceptions shared by every layer; the CLI maps them to exit codes."""

from __future__ import annotations


class BiocompressError(Exception):
    """Base class of every error biocompress raises on purpose."""


class BadInputError(BiocompressError, ValueError):
    """An input file or argument that cannot be used (CLI exit code 2)."""

    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")


class CorruptArchiveError(BiocompressError):
    """An archive whose bytes do not match their checksums or the format."""


class VerificationError(BiocompressError):
    """Decoded data differ from what was meant to be stored (CLI exit code 1)."""
