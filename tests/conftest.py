"""Shared fixtures and helpers for the biocompress test suite.

* ``samples_dir``: the bundled ``data_samples/`` folder (always present).
* ``corpus_dir``: the real corpus (``$BIOCOMPRESS_CORPUS`` or ``../shared/corpus``
  beside the repository); tests that use it skip cleanly when it is absent.
* ``synthetic_codes`` / ``synthetic_raw``: deterministic integer "EEG" whose first
  channel is a counter (``np.arange``), so a lost, duplicated or reordered sample
  shows up as a broken counter.
* ``bitwise_equal``: float64 equality of the bit patterns (NaN payloads, -0.0).
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path

import mne
import numpy as np
import pytest

from biocompress.files.demo import recordings_in

REPO = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO / "data_samples"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

mne.set_log_level("ERROR")

# tests/network opens sockets (LSL): it is collected only inside a network namespace with
# nothing but loopback, where tests/loopback_namespace.py runs it (BIOCOMPRESS_NETNS=1)
collect_ignore = [] if os.environ.get("BIOCOMPRESS_NETNS") == "1" else ["network"]


# --- locations ------------------------------------------------------------------
def corpus_path() -> Path:
    """Where the real corpus is expected: $BIOCOMPRESS_CORPUS, else ../shared/corpus."""
    env = os.environ.get("BIOCOMPRESS_CORPUS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "corpus"


def sample_recordings() -> list[Path]:
    """Recordings of data_samples/, with the same suffix rules as ``biocompress demo``."""
    return recordings_in(SAMPLES_DIR)


def corpus_recordings() -> list[Path]:
    """Recordings found by walking the corpus (empty when the corpus is absent)."""
    root = corpus_path()
    return recordings_in(root) if root.is_dir() else []


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    assert SAMPLES_DIR.is_dir(), f"bundled samples missing at {SAMPLES_DIR}"
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    root = corpus_path()
    if not root.is_dir():
        pytest.skip(f"corpus not present at {root}: corpus round-trip tests skipped")
    return root


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES_DIR


# --- comparisons ------------------------------------------------------------------
def bitwise_equal(a, b) -> bool:
    """True when two float64 arrays have the same shape and identical bit patterns."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.float64 or b.dtype != np.float64:
        raise TypeError(f"bitwise_equal compares float64 arrays, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(np.ascontiguousarray(a).view(np.int64), np.ascontiguousarray(b).view(np.int64)))


def assert_bitwise_equal(a, b, what: str = "samples") -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    if not bitwise_equal(a, b):
        bad = np.argwhere(a.view(np.int64) != b.view(np.int64))
        ch, t = bad[0][0], bad[0][-1]
        raise AssertionError(f"{what}: {len(bad)} samples differ, first at channel {ch}, sample {t}: "
                             f"{a[ch, t]!r} != {b[ch, t]!r}")


def assert_same_annotations(a: mne.Annotations, b: mne.Annotations) -> None:
    assert len(a) == len(b), f"{len(a)} != {len(b)} annotations"
    np.testing.assert_array_equal(a.onset, b.onset, err_msg="annotation onsets")
    np.testing.assert_array_equal(a.duration, b.duration, err_msg="annotation durations")
    assert list(a.description) == list(b.description)
    assert a.orig_time == b.orig_time
    assert [tuple(c) for c in a.ch_names] == [tuple(c) for c in b.ch_names]


# --- crafted archives -------------------------------------------------------------
@contextmanager
def crafted(path):
    """Open an archive's metadata for changes and seal it again afterwards, as a forger would:
    its integrity data then agree with the changes, and only the reader's own checks of sizes
    and consistency stand between them and the user. Format 5: the packed metadata (payload
    segments are not in it: change those with h5py on the file itself)."""
    import h5py

    from biocompress.container import integrity, packed

    with h5py.File(path, "r") as f:
        is_packed = "meta" in f and int(f.attrs.get("format_version", 0)) >= 5
    if is_packed:
        with packed.editing(path) as image:
            yield image
        return
    with h5py.File(path, "r+") as f:
        yield f
    with h5py.File(path, "r+") as f:
        integrity.seal(f, Path(path).stat().st_size)


# --- temporary files --------------------------------------------------------------
def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a failed/finished command may have left behind."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.name.startswith(".") or p.name.endswith(".tmp"))


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def copy_sample(name: str, dst_dir: Path) -> Path:
    """Copy data_samples/<name> (and a BrainVision header's sidecars) into dst_dir."""
    import shutil

    src = SAMPLES_DIR / name
    out = Path(dst_dir) / src.name
    shutil.copyfile(src, out)
    if src.suffix.lower() == ".vhdr":
        for ext in (".eeg", ".vmrk"):
            shutil.copyfile(src.with_suffix(ext), out.with_suffix(ext))
    return out


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory):
    """``sample_archive(path)``: the archive of a recording, compressed once per session."""
    from biocompress import compress

    folder = tmp_path_factory.mktemp("sample_archives")
    cache: dict[Path, Path] = {}

    def get(src: Path) -> Path:
        src = Path(src)
        if src not in cache:
            dst = folder / f"{len(cache):03d}_{src.name}.bc.h5"
            cache[src] = compress(src, dst)
        return cache[src]

    return get


# --- synthetic recordings ---------------------------------------------------------
def synthetic_codes(n_channels: int = 6, n_samples: int = 5000, seed: int = 0, bits: int = 16) -> np.ndarray:
    """Integer EEG-like codes (n_channels, n_samples); row 0 is the counter np.arange(n_samples).

    Other rows: random walks with a sine component, spikes and saturation runs,
    clipped to a ``bits``-bit signed range.
    """
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    t = np.arange(n_samples)
    rows = [t.astype(np.int64)]
    for ch in range(1, n_channels):
        walk = np.cumsum(rng.integers(-40, 41, n_samples))
        sine = np.round(300 * np.sin(2 * np.pi * t * (ch + 1) / 250.0))
        x = (walk + sine).astype(np.int64)
        if n_samples > 10:
            x[rng.integers(0, n_samples, 3)] += rng.choice([-1, 1], 3) * (1 << (bits - 2))
            a = int(rng.integers(0, max(1, n_samples - 50)))
            x[a : a + 40] = hi if ch % 2 else lo  # saturation run
        rows.append(np.clip(x, lo, hi))
    return np.vstack(rows)


def synthetic_raw(codes: np.ndarray | None = None, *, sfreq: float = 250.0, cal: float = 1e-7,
                  first_samp: int = 0, meas_date=dt.datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone.utc),
                  annotations: bool = True) -> mne.io.RawArray:
    """RawArray of ``codes * cal`` whose channels declare ``cal`` (so the values are integer codes)."""
    codes = synthetic_codes() if codes is None else codes
    n_ch = codes.shape[0]
    names = ["counter"] + [f"EEG{i:03d}" for i in range(1, n_ch)]
    types = ["misc"] + ["eeg"] * (n_ch - 1)
    info = mne.create_info(names, sfreq, types)
    for ch in info["chs"]:
        ch["cal"] = cal
    raw = mne.io.RawArray(codes * cal, info, first_samp=first_samp)
    raw.set_meas_date(meas_date)
    if annotations:
        t0 = raw.first_time if meas_date is not None else 0.0
        raw.set_annotations(mne.Annotations(
            onset=[t0 + 1.0, t0 + 2.5, t0 + 3.0], duration=[0.5, 0.0, 1.25],
            description=["stim/1", "blink", "ünïcode"], orig_time=meas_date,
        ))
    return raw
