"""Each available external codec wrapper round-trips small synthetic 16- and 24-bit arrays."""



import numpy as np
import pytest

from biocompress.bench.external import ALL_CODECS, RoundTripError, check_equal, pack, unpack
from biocompress.io.codes import SourceCodes

SFREQ = 250.0


def _signal(bits: int) -> np.ndarray:
    """3 channels of a bounded random walk plus a full-scale spike, so packing edges are hit."""
    rng = np.random.default_rng(bits)
    x = np.cumsum(rng.integers(-40, 41, size=(3, 1500)), axis=1)
    top = (1 << (bits - 1)) - 1
    x = np.clip(x * (1 << (bits - 16)), -top - 1, top)
    x[1, 100], x[2, 200] = top, -top - 1
    return x.astype(np.int64)


@pytest.mark.parametrize("bits", [16, 24, 32])
def test_pack_roundtrip(bits):
    x = _signal(bits)
    assert np.array_equal(unpack(pack(x, bits), bits, x.shape), x)
    assert len(pack(x, bits)) == x.size * bits // 8


def test_check_equal_raises():
    x = _signal(16)
    y = x.copy()
    y[0, 0] += 1
    with pytest.raises(RoundTripError):
        check_equal("x", x, y)


@pytest.mark.parametrize("bits", [16, 24])
@pytest.mark.parametrize("name", list(ALL_CODECS))
def test_roundtrip(name, bits):
    codec = ALL_CODECS[name]()
    ok, why = codec.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {why}")
    x = _signal(bits)
    r = codec.run(x, bits, sfreq=SFREQ)  # raises RoundTripError if the decode differs
    assert r.compressed_bytes > 0
    assert r.encode_s >= 0 and r.decode_s >= 0


def test_missing_cli_reports_reason(monkeypatch):
    import biocompress.bench.external as ext

    monkeypatch.setattr(ext.shutil, "which", lambda _: None)
    ok, why = ext.Flac8().available()
    assert not ok and "flac CLI not found" in why and "apt-get install flac" in why


def test_runner_smoke(tmp_path, monkeypatch):
    """run_benchmark on one fake recording: rows, CSV and PNG come out; biocompress left out."""
    import biocompress.bench.lossless as lossless

    x = _signal(16)
    src = SourceCodes(codes=x, bits=16, sfreq=SFREQ, integer=True, n_channels=3, n_samples=x.shape[1])
    (tmp_path / "fake.edf").write_bytes(b"")
    monkeypatch.setattr(lossless, "read_codes", lambda path: src)
    rows = lossless.run_benchmark(tmp_path, codecs=["gzip9", "bzip2"], csv_path=tmp_path / "r.csv",
                                  plot_path=tmp_path / "r.png", anchors_path=tmp_path / "none.tsv",
                                  progress=False)
    assert [r["codec"] for r in rows] == ["gzip9", "bzip2"]
    assert all(r["status"] == "ok" and r["native_bytes"] == x.size * 2 for r in rows)
    assert (tmp_path / "r.csv").read_text().count("\n") == 3
    assert (tmp_path / "r.png").stat().st_size > 0


def test_read_codes_mixed_rate_edf_keeps_native_rates():
    from biocompress.io import read_codes
    from conftest import SAMPLES_DIR

    src = read_codes(SAMPLES_DIR / "mixed_rate.edf")
    assert src.integer and src.codes is None
    rates = sorted(p.shape[1] // 6 for p in src.parts)
    assert rates == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert src.n_stored * 2 == 2 * 6 * sum([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 128, 512, 128, 512, 512, 512])


def test_bench_command_runs_on_data_samples(tmp_path):
    """`biocompress bench` end to end on the bundled samples (a few codecs, to stay fast)."""
    import csv

    from typer.testing import CliRunner

    from biocompress.cli import app
    from conftest import SAMPLES_DIR

    res = CliRunner().invoke(app, ["bench", str(SAMPLES_DIR), "--codecs", "gzip9,biocompress,biocompress_1p",
                                   "--csv", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png")])
    assert res.exit_code == 0, res.output
    assert "Fairness rules" in res.output
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    ours = [r for r in rows if r["codec"].startswith("biocompress")]
    assert ours and all(r["status"] == "ok" and float(r["ratio"]) > 1.5 for r in ours)
    assert {r["file"] for r in rows} >= {"Subject00_2.edf", "mixed_rate.edf"}
    assert (tmp_path / "b.png").stat().st_size > 0


def test_bench_command_rejects_unknown_codec():
    from typer.testing import CliRunner

    from biocompress.cli import app

    res = CliRunner().invoke(app, ["bench", ".", "--codecs", "nope"])
    assert res.exit_code == 2


def test_float_bench_runs_on_data_samples(tmp_path):
    """pipelines/bench_float.py on the bundled samples: the float32 BrainVision file is found,
    round-trips, and the row is written."""
    import csv
    import importlib.util

    from conftest import REPO, SAMPLES_DIR

    spec = importlib.util.spec_from_file_location("bench_float", REPO / "pipelines" / "bench_float.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "float.csv"
    assert bench.main([str(SAMPLES_DIR), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["recording"] for r in rows] == ["test_NO.vhdr"]
    assert float(rows[0]["float_lpc"]) > max(float(rows[0]["zstd19"]), float(rows[0]["shuffle_zstd19"]))
