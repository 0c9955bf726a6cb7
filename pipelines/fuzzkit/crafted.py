"""Hostile archives (issue 10, "memory bombs"): tiny files that declare huge sizes.

Each is a clean archive changed with h5py so that everything else stays valid, then
resealed as a forger would (:func:`forge_seal`): its integrity manifest agrees with the
changes, so only the reader's own size and consistency checks stand in the way.

- ``index-2^25-rows`` / ``index-2^33-rows``: ``/data/index`` re-created chunked and
  gzip-compressed with 2^25 (2^33) rows, only the real rows written (the rest are
  never-written chunks: the file stays small);
- ``n_samples-1e10``: ``/data`` attribute ``n_samples`` = 10^10;
- ``zlib-bomb``: block 0 replaced by a ``float-xor-zlib-v1`` block whose zlib stream
  inflates to 512 MiB, its CRC-32 consistent;
- ``model-width-4700``: a stored model (``/lossy/model``) whose config declares
  width 4700 (2 GB of weights before any check).
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

BOMB_BYTES = 512 << 20
MODEL_CONFIG = {"levels": 10, "width": 4700, "latent": 4, "kernel": 6, "lookahead": 4}


def is_packed(path: Path) -> bool:
    """Format 5 and later: the metadata is packed in ``/meta`` (sealed by its SHA-256)."""
    with h5py.File(path, "r") as f:
        return "meta" in f and int(f.attrs.get("format_version", 0)) >= 5


@contextmanager
def metadata(path: Path):
    """The archive's metadata open for changes: the packed tree (format 5, resealed on exit
    with :func:`biocompress.container.packed.editing`) or the file itself (older formats,
    resealed by :func:`forge_seal`). Payload segments of format 5 live in the file, not here."""
    from biocompress.container import packed

    if is_packed(path):
        with packed.editing(path) as image:
            yield image
        return
    with h5py.File(path, "r+") as f:
        yield f
    forge_seal(path)


def forge_seal(path: Path) -> Path:
    """Rewrite the integrity manifest to match the file. Parts too large to read get a
    made-up digest: a reader must refuse them on their declared size before comparing."""
    import hashlib

    from biocompress.container import integrity

    if is_packed(path):  # sealed by packed.editing already
        return path
    with h5py.File(path, "r+") as f:
        sizes = integrity.Sizes(path.stat().st_size, str(path))
        parts = {}
        for name, obj in integrity.objects(f):
            skip = (integrity.MANIFEST_ATTR, integrity.MANIFEST_DIGEST_ATTR) if name == "/" else ()
            if len([k for k in obj.attrs if k not in skip]):
                parts["@" + name] = integrity.attrs_digest(obj, sizes, skip)
            if isinstance(obj, h5py.Dataset):
                try:
                    parts[name] = integrity.dataset_digest(obj, sizes)
                except Exception:  # noqa: BLE001 - too large to read: the forger guesses
                    parts[name] = "0" * 64
        text = json.dumps({"algorithm": "sha256", "parts": parts}, sort_keys=True).encode("ascii")
        f.attrs[integrity.MANIFEST_ATTR] = np.bytes_(text)
        f.attrs[integrity.MANIFEST_DIGEST_ATTR] = np.bytes_(hashlib.sha256(text).hexdigest().encode("ascii"))
    return path


def _copy(clean: Path, dst: Path) -> Path:
    shutil.copyfile(clean, dst)
    return dst


def big_index(clean: Path, dst: Path, rows: int) -> Path:
    from biocompress.container.layout import INDEX_DTYPE

    _copy(clean, dst)
    if is_packed(dst):
        return _packed_big_index(dst, rows)
    with h5py.File(dst, "r+") as f:
        real = f["data/index"][()]
        del f["data/index"]
        chunk = min(rows, 1 << 16)
        ds = f["data"].create_dataset("index", shape=(rows,), dtype=INDEX_DTYPE, chunks=(chunk,), compression="gzip")
        ds[: real.size] = real.astype(INDEX_DTYPE)
    return forge_seal(dst)


def _packed_big_index(dst: Path, rows: int) -> Path:
    """Format 6: the packed tree re-written with an index of ``rows`` rows (the real ones, then
    zeros streamed through LZMA, so the forger never holds them), sealed with a matching size and
    SHA-256. Past 2^28 rows the zeros are left out and only the declared size lies (a u32: past
    4 GiB it says 4 GiB)."""
    import hashlib
    import lzma

    from biocompress.container import packed

    with h5py.File(dst, "r") as outer:
        raw = packed.open_sealed(outer["meta"][()].tobytes(), str(dst))
    (n_head,) = struct.unpack_from("<I", raw, 8)
    header = json.loads(raw[12 : 12 + n_head])
    values, offset, cut = raw[12 + n_head :], 0, None

    def size(spec) -> int:
        return int(np.prod(spec[1], dtype=np.int64)) * np.dtype(packed._dtype_of(spec[0])).itemsize

    for entry in header:  # values follow the header's order: find where the index's ends
        offset += sum(size(a[1:3]) for a in entry[1])
        if len(entry) == 3:
            if entry[0] == "/data/index":
                itemsize = size(entry[2]) // max(int(entry[2][1][0]), 1)
                cut = offset + size(entry[2])
                zeros_total = rows * itemsize - size(entry[2])
                entry[2][1] = [rows]
            offset += size(entry[2])
    assert cut is not None, "no /data/index in the packed tree"
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    z = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=packed._lzma_filters(1))
    parts = [z.compress(packed.MAGIC + struct.pack("<I", len(head)) + head + values[:cut])]
    declared = 12 + len(head) + len(values) + zeros_total
    if rows <= 1 << 28:
        zero = bytes(64 << 20)
        left = zeros_total
        while left > 0:
            parts.append(z.compress(zero[: min(left, len(zero))]))
            left -= len(zero)
    parts += [z.compress(values[cut:]), z.flush()]
    body = struct.pack("<I", min(declared, (1 << 32) - 1)) + b"".join(parts)
    with h5py.File(dst, "r+") as outer:
        packed.replace_blob(outer, hashlib.sha256(body).digest() + body)
    return dst


def huge_n_samples(clean: Path, dst: Path, n: int = 10**10) -> Path:
    _copy(clean, dst)
    with metadata(dst) as f:
        f["data"].attrs["n_samples"] = np.int64(n)
    return dst


def zlib_bomb(clean: Path, dst: Path, inflated: int = BOMB_BYTES) -> Path:
    from biocompress.container.layout import get_text, put_text

    _copy(clean, dst)
    z = zlib.compressobj(9)
    zero = bytes(1 << 20)
    body = b"".join(z.compress(zero) for _ in range(inflated // len(zero))) + z.flush()
    with metadata(dst) as f:
        row = f["data/index"][0]
    block = struct.pack("<HI", int(row["ch_stop"] - row["ch_start"]), int(row["t_stop"] - row["t_start"])) + body
    from biocompress.container.layout import segment_path

    with h5py.File(dst, "r+") as f:  # payload segments are in the file itself, whatever the format
        version = int(f.attrs["format_version"])
        segment = next(i for i in range(1 << 20) if segment_path("data", i, version) not in f)
        f.create_dataset(segment_path("data", segment, version), data=np.frombuffer(block, np.uint8))
    with metadata(dst) as f:
        data = f["data"]
        index = data["index"][()]
        codecs = json.loads(get_text(data.attrs, "codecs"))
        codecs.append({"id": "float-xor-zlib-v1", "level": 9, "width": 8})
        put_text(data.attrs, "codecs", json.dumps(codecs))
        row = index[0]
        row["segment"], row["offset"], row["length"] = segment, 0, len(block)
        row["codec"], row["crc32"] = len(codecs) - 1, zlib.crc32(block)
        index[0] = row
        data["index"][...] = index
    return dst


def wide_model(clean: Path, dst: Path, config: dict = MODEL_CONFIG) -> Path:
    """A stored model (the archive layout of biocompress.codecs.lossy.model_file) whose config
    declares a network of a few GB; its weights are absent, as a forger would leave them."""
    _copy(clean, dst)
    header = json.dumps({"config": config, "meta": {"model_id": "0" * 16}, "tensors": []}).encode("utf-8")
    blob = b"BCMODEL1" + struct.pack("<I", len(header)) + header
    with metadata(dst) as f:
        f.require_group("lossy").create_dataset("model", data=np.frombuffer(blob, np.uint8))
    return dst


def build_crafted(clean: dict[str, Path], folder) -> dict[str, Path]:
    """The hostile archives, from the clean ``edf`` and ``lossy`` archives (kind → path)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    edf = clean["edf"]
    out = {
        "index-2^25-rows": big_index(edf, folder / "index_2p25.bc.h5", 1 << 25),
        "index-2^33-rows": big_index(edf, folder / "index_2p33.bc.h5", 1 << 33),
        "n_samples-1e10": huge_n_samples(edf, folder / "n_samples_1e10.bc.h5"),
        "zlib-bomb": zlib_bomb(edf, folder / "zlib_bomb.bc.h5"),
    }
    if "lossy" in clean:
        out["model-width-4700"] = wide_model(clean["lossy"], folder / "model_width_4700.bc.h5")
    return out


