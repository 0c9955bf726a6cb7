"""Integrity: every part a reader uses is checked, and damage to any one of them raises
CorruptArchiveError instead of returning wrong values.

Format 5 packs the metadata into one blob under one SHA-256 (damage anywhere in it is
caught on opening); formats 3-4, still read, carry a manifest of one digest per part,
checked part by part (the frozen v3 fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import biocompress
from biocompress.container import integrity
from biocompress.container.layout import get_text
from biocompress.errors import CorruptArchiveError
from biocompress.files.restore import restore
from biocompress.files.verify import verify_archive
from biocompress.io.source import open_raw
from conftest import SAMPLES_DIR, assert_bitwise_equal, crafted


@pytest.fixture(scope="module")
def edf_archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("integrity")
    return biocompress.compress(SAMPLES_DIR / "test_utf8_annotations.edf", folder / "a.bc.h5")


@pytest.fixture(scope="module", params=["edf", "lossy"])
def any_archive(request, tmp_path_factory, edf_archive):
    if request.param == "edf":
        return edf_archive
    folder = tmp_path_factory.mktemp("integrity_lossy")
    return biocompress.compress(SAMPLES_DIR / "test_utf8_annotations.edf", folder / "q.bc.h5",
                                mode="lossy", quality=3)


@pytest.fixture
def v3_archive(tmp_path, fixtures_dir):
    """A format-3 archive (a manifest per part): a copy of the frozen fixture."""
    path = tmp_path / "v3.bc.h5"
    shutil.copyfile(fixtures_dir / "archive-v3_edf_integrity.bc.h5", path)
    return path


def _parts(path) -> list[str]:
    with h5py.File(path, "r") as f:
        text = bytes(f.attrs[integrity.MANIFEST_ATTR])
    import json

    return sorted(json.loads(text)["parts"])


def _damage(h5: h5py.File, part: str) -> bool:
    """Change one value of a dataset, or of one attribute, in place (False: nothing to change)."""
    if part.startswith("@"):
        obj = h5[part[1:]]
        key = sorted(k for k in obj.attrs if k not in (integrity.MANIFEST_ATTR, integrity.MANIFEST_DIGEST_ATTR))[0]
        value = np.asarray(obj.attrs[key])
        if value.dtype.kind == "S":
            raw = bytearray(bytes(value[()]) or b" ")
            raw[-1] ^= 0x01
            obj.attrs[key] = np.bytes_(bytes(raw))
        else:
            obj.attrs[key] = value + 1
        return True
    ds = h5[part]
    data = np.array(ds[()])
    flat = data.reshape(-1).view(np.uint8)
    if flat.size == 0:
        return False
    flat[flat.size // 2] ^= 0x01
    ds[...] = data
    return True


def test_manifest_covers_every_object(v3_archive):
    parts = set(_parts(v3_archive))
    with h5py.File(v3_archive, "r") as f:
        for path, obj in integrity.objects(f):
            if isinstance(obj, h5py.Dataset):
                assert path in parts, path
            if path != "/" and len(obj.attrs):
                assert "@" + path in parts, path
    assert {"@/", "@/data", "/data/index", "/channels/recipe_a", "/info/json", "/edf/header"} <= parts


def _read_all(path, out):
    raw = biocompress.read_raw(path)
    with biocompress.open(path) as arc:
        exact = arc.stored_edf is not None
    if exact:
        restore(path, out, overwrite=True)
    return raw.get_data(), raw.annotations, raw.ch_names, out.read_bytes() if exact else b""


def test_damage_to_any_part_of_a_manifest_archive_is_caught(tmp_path, v3_archive):
    """One part at a time: verify fails, and what read_raw and restore give is either an
    error or exactly what the undamaged archive gives (a reader may not use every part)."""
    clean = _read_all(v3_archive, tmp_path / "clean.edf")
    missed = []
    for part in _parts(v3_archive):
        if part.startswith("/data/payload/"):
            continue  # payload bytes are covered by the block CRCs (tests/test_container.py)
        path = tmp_path / "d.bc.h5"
        shutil.copyfile(v3_archive, path)
        with h5py.File(path, "r+") as f:
            if not _damage(f, part):
                continue
        try:
            report = verify_archive(path)
            if report["ok"]:
                missed.append(f"verify passed with {part} damaged")
        except CorruptArchiveError as exc:
            assert str(path) in str(exc)
        try:
            got = _read_all(path, tmp_path / "r.edf")
        except CorruptArchiveError:
            assert not (tmp_path / "r.edf").exists() or part.startswith(("/annotations", "@/annotations"))
            continue
        same = (got[0].view(np.int64) == clean[0].view(np.int64)).all() and got[2:] == clean[2:]
        same = same and list(got[1].description) == list(clean[1].description) \
            and np.array_equal(got[1].onset, clean[1].onset) and np.array_equal(got[1].duration, clean[1].duration)
        if not same:
            missed.append(f"wrong values returned with {part} damaged")
        (tmp_path / "r.edf").unlink(missing_ok=True)
    assert not missed, missed


@pytest.mark.filterwarnings("ignore:.*archive.*approximate")
def test_damage_anywhere_in_packed_metadata_is_caught(tmp_path, any_archive):
    """Format 5: a changed byte anywhere in /meta, and every reader refuses the archive."""
    with h5py.File(any_archive, "r") as f:
        n = f["meta"].shape[0]
    for k in np.linspace(0, n - 1, 12).astype(int):
        path = tmp_path / "d.bc.h5"
        shutil.copyfile(any_archive, path)
        with h5py.File(path, "r+") as f:
            blob = f["meta"][()]
            blob[k] ^= 0x01
            f["meta"][...] = blob
        with pytest.raises(CorruptArchiveError, match="packed metadata"):
            verify_archive(path)
        with pytest.raises(CorruptArchiveError, match="packed metadata"):
            _read_all(path, tmp_path / "r.edf")
        assert not (tmp_path / "r.edf").exists()


def test_resealed_archive_still_reads(tmp_path, edf_archive):
    """Sealing again without changes keeps the archive valid (the forger's tool in conftest)."""
    path = tmp_path / "s.bc.h5"
    shutil.copyfile(edf_archive, path)
    with crafted(path):
        pass
    assert verify_archive(path)["ok"]


def test_oversized_declared_dataset_is_refused_before_reading(tmp_path, v3_archive):
    """A dataset whose header declares far more than the file stores is never read."""
    with h5py.File(v3_archive, "r+") as f:
        del f["info/json"]
        f["info"].create_dataset("json", shape=(1 << 33,), dtype=np.uint8, chunks=(1 << 20,),
                                 compression="gzip")
    with pytest.raises(CorruptArchiveError, match="declares"):
        biocompress.read_raw(v3_archive)


def test_packed_value_declaring_more_than_its_bytes_is_refused(tmp_path, edf_archive):
    """Forged: a packed value claiming 8 GiB in a few bytes is refused before any allocation;
    so is /meta claiming to inflate past the format's limit."""
    import json
    import struct

    from biocompress.container import packed

    path = tmp_path / "f.bc.h5"
    shutil.copyfile(edf_archive, path)
    with h5py.File(path, "r") as f:
        raw = packed.open_sealed(f["meta"][()].tobytes(), str(path))
    n_head = struct.unpack_from("<I", raw, 8)[0]
    head = json.loads(raw[12 : 12 + n_head])
    entry = next(e for e in head if e[0] == "/info/json")
    entry[2][1] = [1 << 33]  # shape
    text = json.dumps(head).encode("ascii")
    forged = packed.MAGIC + struct.pack("<I", len(text)) + text + raw[12 + n_head :]
    _put_meta(path, packed.seal(forged))
    with pytest.raises(CorruptArchiveError, match="outside its bytes"):
        biocompress.open(path)
    _put_meta(path, _sealed_declaring(packed.seal(forged), (1 << 32) - 1))
    with pytest.raises(CorruptArchiveError, match="declares"):
        biocompress.open(path)


def _put_meta(path, blob: bytes) -> None:
    with h5py.File(path, "r+") as f:
        del f["meta"]
        f.create_dataset("meta", data=np.frombuffer(blob, np.uint8))


def _sealed_declaring(blob: bytes, declared: int) -> bytes:
    """A sealed /meta whose size field says ``declared``, its SHA-256 made to agree."""
    import hashlib
    import struct

    body = struct.pack("<I", declared) + blob[36:]
    return hashlib.sha256(body).digest() + body


def test_packed_metadata_bomb_is_refused_before_inflating(tmp_path, edf_archive):
    """Forged: /meta sealed correctly but inflating to far more than a file of its size can
    honestly hold (an LZMA bomb) is refused on its declared size."""
    from biocompress.container import packed

    path = tmp_path / "bomb.bc.h5"
    shutil.copyfile(edf_archive, path)
    declared = packed.meta_bound(path.stat().st_size) + (8 << 20)  # the file grows by the blob: margin
    _put_meta(path, packed.seal(packed.MAGIC + bytes(declared - len(packed.MAGIC))))
    assert packed.meta_bound(path.stat().st_size) < declared
    with pytest.raises(CorruptArchiveError, match="declares"):
        biocompress.open(path)


def test_edf_gains_are_derived_only_where_the_header_gives_them_exactly(tmp_path):
    """Format 6: an EDF archive whose gains follow from its header stores none; a BDF whose
    stim channel MNE reads with gain 1 (not what the header says) stores them. Both read back
    MNE's values bit for bit."""
    for name, derived in (("test_utf8_annotations.edf", True), ("test_bdf_stim_channel.bdf", False)):
        path = biocompress.compress(SAMPLES_DIR / name, tmp_path / f"{name}.bc.h5")
        with biocompress.open(path) as arc:
            assert ("recipe_a" not in arc.h5["channels"]) is derived
            assert (get_text(arc.h5["channels"].attrs, "recipe_derived") == "edf") is derived
        out = tmp_path / f"r{Path(name).suffix}"
        values, *_, restored = _read_all(path, out)
        assert_bitwise_equal(values, open_raw(SAMPLES_DIR / name).get_data(), name)
        assert restored == (SAMPLES_DIR / name).read_bytes()


def test_derived_gains_without_their_header_are_corruption(tmp_path, edf_archive):
    """Forged: gains said to come from /edf/header, with that header gone or unreadable."""
    for damage in ("no edf group", "header not numbers"):
        path = tmp_path / "g.bc.h5"
        shutil.copyfile(edf_archive, path)
        with crafted(path) as h5:
            assert get_text(h5["channels"].attrs, "recipe_derived") == "edf"
            if damage == "no edf group":
                del h5["edf"]
            else:
                header = bytearray(h5["edf/header"][()].tobytes())
                n_signals = int(header[252:256])
                pmin = 256 + n_signals * (16 + 80 + 8)
                header[pmin : pmin + 8] = b"x1.5    "
                del h5["edf/header"]
                h5["edf"].create_dataset("header", data=np.frombuffer(bytes(header), np.uint8))
        with pytest.raises(CorruptArchiveError, match="scaling"):
            biocompress.open(path)
