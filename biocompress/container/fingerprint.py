"""Fingerprint of a lossy archive's decoded samples, checked within a tolerance.

A lossy decoder computes floats (the autoencoder runs in float32), and another CPU
may round them differently in the last places, so the SHA-256 of the decoded samples
only holds on machines that round alike. The fingerprint holds, per time window
``[j·window, (j+1)·window)`` and channel, the mean and the standard deviation of the
decoded values (float64). ``verify`` recomputes it and accepts deviations up to

    tolerance[c] = REL_TOLERANCE · scale[c] + FLOAT_FLOOR · rms[c] + slack[c]

where ``scale[c]`` is the RMS spread of the channels measured in ``c``'s unit (the
scale the autoencoder standardizes them by), ``rms[c]`` the RMS of ``c``'s values
(offset included: float64 rounding of the offset), and ``slack[c]`` one integer code
for near-lossless channels, whose codes may move by one on another machine by design
(docs/FORMAT.md §8.8). Float rounding moves the statistics by ~1e-7 of the scale; a
decoder that computes anything else (other weights, another transform) moves them by
far more than 1e-5.
"""

from __future__ import annotations

import numpy as np

from .integrity import damage_is_corruption
from ..errors import CorruptArchiveError

DATASET = "fingerprint"  # in /fidelity
REL_TOLERANCE = 1e-5
FLOAT_FLOOR = 1e-12
READ_SAMPLES = 16384  # verify decodes at most this many samples at once, whatever the window


class WindowStats:
    """Mean and standard deviation of each channel over a window fed in pieces (the pieces'
    means and squared deviations combined, so no large offset cancels the spread)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, y: np.ndarray) -> None:
        y = np.asarray(y, np.float64)
        k = y.shape[1]
        if k == 0:
            return
        mean = y.mean(axis=1)
        m2 = ((y - mean[:, None]) ** 2).sum(axis=1)
        if self.n == 0:
            self.n, self.mean, self.m2 = k, mean, m2
            return
        n = self.n + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / n)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * k / n)
        self.n = n

    def result(self) -> np.ndarray:
        """(n_channels, 2): mean and standard deviation."""
        return np.stack([self.mean, np.sqrt(self.m2 / self.n)], axis=-1)


def window_stats(y: np.ndarray) -> np.ndarray:
    """(n_channels, 2): mean and standard deviation of each row of a window of samples."""
    stats = WindowStats()
    stats.add(y)
    return stats.result()


def write(group, rows: list[np.ndarray], window: int) -> None:
    """Store the window statistics (each (n_channels, 2), in time order) in ``group``."""
    ds = group.create_dataset(DATASET, data=np.asarray(rows, "<f8"))
    ds.attrs["window"] = np.int64(window)


def read(arc) -> tuple[np.ndarray, int] | None:
    """The stored (fingerprint, window) of an open archive, or None in an archive written
    without one; its declared shape and size are checked before anything is read."""
    name = f"fidelity/{DATASET}"
    path, n_samples, n_channels = arc.path, arc.n_samples, arc.n_channels
    with damage_is_corruption(str(path), f"/{name}"):
        if name not in arc.h5:
            return None
        window = int(arc.parts.attrs(name)["window"])
        if window < 1:
            raise CorruptArchiveError(f"{path}: /fidelity/{DATASET} window {window} is not positive")
        expected = (-(-n_samples // window), n_channels, 2)
        fp = arc.parts.dataset(name, 8 * 2 * n_channels * expected[0])
    if fp.shape != expected or fp.dtype != np.float64:
        raise CorruptArchiveError(f"{path}: /fidelity/{DATASET} is {fp.dtype}{fp.shape}, expected float64{expected}")
    if not np.isfinite(fp).all():
        raise CorruptArchiveError(f"{path}: /fidelity/{DATASET} holds non-finite values")
    return fp, window


def tolerances(fp: np.ndarray, windows: np.ndarray, units, slack: np.ndarray) -> np.ndarray:
    """Per channel, the largest deviation accepted (in the channel's unit).

    ``fp``: the stored fingerprint; ``windows``: samples in each window; ``units``: a unit
    label per channel; ``slack``: per channel, the change of one code where codes may move.
    """
    w = np.asarray(windows, np.float64)[:, None] / max(float(np.sum(windows)), 1.0)
    spread2 = (w * fp[:, :, 1] ** 2).sum(axis=0)  # pooled within-window variance
    rms = np.sqrt((w * (fp[:, :, 0] ** 2 + fp[:, :, 1] ** 2)).sum(axis=0))
    units = np.asarray(units)
    scale = np.empty(units.size)
    for u in np.unique(units):
        scale[units == u] = np.sqrt(spread2[units == u].mean())
    return REL_TOLERANCE * scale + FLOAT_FLOOR * rms + np.asarray(slack, np.float64)


def window_sizes(n_samples: int, window: int) -> np.ndarray:
    starts = np.arange(0, n_samples, window)
    return np.minimum(starts + window, n_samples) - starts
