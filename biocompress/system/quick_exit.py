"""Ending a finished command without the interpreter's teardown.

Freeing every module and object at exit takes 0.2–0.3 s once numba's LLVM, SciPy and MNE
are loaded: more than ``biocompress info`` spends on its work, a tenth of a whole
``compress``. A command that has ended ends its process with ``os._exit`` once everything
a normal exit does that has an effect outside the process is done: the read pool's workers
stopped, the atexit handlers run (temporary directories, logging, multiprocessing's
children), stdout and stderr flushed. Where another thread still runs, or a stream
cannot be flushed, it returns and the caller exits the ordinary way.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_now(code) -> None:
    """End the process with ``code`` (an int or None, as ``SystemExit.code``); return
    without exiting where a quick exit is not safe."""
    if code is not None and not isinstance(code, int):
        return  # a message to print: the ordinary exit prints it
    pool = sys.modules.get("biocompress.codecs.pool")
    if pool is not None:
        pool.close_read_pool()
    if threading.active_count() > 1:
        return
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: the ordinary exit reports it
        return
    os._exit(code or 0)
