"""EDF/BDF signals at their own sampling rates.

MNE upsamples every signal of a mixed-rate EDF/BDF to the highest rate, in
float64, with ``mne.filter.resample(..., npad=0)`` over the whole read, and only
then multiplies by ``cals``. We store such signals at their native rate as the
digital codes the file holds, and rebuild MNE's view from them by running the
same resampling call on the same float64 input (:func:`mne_view`).
"""

from __future__ import annotations

import numpy as np
from mne.filter import resample

from .scaling import Recipe


def samples_per_record(raw) -> np.ndarray | None:
    """Samples per data record of every MNE channel, or None if ``raw`` is not EDF/BDF."""
    extras = raw._raw_extras[0] if raw._raw_extras else None
    if type(raw).__name__ not in ("RawEDF", "RawBDF") or not isinstance(extras, dict):
        return None
    if not {"n_samps", "sel", "max_samp", "data_offset", "dtype_byte"} <= extras.keys():
        return None
    return np.asarray(extras["n_samps"])[np.asarray(extras["sel"])].astype(np.int64)


def native_channels(raw) -> np.ndarray:
    """Channels MNE resamples (fewer samples per record than the fastest signal), stim excluded."""
    per_record = samples_per_record(raw)
    if per_record is None:
        return np.empty(0, np.int64)
    extras = raw._raw_extras[0]
    slow = per_record != int(extras["max_samp"])
    slow[np.asarray(extras.get("stim_channel_idxs", []), dtype=np.int64)] = False
    return np.flatnonzero(slow)


def read_native_codes(raw, ch: int) -> np.ndarray:
    """Digital codes of channel ``ch`` (MNE index) at its own rate, as int64."""
    extras = raw._raw_extras[0]
    n_samps = np.asarray(extras["n_samps"], np.int64)
    width = int(extras["dtype_byte"])
    signal = int(np.asarray(extras["sel"])[ch])
    record = int(n_samps.sum()) * width
    first = int(n_samps[:signal].sum()) * width
    n_records = int(raw.n_times // int(extras["max_samp"]))
    data = np.memmap(raw.filenames[0], np.uint8, mode="r", offset=int(extras["data_offset"]),
                     shape=(n_records, record))
    raw_bytes = np.asarray(data[:, first : first + int(n_samps[signal]) * width]).reshape(-1, width)
    if width == 2:
        return raw_bytes.copy().view("<i2").ravel().astype(np.int64)
    v = raw_bytes.astype(np.int64)
    v = v[:, 0] | (v[:, 1] << 8) | (v[:, 2] << 16)
    return np.where(v >= 1 << 23, v - (1 << 24), v)


def mne_view(recipe: Recipe, codes: np.ndarray, ch: int, n_times: int) -> np.ndarray:
    """MNE's float64 samples of a resampled channel from its native codes.

    All recipe steps but the last (``cals``) come before resampling, as in MNE's reader.
    """
    head = Recipe(recipe.steps[:-1], recipe.params)
    x = head.forward(np.asarray(codes)[np.newaxis], [ch])[0]
    y = resample(x, n_times, x.size, npad=0, axis=-1) if x.size != n_times else x
    return Recipe(recipe.steps[-1:], recipe.params).forward(y[np.newaxis], [ch])[0]
