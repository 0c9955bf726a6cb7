"""MNE ``Info`` and ``Annotations`` to plain JSON-able dicts and back (no pickle)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import mne
import numpy as np
from mne._fiff import constants as _fiff_constants
from mne._fiff._digitization import DigPoint as _DigPoint

# MNE keeps FIFF enums as named ints; map stored plain ints back to them.
_NAMED = {
    "kind": _fiff_constants._ch_kind_named,
    "coil_type": _fiff_constants._ch_coil_type_named,
    "unit": _fiff_constants._ch_unit_named,
    "unit_mul": _fiff_constants._ch_unit_mul_named,
    "coord_frame": _fiff_constants._coord_frame_named,
}

_CH_INT_FIELDS = ("kind", "coil_type", "unit", "unit_mul", "coord_frame", "logno", "scanno")
_CH_FLOAT_FIELDS = ("cal", "range")
_INFO_SCALARS = ("highpass", "lowpass", "line_freq", "description", "experimenter",
                 "proj_name", "proj_id", "gantry_angle", "utc_offset", "xplotter_layout")


def _jsonable(value: Any) -> Any:
    """Recursively turn MNE/numpy values into JSON types (dates as ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (dt.datetime, dt.date)):
        return {"__date__": value.isoformat()}
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__date__"}:
            text = value["__date__"]
            return dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text)
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


def info_to_dict(info: mne.Info, ch_types: list[str]) -> dict:
    chs = []
    for ch in info["chs"]:
        # strict JSON has no NaN: unknown locations are stored as null
        entry = {"ch_name": ch["ch_name"], "loc": [float(v) if np.isfinite(v) else None for v in ch["loc"]]}
        entry.update({f: int(ch[f]) for f in _CH_INT_FIELDS if f in ch})
        entry.update({f: float(ch[f]) for f in _CH_FLOAT_FIELDS})
        chs.append(entry)
    out = {
        "sfreq": float(info["sfreq"]),
        "ch_types": list(ch_types),
        "chs": chs,
        "bads": list(info["bads"]),
        "meas_date": info["meas_date"].isoformat() if info["meas_date"] else None,
    }
    for key in _INFO_SCALARS:
        if info.get(key) is not None:
            out[key] = _jsonable(info[key])
    for key in ("subject_info", "device_info", "helium_info"):
        if info.get(key):
            out[key] = _jsonable(dict(info[key]))
    if info.get("dev_head_t") is not None:
        t = info["dev_head_t"]
        out["dev_head_t"] = {"from": int(t["from"]), "to": int(t["to"]), "trans": t["trans"].tolist()}
    if info.get("dig"):
        out["dig"] = [
            {"kind": int(d["kind"]), "ident": int(d["ident"]), "r": [float(v) for v in d["r"]],
             "coord_frame": int(d["coord_frame"])}
            for d in info["dig"]
        ]
    return out


def info_from_dict(d: dict) -> mne.Info:
    names = [c["ch_name"] for c in d["chs"]]
    info = mne.create_info(names, d["sfreq"], d["ch_types"], verbose="ERROR")
    with info._unlock():
        for ch, src in zip(info["chs"], d["chs"]):
            for f in _CH_INT_FIELDS:
                if f in src:
                    ch[f] = _NAMED[f].get(src[f], src[f]) if f in _NAMED else src[f]
            for f in _CH_FLOAT_FIELDS:
                ch[f] = src[f]
            ch["loc"] = np.array([np.nan if v is None else v for v in src["loc"]], dtype=np.float64)
        info["bads"] = list(d.get("bads", []))
        if d.get("meas_date"):
            info["meas_date"] = dt.datetime.fromisoformat(d["meas_date"])
        for key in _INFO_SCALARS:
            if key in d:
                info[key] = _from_jsonable(d[key])
        for key in ("subject_info", "device_info", "helium_info"):
            if key in d:
                info[key] = _from_jsonable(d[key])
        if "dev_head_t" in d:
            t = d["dev_head_t"]
            info["dev_head_t"] = mne.transforms.Transform(t["from"], t["to"], np.array(t["trans"]))
        if "dig" in d:
            info["dig"] = [
                _DigPoint(
                    kind=_fiff_constants._dig_kind_named.get(p["kind"], p["kind"]),
                    ident=p["ident"],
                    r=np.array(p["r"]),
                    coord_frame=_fiff_constants._coord_frame_named.get(p["coord_frame"], p["coord_frame"]),
                )
                for p in d["dig"]
            ]
    return info


def annotations_to_dict(annot: mne.Annotations) -> dict:
    return {
        "onset": np.asarray(annot.onset, np.float64),
        "duration": np.asarray(annot.duration, np.float64),
        "description": [str(s) for s in annot.description],
        "ch_names": [list(c) for c in annot.ch_names],
        "orig_time": annot.orig_time.isoformat() if annot.orig_time is not None else None,
    }


def annotations_from_dict(d: dict) -> mne.Annotations:
    orig = dt.datetime.fromisoformat(d["orig_time"]) if d.get("orig_time") else None
    return mne.Annotations(
        onset=np.asarray(d["onset"], np.float64),
        duration=np.asarray(d["duration"], np.float64),
        description=list(d["description"]),
        orig_time=orig,
        ch_names=[tuple(c) for c in d["ch_names"]] if d["ch_names"] else None,
    )
