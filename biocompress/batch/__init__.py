"""Batch conversion of whole datasets: many files, resumable, parallel, BIDS-aware.

:func:`run_batch` walks a folder, converts every recording (once per recording for
multi-file formats) into a mirrored tree of archives, copies the other files, and keeps
a manifest in the destination so that a second run finishes what the first left.
Tasks run on a local process pool or on a Dask cluster (:mod:`.executors`).
"""

from .runner import Reporter, Summary, run_batch

__all__ = ["Reporter", "Summary", "run_batch"]
