"""Fidelity figures as people read them (``info``, ``compress``, ``report``), and as numbers
(``info --json``). Archives written before the headline (files.fidelity) hold only
``overall`` and ``per_channel``: what is there is shown."""

from __future__ import annotations

NONE = "n/a"


def number(value, spec: str) -> str:
    """``value`` formatted, or n/a where the figure is undefined (None: an exact or flat channel)."""
    return NONE if not isinstance(value, (int, float)) else format(value, spec)


def _errors(summary: dict) -> str:
    """max |error| per display unit, with the channel where it is largest."""
    where = summary.get("max_error_channel") or {}
    parts = [f"{number(v, '.3g')} {unit}" + (f" ({where[unit]})" if unit in where else "")
             for unit, v in (summary.get("max_abs_error") or {}).items()]
    return ", ".join(parts) or NONE


def _prdn(summary: dict) -> str:
    text = f"PRDN mean {number(summary.get('prdn_mean'), '.2f')} %"
    if summary.get("worst_channel") is not None:
        text += f", worst {number(summary.get('prdn_worst'), '.2f')} % ({summary['worst_channel']})"
    return text


def headline(fid: dict | None) -> str | None:
    """One line: mean PRDN over the data channels, the worst channel, max |error|."""
    if not fid:
        return None
    head = fid.get("headline")
    if isinstance(head, dict):
        types = ", ".join(f"{s.get('n_channels')} {t}" for t, s in (fid.get("by_type") or {}).items()
                          if t in _head_types(fid))
        scope = head.get("scope", "data channels") + (f" ({types})" if types else "")
        if not head.get("n_channels"):
            return f"{scope}: none measurable"
        return f"{scope}: {_prdn(head)}; max |error| {_errors(head)}"
    o = fid.get("overall") or {}
    if not o:
        return None
    return (f"all channels pooled: PRD {number(o.get('prd'), '.2f')} %, PRDN {number(o.get('prdn'), '.2f')} %, "
            f"SNR {number(o.get('snr_db'), '.1f')} dB, RMSE {number(o.get('rmse_uv'), '.3f')} µV, "
            f"max |error| {number(o.get('max_abs_error_uv'), '.3f')} µV")


def _head_types(fid: dict) -> set:
    from .fidelity import DATA_TYPES

    by_type = fid.get("by_type") or {}
    data = {t for t in by_type if t in DATA_TYPES or t == "data"}
    return data or set(by_type)


def by_type_lines(fid: dict) -> list[str]:
    return [f"{t} ({s.get('n_channels')} ch): {_prdn(s)}; max |error| {_errors(s)}"
            for t, s in (fid.get("by_type") or {}).items()]


def excluded_line(fid: dict) -> str | None:
    ex = fid.get("excluded") or {}
    parts = [f"{what.replace('_', ' ')}: {', '.join(names[:8])}" + (f" … ({len(names)})" if len(names) > 8 else "")
             for what, names in ex.items() if names]
    return "; ".join(parts) or None


def bands_line(fid: dict) -> str | None:
    """Relative band-power errors: the headline's (data channels) or, in older archives, the pooled ones."""
    head = fid.get("headline")
    if isinstance(head, dict):
        edges = fid.get("bands_hz") or {}
        parts = [f"{b} {number(None if v is None else 100 * v, '.1f')} %"
                 + (f" ({edges[b][0]:g}–{edges[b][1]:g} Hz)" if b in edges else "")
                 for b, v in (head.get("bands") or {}).items()]
    else:
        o = fid.get("overall") or {}
        parts = [f"{k[5:]} {number(100 * v, '.1f')} %" for k, v in o.items()
                 if k.startswith("band_") and isinstance(v, (int, float))]
    return ", ".join(parts) or None


def json_figures(fid: dict | None) -> dict | None:
    """The stored figures for ``info --json``: numbers, no per-channel lists."""
    if not fid:
        return None
    keep = ("headline", "by_type", "excluded", "bands_hz", "overall", "stored_exactly", "target")
    return {k: fid[k] for k in keep if k in fid}


def text_rows(fid: dict | None) -> dict[str, str]:
    """``info``'s rows about fidelity."""
    if not fid:
        return {}
    rows = {"fidelity": headline(fid) or NONE}
    lines = by_type_lines(fid)
    if lines:
        rows["by_type"] = "\n".join(lines)
    for key, line in (("excluded", excluded_line(fid)), ("band_power_error", bands_line(fid)),
                      ("stored_exactly", exact_line(fid))):
        if line:
            rows[key] = line
    return rows


def exact_line(fid: dict | None) -> str | None:
    """Channel groups stored losslessly because their lossy coding was larger."""
    exact = (fid or {}).get("stored_exactly") or {}
    groups = exact.get("groups") or []
    if not groups:
        return None
    names = exact.get("channels") or []
    lossy = sum(int(g.get("lossy_bytes", 0)) for g in groups)
    lossless = sum(int(g.get("lossless_bytes", 0)) for g in groups)
    shown = ", ".join(names[:6]) + (f" … ({len(names)})" if len(names) > 6 else "")
    return (f"stored losslessly: {len(names)} channel(s) ({shown}): lossless {lossless:,} bytes "
            f"< lossy {lossy:,} bytes")
