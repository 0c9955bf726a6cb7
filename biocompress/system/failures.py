"""What an exception that ended an operation means: its exit code and a one-line message.

Shared by the command line (one error handler) and the batch runner (one line per
failed file); neither shows a traceback.
"""

from __future__ import annotations

from . import os_errors
from ..errors import BiocompressError, CorruptArchiveError, VerificationError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130


def interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt or was caused by one: a signal handled while a
    numba-compiled function returns surfaces as "SystemError: CPUDispatcher(...) returned a
    result with an exception set", the KeyboardInterrupt as its cause."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ended a command."""
    if interrupted(exc):
        return EXIT_INTERRUPTED, "interrupted; no partial output left"
    if isinstance(exc, (VerificationError, CorruptArchiveError)):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, BiocompressError):
        return EXIT_BAD_INPUT, str(exc)
    described = os_errors.describe(exc)
    if described is not None:
        return EXIT_BAD_INPUT, described
    if isinstance(exc, FileExistsError):  # raised without an errno by a last-moment check
        return EXIT_BAD_INPUT, str(exc)
    if isinstance(exc, MemoryError):
        return EXIT_BAD_INPUT, "not enough memory for this operation"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return EXIT_INTERNAL, (f"internal error: {type(exc).__name__}{': ' + first if first else ''}; "
                           "rerun with --debug for the traceback")
