"""What an export through MNE kept, channel by channel.

The exported file is read back with MNE and compared with the archive's samples.
Each channel is bit-exact, or rounded within the format's resolution (EDF/BDF:
half a digital step of the file's scale; BrainVision and EEGLAB: float32), or
*changed*: a trigger (stim) channel whose codes are not kept exactly, a value
beyond the format's range or resolution, a missing channel or missing samples.
Changes need the user's consent (``allow_changes``); rounding is only reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mne.io.constants import FIFF

from ..io import scaling

INTEGER_FORMATS = ("edf", "bdf")  # digital codes over a per-channel physical range
FLOAT32_FORMATS = ("brainvision", "eeglab")  # float32 samples (MNE writes µV for voltages)
FLOAT32_REL = 2.0**-23  # one float32 unit in the last place, relative
INT_SLACK = 1e-6  # relative slack on half a digital step (float64 arithmetic of the scale)
UNITS = {FIFF.FIFF_UNIT_V: "V", FIFF.FIFF_UNIT_T: "T", FIFF.FIFF_UNIT_T_M: "T/m", FIFF.FIFF_UNIT_MOL: "mol",
         FIFF.FIFF_UNIT_CEL: "°C", FIFF.FIFF_UNIT_S: "S", FIFF.FIFF_UNIT_SEC: "s", FIFF.FIFF_UNIT_AM: "Am"}


@dataclass
class ChannelOutcome:
    name: str
    ch_type: str
    unit: str
    exact: bool
    max_abs_error: float  # in the channel's unit (0.0 when exact)
    change: str | None = None  # why the channel needs consent, or None

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.ch_type, "unit": self.unit, "exact": self.exact,
                "max_abs_error": self.max_abs_error, "change": self.change}


def unit_of(ch: dict) -> str:
    return UNITS.get(int(ch.get("unit", FIFF.FIFF_UNIT_NONE)), "")


def compare(raw, back, fmt: str) -> tuple[list[ChannelOutcome], list[str]]:
    """Per-channel outcome of writing ``raw`` to format ``fmt`` and reading it back as
    ``back``; and notes on the whole file (samples the format appended)."""
    x = raw.get_data()
    found = {name: i for i, name in enumerate(back.ch_names)}
    y_all = back.get_data()
    notes = []
    n = x.shape[1]
    if y_all.shape[1] > n:
        notes.append(f"the format holds whole data records: {y_all.shape[1] - n} sample(s) of edge values "
                     "appended after the end")
    allowed = _allowed_error(back, fmt, y_all)
    types = raw.get_channel_types()
    outcomes = []
    for c, name in enumerate(raw.ch_names):
        ch = raw.info["chs"][c]
        unit = unit_of(ch)
        if name not in found:
            outcomes.append(ChannelOutcome(name, types[c], unit, False, float("inf"), "missing from the file"))
            continue
        b = found[name]
        y = y_all[b, :n]
        if y.size < n:
            outcomes.append(ChannelOutcome(name, types[c], unit, False, float("inf"),
                                           f"only {y.size} of {n} samples in the file"))
            continue
        outcomes.append(_outcome(name, types[c], unit, x[c], y, allowed(b, x[c])))
    return outcomes, notes


def _outcome(name, ch_type, unit, x, y, allowed) -> ChannelOutcome:
    if np.array_equal(x.view(np.int64), y.view(np.int64)):
        return ChannelOutcome(name, ch_type, unit, True, 0.0)
    with np.errstate(invalid="ignore"):
        err = np.abs(y - x)
    nan_moved = np.isnan(x) != np.isnan(y)
    err = np.where(np.isnan(err), np.where(nan_moved, np.inf, 0.0), err)
    worst = float(err.max())
    change = None
    if ch_type == "stim":
        change = "trigger codes changed: " + _value_changes(x, y)
    elif (err > allowed).any():
        i = int(np.argmax(err - allowed))
        u = f" {unit}" if unit else ""
        change = f"value {x[i]:.6g}{u} became {y[i]:.6g}{u} (beyond the format's range or resolution)"
    return ChannelOutcome(name, ch_type, unit, False, worst, change)


def _value_changes(x, y, most: int = 3) -> str:
    pairs, counts = np.unique(np.stack([x, y])[:, x != y].T, axis=0, return_counts=True)
    order = np.argsort(-counts)[:most]
    text = ", ".join(f"{_num(a)} → {_num(b)} ({k} sample{'s' if k > 1 else ''})"
                     for (a, b), k in zip(pairs[order], counts[order]))
    return text + (", …" if pairs.shape[0] > most else "")


def _num(v: float) -> str:
    return f"{v:.0f}" if np.isfinite(v) and v == np.round(v) and abs(v) < 1e15 else f"{v:.6g}"


def _allowed_error(back, fmt: str, y: np.ndarray):
    """fn(channel of ``back``, source samples) → the rounding the format may do to them."""
    if fmt in INTEGER_FORMATS:
        step = scaling.value_per_code(scaling.recipe_for(back), len(back.ch_names))
        return lambda b, x: 0.5 * step[b] * (1 + INT_SLACK) + 1e-12 * np.abs(x)
    if fmt in FLOAT32_FORMATS:
        return lambda b, x: FLOAT32_REL * np.abs(x)
    return lambda b, x: np.zeros_like(x)  # FIF double: exact


def summary(outcomes: list[ChannelOutcome], most: int = 5) -> str:
    """One line: how many channels are bit-exact, and the others with their max |error|."""
    exact = sum(o.exact for o in outcomes)
    text = f"{exact} of {len(outcomes)} channel(s) read back bit-exact"
    rest = [o for o in outcomes if not o.exact]
    if rest:
        shown = ", ".join(f"{o.name} {o.max_abs_error:.3g}{' ' + o.unit if o.unit else ''}" for o in rest[:most])
        text += f"; not exact (max |error|): {shown}" + (f", … ({len(rest) - most} more)" if len(rest) > most else "")
    return text
