"""Clean archives of every kind, built from data_samples/ with the Python API.

Kinds: ``edf`` (lossless EDF, 16 s of Subject00_2.edf), ``bdf`` (test_bdf_stim_channel.bdf),
``float`` (float32 BrainVision test_NO.vhdr), ``lossy`` (quality 3) and ``near-lossless``
(``max_error_uv=1``), both of the same 16 s EDF, and ``float-lossy`` (the BrainVision file at
``max_prdn=5``: grid-v1 blocks). Small blocks (2048 samples, 1024 for the
float file) give every archive several index rows and payload blocks to damage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data_samples"
KINDS = ("edf", "bdf", "float", "lossy", "near-lossless", "float-lossy")
EDF_RECORDS = 16  # 1 s records of Subject00_2.edf kept for the cropped EDF


@dataclass
class Target:
    kind: str
    archive: Path  # the clean archive
    source: Path  # the recording it was made from (for `verify ARCHIVE SOURCE`)
    restorable: bool  # EDF/BDF: `restore` gives back the file byte for byte

    def as_dict(self) -> dict:
        return {"kind": self.kind, "archive": str(self.archive), "source": str(self.source),
                "restorable": self.restorable}


def crop_edf(src: Path, dst: Path, records: int) -> Path:
    """The first ``records`` data records of an EDF/BDF file, header count updated (bytes unchanged)."""
    from biocompress.io import edf_file

    layout = edf_file.read_layout(src)
    records = min(records, layout.n_records)
    header = bytearray(layout.header)
    header[236:244] = f"{records:<8d}".encode("ascii")
    with open(src, "rb") as f:
        f.seek(layout.data_offset)
        body = f.read(records * layout.record_bytes)
    dst.write_bytes(bytes(header) + body)
    return dst


def build_targets(workdir, kinds=KINDS) -> list[Target]:
    """Compress the clean archive of each kind into ``workdir``."""
    import mne

    import biocompress

    mne.set_log_level("ERROR")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    edf = crop_edf(SAMPLES / "Subject00_2.edf", workdir / "Subject00_2_16s.edf", EDF_RECORDS)
    plans = {
        "edf": (edf, {}, 2048, True),
        "bdf": (SAMPLES / "test_bdf_stim_channel.bdf", {}, 2048, True),
        "float": (SAMPLES / "test_NO.vhdr", {}, 1024, False),
        "lossy": (edf, {"mode": "lossy", "quality": 3}, 2048, False),
        "near-lossless": (edf, {"mode": "near-lossless", "max_error_uv": 1.0}, 2048, False),
        "float-lossy": (SAMPLES / "test_NO.vhdr", {"mode": "lossy", "max_prdn": 5.0}, 1024, False),
    }
    out = []
    for kind in kinds:
        if kind not in plans:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        src, options, block, restorable = plans[kind]
        dst = workdir / f"clean_{kind}.bc.h5"
        if not dst.exists():
            biocompress.compress(src, dst, block_samples=block, **options)
        out.append(Target(kind, dst, src, restorable))
    return out