CRAFTED_OPERATIONS = ("info", "verify", "read_raw")


def judge_crafted(facts: dict) -> str:
    """A hostile archive must be refused with a typed error; anything else is reported as is."""
    status = facts.get("status")
    if status == "hang":
        return "HANG"
    if status == "crashed":
        return "CRASH"
    if status == "raised":
        if facts.get("exc_type") == "MemoryError":
            return "MEMORY"
        return "TYPED_ERROR" if facts.get("typed") else "TRACEBACK"
    code = facts.get("exit_code")
    if facts.get("exc_type") or facts.get("traceback_printed") or code not in (0, 1, 2):
        return "TRACEBACK"
    return "TYPED_ERROR" if code in (1, 2) else "ACCEPTED"


def measure_crafted(worker, crafted: dict[str, Path], clean_edf: Path, target: dict, fresh: bool = True) -> list[dict]:
    """Each operation on each hostile archive: outcome and peak RSS against ``info`` on the clean archive.

    ``fresh``: every operation in a new worker process, so that memory one kept (allocators
    rarely give it back) does not hide the next one's peak.
    """
    if fresh:
        worker.recycle()
    base = worker.run("info", clean_edf, target)
    baseline_mb = base.get("peak_rss_mb") or 0.0
    rows = []
    for name, path in crafted.items():
        for op in CRAFTED_OPERATIONS:
            if fresh:
                worker.recycle()
            facts = worker.run(op, path, target)
            peak = facts.get("peak_rss_mb")
            rows.append({"archive": name, "file_bytes": path.stat().st_size, "operation": op,
                         "outcome": judge_crafted(facts), "exit_code": facts.get("exit_code"),
                         "exc_type": facts.get("exc_type", ""),
                         "message": facts.get("message", ""), "location": facts.get("location", ""),
                         "raised_at": facts.get("raised_at", ""), "peak_rss_mb": peak, "delta_mb": facts.get("delta_mb"),
                         "over_clean_info_mb": round(peak - baseline_mb, 1) if peak is not None else None,
                         "seconds": facts.get("seconds")})
    return rows
