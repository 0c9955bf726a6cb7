"""What a user runs on an archive, and how each outcome is judged.

``run_operation`` runs in a worker process and reports facts (exit code, exception,
a fingerprint of what came back); ``classify`` compares them with the same operation
on the clean archive. Outcomes, worst first:

HANG, CRASH (worker killed by a signal), SILENT_WRONG (values, metadata or bytes that
differ from the clean archive's, with no error), TRACEBACK (an exception other than
biocompress's typed ones, or a CLI exit code outside {0, 1, 2}, or "Traceback" in its
output), MEMORY (MemoryError, or peak RSS above the clean run's by more than the limit),
TYPED_ERROR (BadInputError / CorruptArchiveError / VerificationError, or CLI exit 1/2
with a message), IDENTICAL (what the clean archive gives).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

OPERATIONS = ("info", "verify", "verify-source", "read_raw", "restore")
OUTCOMES = ("HANG", "CRASH", "SILENT_WRONG", "VERIFY_OK_THEN_FAIL", "TRACEBACK", "MEMORY", "TYPED_ERROR",
            "IDENTICAL")
TYPED = ("BadInputError", "CorruptArchiveError", "VerificationError")
INFO_VARIES = ("archive", "archive_bytes", "ratio")  # describe the file itself, not its content
REPO = Path(__file__).resolve().parents[2]


def operations_for(target: dict) -> list[str]:
    return [op for op in OPERATIONS if op != "restore" or target["restorable"]]


# --- running (in a worker) -----------------------------------------------------------
def run_operation(op: str, archive: str, target: dict, scratch: str, subprocess_cli: bool = False) -> dict:
    """Facts about one operation on one archive (never raises)."""
    try:
        if op == "read_raw":
            return _read_raw(archive, target)
        out = str(Path(scratch) / ("restored" + Path(target["source"]).suffix.lower()))
        args = {"info": ["info", archive, "--json"], "verify": ["verify", archive],
                "verify-source": ["verify", archive, target["source"]],
                "restore": ["restore", archive, "-o", out, "--force"]}[op]
        facts = _cli_subprocess(args) if subprocess_cli else _cli_in_process(args)
        if op == "restore":
            facts.update(_restored(out, facts))
            Path(out).unlink(missing_ok=True)
        elif op == "info" and facts.get("exit_code") == 0:
            facts["value"] = _info_value(facts["stdout"])
        elif op.startswith("verify") and facts.get("exit_code") is not None:
            facts["value"] = facts["exit_code"]
        return facts
    except BaseException as exc:  # noqa: BLE001 - a fuzzer reports whatever happened
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _exception_facts(exc)


def _read_raw(archive: str, target: dict) -> dict:
    import warnings

    import biocompress

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = biocompress.read_raw(archive)
            x = raw.get_data()
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _exception_facts(exc)
    ann = raw.annotations
    meta = {
        "shape": list(x.shape), "sfreq": float(raw.info["sfreq"]), "ch_names": list(raw.ch_names),
        "ch_types": list(raw.get_channel_types()), "meas_date": str(raw.info["meas_date"]),
        "first_samp": int(raw.first_samp),
        "annotations": [[float(o), float(d), str(s)] for o, d, s in zip(ann.onset, ann.duration, ann.description)],
        "cals": hashlib.sha256(np.array([c["cal"] for c in raw.info["chs"]]).tobytes()).hexdigest()[:16],
    }
    facts = {"status": "returned", "value": {"data": hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(),
                                             "meta": meta}}
    ref = target.get("clean_data")
    if ref and Path(ref).is_file():
        facts["data_diff"] = describe_difference(np.load(ref), x)
    elif ref:
        np.save(ref, x)
    return facts


def describe_difference(clean: np.ndarray, got: np.ndarray) -> str:
    if clean.shape != got.shape:
        return f"shape {got.shape} instead of {clean.shape}"
    differ = clean.view(np.int64) != got.view(np.int64)
    if not differ.any():
        return ""
    rows = np.flatnonzero(differ.any(axis=1))
    with np.errstate(all="ignore"):
        err = np.nanmax(np.abs(got - clean)[differ]) if np.isfinite(got[differ]).any() else float("nan")
        scale = np.nanmax(np.abs(clean[rows])) or 1.0
    return (f"{int(differ.sum())} samples differ in {rows.size} channel(s) (first {int(rows[0])}), "
            f"max |error| {err:.3g} ({err / scale:.2g} of the channel's range)")


def _info_value(stdout: str) -> dict | str:
    try:
        summary = json.loads(stdout)
    except ValueError:
        return f"unparsable output: {stdout[:80]!r}"
    return {k: v for k, v in summary.items() if k not in INFO_VARIES}


def _restored(out: str, facts: dict) -> dict:
    if facts.get("exit_code") != 0:
        return {}
    path = Path(out)
    if not path.is_file():
        return {"value": "no output file"}
    text = facts.get("stdout", "").replace(out, "OUT")
    return {"value": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "says": " ".join(text.split())}}


def _cli_in_process(args: list[str]) -> dict:
    from typer.testing import CliRunner

    from biocompress.cli import app

    result = CliRunner().invoke(app, args)
    text = result.output + (result.stderr if result.stderr != result.output else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        facts = _exception_facts(result.exception, result.exc_info[2] if result.exc_info else None)
        facts["exit_code"] = result.exit_code
        return facts
    return {"status": "exited", "exit_code": result.exit_code, "stdout": result.stdout,
            "message": _last_line(text), "traceback_printed": "Traceback" in text}


def _cli_subprocess(args: list[str], timeout: float = 300) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "biocompress.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)
    text = proc.stdout + proc.stderr
    facts = {"status": "exited", "exit_code": proc.returncode, "stdout": proc.stdout,
             "message": _last_line(text), "traceback_printed": "Traceback" in text}
    if proc.returncode < 0:
        facts["status"] = "crashed"
        facts["message"] = f"CLI killed by signal {-proc.returncode}"
    elif "Traceback" in proc.stderr:
        facts.update(_parse_traceback(proc.stderr))
    return facts


def _parse_traceback(stderr: str) -> dict:
    """Type, first line, innermost biocompress frame and raising frame of a printed traceback."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stderr)
    tail = stderr[stderr.rindex("Traceback"):].splitlines()
    last = next((ln for ln in reversed(tail) if ln.strip() and not ln.startswith(" ")), "")
    etype, _, message = last.partition(": ")
    where = lambda f: f"{_short(f[0])}:{f[1]} ({f[2]})"  # noqa: E731
    ours = [f for f in frames if "/biocompress/" in f[0]]
    return {"exc_type": etype.split(".")[-1].strip(), "message": message.strip()[:300],
            "location": where(ours[-1]) if ours else "", "raised_at": where(frames[-1]) if frames else ""}


