"""Imported by the fork server that a local batch's (and a Dask LocalCluster's) workers are
forked from (``WORKER_PRELOAD`` in :mod:`.executors`): importing it imports what a task uses
and loads the codecs' numba kernels, once, before any worker is forked.

numba loads a cached kernel the first time it runs in a process, and sets up its typing and
target contexts with the first of them: ~0.3 s of CPU in a worker's first task, paid by every
worker at once, on the cores the others need. Run here on a small synthetic EDF file (the
calls a compress task makes: read, encode, verify, the archive read back) and a small float
recording, the kernels (lpc-v4's encoder and decoder, the float and times codecs, the adaptive
coder) are loaded in the fork server, and every worker forked from it starts with them.

Only kernels without ``parallel=True`` run here (biocompress has none): a parallel kernel
starts a threading layer, which a forked child cannot use. Nothing here starts a thread or a
process (reads are decoded in this process), and whatever fails leaves the kernels to load
in the workers, as without this module.
"""

from __future__ import annotations

from ..files import compress, restore  # noqa: F401 - imported for the workers
from . import task


def _edf_bytes(codes, sfreq: int) -> bytes:
    """A plain EDF file of ``codes`` (n_signals, n_samples) int16, one-second records."""
    n_sig, n = codes.shape
    n_records = n // sfreq

    def field(value, width: int) -> bytes:
        return str(value).encode("ascii").ljust(width)[:width]

    def each(value, width: int) -> bytes:
        return field(value, width) * n_sig

    header = (field(0, 8) + field("X X X X", 80) + field("Startdate 01-JAN-2020 X X X", 80) + field("01.01.20", 8)
              + field("00.00.00", 8) + field(256 * (n_sig + 1), 8) + field("", 44) + field(n_records, 8)
              + field(1, 8) + field(n_sig, 4))
    header += b"".join(field(f"EEG{i:03d}", 16) for i in range(n_sig))
    header += each("AgAgCl electrode", 80) + each("uV", 8) + each(-3276.8, 8) + each(3276.7, 8)
    header += each(-32768, 8) + each(32767, 8) + each("", 80) + each(sfreq, 8) + each("", 32)
    records = codes[:, : n_records * sfreq].astype("<i2").reshape(n_sig, n_records, sfreq).transpose(1, 0, 2)
    return header + records.tobytes()


def warm_up_workers() -> None:
    """Compress and check a 4-channel, 20 s synthetic EDF file as a batch task does (several
    frames and two blocks, so that the kernels of every array layout a recording meets load),
    a float recording, and a times codec round trip (XDF timestamps); in a temporary folder, removed after."""
    import tempfile
    import warnings
    from pathlib import Path

    import mne
    import numpy as np

    from ..codecs.float_codes import f64_to_codes
    from ..codecs.pool import reads_here
    from ..codecs.times import TimesCodec
    from ..system.threads import one_blas_thread

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="biocompress-warm-") as tmp, reads_here(), one_blas_thread(), \
            warnings.catch_warnings(), mne.utils.use_log_level("ERROR"):
        warnings.simplefilter("ignore")
        edf = Path(tmp) / "warm.edf"
        edf.write_bytes(_edf_bytes(np.cumsum(rng.integers(-20, 21, (4, 20000)), axis=1), 1000))
        out = Path(tmp) / "warm.bc.h5"
        task.run_task(task.Task("compress", str(edf), (str(edf),), str(out), out.name))
        walk = np.cumsum(rng.standard_normal((4, 10000)), axis=1) * 1e-6
        raw = mne.io.RawArray(walk.astype(np.float32).astype(np.float64), mne.create_info(4, 1000.0, "eeg"))
        compress.compress(raw, Path(tmp) / "float.bc.h5", workers=1)
        times = TimesCodec()
        stamps = 1000.0 + np.arange(600) / 500.0 + rng.normal(0, 1e-4, 600)  # jittered, as an XDF stream's
        times.decode(times.encode(f64_to_codes(stamps)[np.newaxis]))


try:
    warm_up_workers()
except (Exception, KeyboardInterrupt):  # noqa: BLE001, S110 - the fork server must start (the workers then load
    pass  # the kernels themselves); Ctrl-C reaches the batch too, which ends it and so this server
