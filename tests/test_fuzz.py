"""A bounded slice of the archive fuzzer (pipelines/fuzz.py), and the crafted hostile archives.

40 mutants over every kind of archive (lossless EDF, BDF, float32, lossy, near-lossless, float lossy),
each put through ``info --json``, ``verify``, ``verify ARCHIVE SOURCE``,
``read_raw(...).get_data()`` and, for EDF/BDF, ``restore``, in a worker process with a
watchdog. The target of issue 10: no silent wrong values, no untyped exception, no hang,
no ``verify`` OK followed by a failing read. The crafted archives declare huge sizes in a
small file; each operation must refuse them with a typed error. (Memory is not measured
here: the worker's address space is capped, so a bomb shows up as MemoryError.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from fuzzkit import campaign, crafted  # noqa: E402
from fuzzkit.operations import OUTCOMES, operations_for  # noqa: E402
from fuzzkit.worker import Worker  # noqa: E402

N_MUTANTS = 40
SEED = 20261130
CPU = max(os.sched_getaffinity(0))  # the worker runs on one CPU: no read pool of its own


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz")
    rows, prepared = campaign.run_campaign(N_MUTANTS, workdir, seed=SEED, timeout=120, as_limit_mb=1536,
                                           cpu=CPU, log=lambda message: None)
    return rows, prepared, workdir


def _show(rows) -> str:
    return "\n".join(f"mutant {r['mutant']} {r['kind']} {r['mutation']}@{r['offset']} in {r['region']}: "
                     f"{r['operation']}: {r['outcome']} {r['exc_type']} {r['message'][:200]} [{r['location']}]"
                     for r in rows[:20])


def test_the_fuzzer_runs_every_operation_on_every_mutant(fuzz):
    rows, prepared, _ = fuzz
    assert sorted(prepared) == sorted(campaign.KINDS)
    by_mutant: dict[int, set] = {}
    for r in rows:
        assert r["outcome"] in OUTCOMES
        by_mutant.setdefault(r["mutant"], set()).add(r["operation"])
    assert sorted(by_mutant) == list(range(N_MUTANTS))
    for i, ops in by_mutant.items():
        kind = list(prepared)[i % len(prepared)]
        assert set(operations_for(prepared[kind].target)) <= ops
    assert any(r["outcome"] == "TYPED_ERROR" for r in rows), "no mutant was detected: the fuzzer damages nothing"


def test_clean_archives_pass_every_operation(fuzz):
    """The baselines themselves: `verify` (with and without SOURCE) exits 0 on every clean archive."""
    _, prepared, _ = fuzz
    assert campaign.check_baselines(prepared) == []


def test_no_silent_wrong_values(fuzz):
    bad = [r for r in fuzz[0] if r["outcome"] == "SILENT_WRONG"]
    assert not bad, _show(bad)


def test_no_untyped_exceptions(fuzz):
    bad = [r for r in fuzz[0] if r["outcome"] == "TRACEBACK"]
    assert not bad, _show(bad)


def test_no_hangs_or_crashes(fuzz):
    bad = [r for r in fuzz[0] if r["outcome"] in ("HANG", "CRASH")]
    assert not bad, _show(bad)


def test_verify_ok_is_never_followed_by_a_failing_read(fuzz):
    bad = [r for r in fuzz[0] if r["outcome"] == "VERIFY_OK_THEN_FAIL"]
    assert not bad, _show(bad)


# --- crafted archives ------------------------------------------------------------------
@pytest.fixture(scope="module")
def crafted_results(fuzz):
    _, prepared, workdir = fuzz
    files = crafted.build_crafted({k: Path(p.target["archive"]) for k, p in prepared.items()}, workdir / "crafted")
    with Worker(timeout=120, as_limit_mb=1536, cpu=CPU, scratch=workdir) as worker:
        rows = crafted.measure_crafted(worker, files, Path(prepared["edf"].target["archive"]),
                                       prepared["edf"].target, fresh=False)
    return {(r["archive"], r["operation"]): r for r in rows}


CASES = [(a, op) for a in ("index-2^25-rows", "index-2^33-rows", "n_samples-1e10", "zlib-bomb", "model-width-4700")
         for op in crafted.CRAFTED_OPERATIONS]


@pytest.mark.parametrize("archive, operation", CASES)
def test_crafted_archive_is_refused_as_damaged(crafted_results, archive, operation):
    """A damaged archive: CorruptArchiveError from the API, exit 1 with a message from the CLI.

    `info` reads no block, so it may describe an archive whose declared sizes are all
    consistent (the zlib bomb hides in a block's content)."""
    r = crafted_results[(archive, operation)]
    detail = f"{r['outcome']} {r['exc_type']} {r['message'][:300]} [{r['location'] or r['raised_at']}]"
    if operation == "info" and archive == "zlib-bomb":
        assert r["outcome"] in ("ACCEPTED", "TYPED_ERROR"), detail
    elif operation == "read_raw":
        assert r["outcome"] == "TYPED_ERROR" and r["exc_type"] == "CorruptArchiveError", detail
    else:
        assert r["outcome"] == "TYPED_ERROR" and r["exit_code"] == 1 and r["message"].startswith("error:"), detail
