"""The Dask executor and ``to_dask`` on a distributed cluster. Dask opens sockets: these tests
run only inside their own network namespace, with loopback alone (started by
tests/test_dask_namespace.py, which sets BIOCOMPRESS_NETNS=1); every cluster listens on
127.0.0.1 with its dashboards off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("BIOCOMPRESS_NETNS") != "1",
                                reason="Dask tests run inside a network namespace (tests/test_dask_namespace.py)")
distributed = pytest.importorskip("distributed")

import biocompress  # noqa: E402
from biocompress.batch import run_batch  # noqa: E402
from biocompress.files.verify import verify_archive  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


@pytest.fixture
def dataset(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    for name in ("chtypes_edf.edf", "test_bdf_stim_channel.bdf", "mixed_rate.edf"):
        shutil.copyfile(SAMPLES / name, src / "a" / name)
    for ext in (".vhdr", ".eeg", ".vmrk"):
        shutil.copyfile(SAMPLES / f"test_NO{ext}", src / f"test_NO{ext}")
    (src / "bad.edf").write_text("not an EDF")
    (src / "notes.txt").write_text("notes")
    return src


def _samples(path: Path) -> bytes:
    with biocompress.open(path) as arc:
        return np.ascontiguousarray(arc.read()).tobytes()


def test_dask_executor_gives_what_the_local_one_gives(dataset, tmp_path):
    by_dask = run_batch(dataset, tmp_path / "dask", executor="dask", workers=2)
    by_pool = run_batch(dataset, tmp_path / "local", executor="local", workers=2)
    assert [rel for rel, _ in by_dask.failed] == ["bad.edf"] == [rel for rel, _ in by_pool.failed]
    assert "bad.edf" in by_dask.failed[0][1]
    assert by_dask.converted == by_pool.converted == 4 and by_dask.copied == 1
    archives = sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*.bc.h5"))
    assert archives == sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.bc.h5"))
    for rel in archives:
        assert verify_archive(tmp_path / "dask" / rel)["ok"]
        assert _samples(tmp_path / "dask" / rel) == _samples(tmp_path / "local" / rel)  # byte-identical samples
    assert not [p for p in (tmp_path / "dask").rglob("*") if p.name.endswith(".bctmp")]
    again = run_batch(dataset, tmp_path / "dask", executor="dask", workers=2)  # resumes: only the failure retried
    assert again.already_done == 5 and [rel for rel, _ in again.failed] == ["bad.edf"]


def test_to_dask_computes_on_a_loopback_cluster(tmp_path):
    arc = biocompress.compress(SAMPLES / "chtypes_edf.edf", tmp_path / "c.bc.h5")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])
        x = biocompress.open(arc).to_dask(chunk_samples=300)
        got = client.compute(x).result(timeout=120)
        mean = client.compute(x.mean(axis=1)).result(timeout=120)
    with biocompress.open(arc) as a:
        ref = a.read()
    assert np.array_equal(got.view(np.int64), ref.view(np.int64))
    assert np.allclose(mean, ref.mean(axis=1), rtol=1e-12, atol=0)
