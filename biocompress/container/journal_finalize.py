"""Finalize a journal: the archive of everything it holds, renamed over it.

The archive has the layout ``compress`` writes. A lossless stream's blocks are decoded (CRC
checked) and coded again in blocks as ``compress`` cuts them (:mod:`.recode`: the short
blocks a live stream flushes cost ratio); a lossy stream's are copied byte for byte. The
metadata comes from the stream description and the marker, clock and note frames. When
the journal did not end cleanly, the samples' digests are computed by decoding, and the
provenance (``source.recovery``) records that it was recovered and what was lost. The
archive is written under a temporary name, decoded and checked, and only then renamed over
the journal, which is held locked throughout (a journal still being written is refused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError, VerificationError
from ..system.outputs import is_archive, writing
from ..system.threads import one_blas_thread
from . import journal_layout
from .chains import iter_merged_chains
from .recode import archive_blocks
from .journal import is_journal, lock
from .layout import TIMES
from .reader import Archive, sample_bytes
from .writer import ArchiveWriter


def finalize(path, *, verify: bool = True) -> dict:
    """Turn the journal at ``path`` into an archive in place.

    Returns ``{"path", "n_samples", "seconds", "recovered", "recovery"}``.

    Raises
    ------
    BadInputError
        ``path`` is not a journal (or is already an archive), or a running process is
        still writing it.
    CorruptArchiveError
        The journal's description or a frame that passed its CRC is malformed.
    VerificationError
        The archive written does not decode to what the journal holds (it is discarded
        and the journal left untouched).
    """
    path = Path(path)
    if not is_journal(path):
        if is_archive(path):
            raise BadInputError(path, "is already a finalized archive; nothing to recover")
        raise BadInputError(path, "not a biocompress journal (a live recording's file)")
    with Archive(path) as live, writing(path), one_blas_thread():
        lock(live._journal.fileno(), path)
        contents = live.contents
        recovery = None if contents.complete else _recovery(contents)
        digests = _digests(live)
        with ArchiveWriter(path, mode=contents.description.mode) as writer:
            rows = (_Block(*_place(row), live.codec_configs[int(row["codec"])], live.block_bytes(i))
                    for i, row in enumerate(live.index))
            lossless = contents.description.mode == "lossless"
            for b in archive_blocks(rows) if lossless else iter_merged_chains(rows):
                writer.add_block(b.t_start, b.t_stop, b.ch_start, b.ch_stop, b.config, b.payload)
            if live.has_timestamps:
                configs = live.times_codec_configs
                for i, row in enumerate(live.times_index):
                    writer.add_block(*_place(row), configs[int(row["codec"])], live.block_bytes(i, TIMES),
                                     section=TIMES)
            journal_layout.write_metadata(writer.h5, contents, recovery)
            times = journal_layout.times_attrs(contents, digests["times"]) if live.has_timestamps else None
            writer.finish(journal_layout.data_attrs(contents, digests["samples"]), times)
            if digests["fingerprint"] is not None:
                with writer.amend() as h5:
                    journal_layout.write_fidelity(h5, contents, *digests["fingerprint"])
            if verify:
                _check(writer.tmp, path, contents.n_samples)
            writer.publish(overwrite=True)
    return {"path": path, "n_samples": contents.n_samples, "seconds": contents.seconds,
            "recovered": recovery is not None, "recovery": recovery}


@dataclass(frozen=True)
class _Block:
    t_start: int
    t_stop: int
    ch_start: int
    ch_stop: int
    config: dict
    payload: bytes


def _place(row) -> tuple[int, int, int, int]:
    return int(row["t_start"]), int(row["t_stop"]), int(row["ch_start"]), int(row["ch_stop"])


def _recovery(contents) -> dict:
    """What the provenance says about a journal that did not end cleanly."""
    if contents.end is None:
        reason = "the writer stopped without finishing (no END frame): recovered up to the last valid frame"
    else:
        reason = "the journal ended, but not every frame it counts could be read back"
    return {"recovered": True, "reason": reason, "n_samples": contents.n_samples,
            "seconds": contents.seconds, "frames_read": contents.frames,
            "samples_lost_known": contents.beyond,  # in valid frames past the last sample every channel has
            "bytes_discarded": contents.file_bytes - contents.valid_bytes,  # after the last valid frame
            "stopped": contents.stopped}


def _digests(live) -> dict:
    """The samples' and timestamps' SHA-256 (from END, or by decoding) and, for lossy streams,
    the decoded samples' fingerprint."""
    contents = live.contents
    samples, times = contents.end_digest("samples_sha256"), contents.end_digest("times_sha256")
    lossy = contents.description.mode != "lossless"
    stats = None
    if samples is None or lossy:
        from . import fingerprint

        window = fingerprint.READ_SAMPLES  # as compress's: a live stream's blocks are far shorter
        sha, stats = hashlib.sha256(), []
        for w0 in range(0, contents.n_samples, window):
            y = live.read(w0, min(contents.n_samples, w0 + window))
            sha.update(sample_bytes(y))
            stats.append(fingerprint.window_stats(y))
        samples = sha.hexdigest()
        stats = (stats, window) if lossy else None
    if live.has_timestamps and times is None:
        times = live.verify_timestamps()["times_sha256"]
    return {"samples": samples, "times": times, "fingerprint": stats}


def _check(tmp: Path, path: Path, n_samples: int) -> None:
    """The archive written decodes to the digests it states, and holds what the journal did."""
    with Archive(tmp) as arc:
        arc.check_metadata()
        result = arc.verify()
        if not result["ok"] or arc.n_samples != n_samples:
            raise VerificationError(f"{path}: the archive finalized from the journal does not decode to what "
                                    f"the journal holds; the journal is left as it was")