def _last_line(text: str) -> str:
    """The CLI's error message (rich wraps it over lines), else its last line."""
    if "error:" in text:
        return " ".join(text[text.rindex("error:"):].split())[:300]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _exception_facts(exc: BaseException, tb=None) -> dict:
    tb = tb or exc.__traceback__
    frames = traceback.extract_tb(tb) if tb is not None else []
    ours = [f for f in frames if "/biocompress/" in f.filename and "/pipelines/" not in f.filename]
    where = lambda f: f"{_short(f.filename)}:{f.lineno} ({f.name})"  # noqa: E731
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return {"status": "raised", "exc_type": type(exc).__name__, "message": first,
            "location": where(ours[-1]) if ours else "", "raised_at": where(frames[-1]) if frames else "",
            "typed": type(exc).__name__ in TYPED and type(exc).__module__ == "biocompress.errors"}


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/wt-d/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/", 3)[-1] if filename.count("/") > 3 else filename


# --- judging (in the campaign) -------------------------------------------------------------
def classify(facts: dict, clean: dict, memory_limit_mb: float) -> tuple[str, str]:
    """(outcome, detail) of an operation's facts against the clean archive's."""
    status = facts.get("status")
    if status == "hang":
        return "HANG", facts.get("message", "")
    if status == "crashed":
        return "CRASH", facts.get("message", "")
    extra_mb = facts.get("delta_mb", 0.0) - clean.get("delta_mb", 0.0)
    over = extra_mb > memory_limit_mb
    if status == "raised":
        if facts.get("exc_type") == "MemoryError":
            return "MEMORY", f"MemoryError: {facts.get('message', '')}"
        if not facts.get("typed"):
            return "TRACEBACK", f"{facts.get('exc_type')}: {facts.get('message', '')}"
        return ("MEMORY" if over else "TYPED_ERROR"), facts.get("message", "")
    if status == "exited":
        code = facts.get("exit_code")
        if facts.get("exc_type") or facts.get("traceback_printed") or code not in (0, 1, 2):
            return "TRACEBACK", f"exit {code}: {facts.get('exc_type') or ''} {facts.get('message', '')}".strip()
        if code != 0 and code == clean.get("exit_code") and facts.get("message") == clean.get("message"):
            return "IDENTICAL", "fails as the clean archive does"
        if code != 0:
            return ("MEMORY" if over else "TYPED_ERROR"), f"exit {code}: {facts.get('message', '')}"
    wrong = difference(facts.get("value"), clean.get("value"))
    if wrong:
        detail = facts.get("data_diff") or ""
        return "SILENT_WRONG", f"{wrong}{'; ' + detail if detail else ''}"
    if over:
        return "MEMORY", f"peak RSS {extra_mb:.0f} MB above the clean run"
    return "IDENTICAL", ""


def difference(got, want, path: str = "") -> str:
    """Which parts of a fingerprint differ ('' when equal), e.g. "meta.ch_names: [...] -> [...]"."""
    if got == want:
        return ""
    if isinstance(got, dict) and isinstance(want, dict):
        parts = [difference(got.get(k), want.get(k), f"{path}{k}.") for k in sorted(set(got) | set(want))]
        return ", ".join(p for p in parts if p)
    name = path.rstrip(".")
    if name.split(".")[-1] in ("data", "sha256"):
        return name
    return f"{name + ': ' if name else ''}{_brief(want)} -> {_brief(got)}"


def _brief(v) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."
