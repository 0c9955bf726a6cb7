"""The integrity manifest: every part a reader uses is checked, and damage to any one of
them raises CorruptArchiveError (naming the part) instead of returning wrong values."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import biocompress
from biocompress.container import integrity
from biocompress.errors import CorruptArchiveError
from biocompress.files.restore import restore
from biocompress.files.verify import verify_archive
from conftest import SAMPLES_DIR, crafted


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


def test_manifest_covers_every_object(edf_archive):
    parts = set(_parts(edf_archive))
    with h5py.File(edf_archive, "r") as f:
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


@pytest.mark.filterwarnings("ignore:.*archive.*approximate")
def test_damage_to_any_part_is_caught(tmp_path, any_archive):
    """One part at a time: verify fails, and what read_raw and restore give is either an
    error or exactly what the undamaged archive gives (a reader may not use every part)."""
    clean = _read_all(any_archive, tmp_path / "clean.edf")
    missed = []
    for part in _parts(any_archive):
        if part.startswith("/data/payload/"):
            continue  # payload bytes are covered by the block CRCs (tests/test_container.py)
        path = tmp_path / "d.bc.h5"
        shutil.copyfile(any_archive, path)
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


def test_resealed_archive_still_reads(tmp_path, edf_archive):
    """Sealing again without changes keeps the archive valid (the forger's tool in conftest)."""
    path = tmp_path / "s.bc.h5"
    shutil.copyfile(edf_archive, path)
    with crafted(path):
        pass
    assert verify_archive(path)["ok"]


def test_oversized_declared_dataset_is_refused_before_reading(tmp_path, edf_archive):
    """A dataset whose header declares far more than the file stores is never read."""
    path = tmp_path / "big.bc.h5"
    shutil.copyfile(edf_archive, path)
    with h5py.File(path, "r+") as f:
        del f["info/json"]
        f["info"].create_dataset("json", shape=(1 << 33,), dtype=np.uint8, chunks=(1 << 20,),
                                 compression="gzip")
    with pytest.raises(CorruptArchiveError, match="declares"):
        biocompress.read_raw(path)
