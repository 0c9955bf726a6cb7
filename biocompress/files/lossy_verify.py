"""Verification of lossy and near-lossless archives.

Without the source: every block is decoded and the samples are compared with the
stored hash (bit-identical) and, failing that, with the stored fingerprint within its
tolerance (:mod:`.fingerprint`): another CPU may round the decoder's floats differently.
With the source: the archive's claims are checked, not bit equality: near-lossless
channels within their error bound, exact (trigger) channels bit for bit, and the
fidelity figures stored at compression recomputed and compared.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..codecs.base import WAVELET_IDS
from ..container import fingerprint
from ..container.reader import sample_bytes
from ..errors import CorruptArchiveError
from .fidelity import TO_MICRO, FidelityMeter
from ..io.scaling import value_per_code
from ..io.source import iter_samples

FIGURES = ("prdn", "rmse_uv", "max_abs_error_uv")
FIGURE_REL_TOLERANCE = 1e-3  # stored vs recomputed figures: float rounding moves them by ~1e-5
BOUND_SLACK = 1e-9  # relative: the bound is checked on float64 values
UNBOUNDED = -1
MAX_BLOCK = 1 << 20  # samples read at once against the source (the writer's windows, up to this)


def channel_deltas(arc) -> np.ndarray:
    """Per channel, the bound its codec guarantees, in integer codes: 0 for channels coded
    exactly (lossless codecs), ``deltas`` of ``nl-v1``, and UNBOUNDED for ``ae-v1``, ``ae-v2``, ``grid-v1`` and the
    wavelet coders."""
    out = np.zeros(arc.n_channels, np.int64)
    for row in arc.index:
        config = arc.codec_configs[int(row["codec"])]
        a, b = int(row["ch_start"]), int(row["ch_stop"])
        if config.get("id") in ("ae-v1", "ae-v2", "grid-v1", *WAVELET_IDS):  # grid-v1: its bound is in grid steps; PRDN, their claim
            out[a:b] = UNBOUNDED
        elif config.get("id") == "nl-v1":
            deltas = np.asarray(config.get("deltas", ()), np.int64)
            if deltas.size != b - a:
                raise CorruptArchiveError(f"{arc.path}: nl-v1 config has {deltas.size} deltas for {b - a} channels")
            out[a:b] = np.where(out[a:b] == UNBOUNDED, UNBOUNDED, np.maximum(out[a:b], deltas))
    return out


def _per_code(arc) -> np.ndarray:
    return value_per_code(arc.recipe, arc.n_channels)


def _code_slack(arc, deltas: np.ndarray) -> np.ndarray:
    """One code, in the channel's unit, where a channel's codes may move on another machine."""
    return np.where(deltas > 0, _per_code(arc), 0.0)


def check_decoded(arc, progress=None) -> tuple[bool, list[str]]:
    """Decode every block; compare with the stored hash and fingerprint."""
    stored = fingerprint.read(arc)
    window = stored[1] if stored else fingerprint.READ_SAMPLES
    sha, rows = hashlib.sha256(), []
    for w0 in range(0, arc.n_samples, window):
        stats = fingerprint.WindowStats()
        for t0 in range(w0, min(arc.n_samples, w0 + window), fingerprint.READ_SAMPLES):
            t1 = min(arc.n_samples, w0 + window, t0 + fingerprint.READ_SAMPLES)
            y = arc.read(t0, t1)
            sha.update(sample_bytes(y))
            stats.add(y)
            if progress:
                progress(t1 - t0)
        rows.append(stats.result())
    digest = sha.hexdigest()
    same = digest == arc.attrs.get("samples_sha256")
    lines = [f"blocks: {arc.index.size} decoded, CRC-32 ok"]
    if stored is None:
        if same:
            return True, lines + [f"samples: bit-identical (sha256 {digest[:16]}…)"]
        if arc.format_version < 3:  # hashed as decoded with a thread-dependent matrix product
            return True, lines + [f"samples: not bit-identical to the hash stored by the writer ({digest[:16]}…); "
                                  "this archive predates format 3 and its tolerance fingerprint, so its "
                                  "lossy values cannot be checked beyond the block CRCs"]
        return False, lines + [f"samples sha256 MISMATCH ({digest[:16]}…), and the archive holds no fingerprint "
                               "to check its values within a tolerance"]
    fp = stored[0]
    sizes = fingerprint.window_sizes(arc.n_samples, window)
    units = [int(ch["unit"]) for ch in arc.info["chs"]]
    tol = fingerprint.tolerances(fp, sizes, units, _code_slack(arc, channel_deltas(arc)))
    dev = np.abs(np.asarray(rows) - fp).max(axis=(0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dev == 0, 0.0, dev / tol)
    worst = int(np.argmax(ratio))
    name = arc.ch_names[worst]
    detail = f"max deviation {dev[worst]:.3g} on {name}, tolerance {tol[worst]:.3g}"
    within = bool((dev <= tol).all())
    if same and within:
        return True, lines + [f"samples: bit-identical (sha256 {digest[:16]}…), fingerprint ok"]
    if within:
        return True, lines + [f"samples: within tolerance ({detail}); sha256 differs: this machine rounds the "
                              "decoder's floats differently from the one that wrote the archive"]
    if same:
        return False, lines + [f"fingerprint MISMATCH: the decoded samples match the archive's sha256 but not "
                               f"its fingerprint ({detail}): /fidelity/{fingerprint.DATASET} is damaged"]
    return False, lines + [f"samples MISMATCH: sha256 differs and the values are outside the fingerprint's "
                           f"tolerance ({detail})"]


def check_claims(arc, raw, progress=None) -> tuple[bool, list[str]]:
    """Decode against MNE's reading of the source; check the error bounds, the exact
    channels and the stored fidelity figures."""
    deltas = channel_deltas(arc)
    per_code = _per_code(arc)
    nominal = _nominal_bound(arc)
    limit = np.where(deltas > 0, deltas * per_code, np.inf)
    if nominal is not None:
        limit = np.where(deltas > 0, np.minimum(limit, nominal), limit)
    limit *= 1 + BOUND_SLACK
    exact = deltas == 0
    info = arc.info
    meter = FidelityMeter(arc.n_channels, arc.sfreq, arc.ch_names, info.get_channel_types(),
                          [ch["unit"] for ch in info["chs"]])
    worst = np.zeros(arc.n_channels)
    differ = np.zeros(arc.n_channels, bool)
    block = int(arc.attrs.get("block_samples", 0))
    if not 1 <= block <= MAX_BLOCK:
        block = fingerprint.READ_SAMPLES
    for t0, t1, x in iter_samples(raw, block):  # the windows the figures were measured in
        y = arc.read(t0, t1)
        meter.update(x, y)
        with np.errstate(invalid="ignore"):
            err = np.abs(y - x)
        worst = np.fmax(worst, np.where(np.isnan(err), np.inf, err).max(axis=1))
        differ |= (x.view(np.int64) != y.view(np.int64)).any(axis=1)
        if progress:
            progress(t1 - t0)
    ok, lines = True, []
    bounded = np.flatnonzero(deltas > 0)
    if bounded.size:
        over = bounded[worst[bounded] > limit[bounded]]
        setting = f"{nominal * TO_MICRO:g} µV" if nominal is not None else "its channel's bound"
        if over.size:
            ok = False
            c = int(over[0])
            lines.append(f"error bound EXCEEDED on {over.size} channel(s): {arc.ch_names[c]} |error| "
                         f"{worst[c] * TO_MICRO:.4g} µV > {limit[c] * TO_MICRO:.4g} µV")
        else:
            lines.append(f"error bound: every sample of {bounded.size} channel(s) within {setting} "
                         f"(largest |error| {worst[bounded].max() * TO_MICRO:.4g} µV)")
    exact_ch = np.flatnonzero(exact)
    if exact_ch.size:
        bad = exact_ch[differ[exact_ch]]
        if bad.size:
            ok = False
            lines.append(f"exact channels: {bad.size} of {exact_ch.size} differ from the source, "
                         f"first {arc.ch_names[int(bad[0])]}")
        else:
            lines.append(f"exact channels: {exact_ch.size} bit-exact")
    fig_ok, fig_line = _compare_figures(arc, meter, _code_slack(arc, deltas))
    target_ok, target_lines = _check_target(arc, meter)
    rate_ok, rate_lines = _check_bitrate(arc)
    return ok and fig_ok and target_ok and rate_ok, lines + [fig_line] + target_lines + rate_lines


def _check_bitrate(arc) -> tuple[bool, list[str]]:
    """``/lossy`` bitrate: the bits per sample the fidelity figures state are what the blocks take."""
    if "bitrate" not in arc.lossy_attrs:
        return True, []
    achieved = 8 * int(arc.index["length"].sum()) / max(arc.n_channels * arc.n_samples, 1)
    stated = ((arc.fidelity or {}).get("target") or {}).get("achieved_bitrate")
    if not isinstance(stated, (int, float)) or abs(stated - achieved) > FIGURE_REL_TOLERANCE * achieved + 1e-12:
        return False, [f"bitrate: the archive states {stated} bits/sample; its blocks take {achieved:.4f}"]
    return True, [f"bitrate: {achieved:.4f} bits/sample (target {float(arc.lossy_attrs['bitrate']):g})"]


def _check_target(arc, meter: FidelityMeter) -> tuple[bool, list[str]]:
    """``/lossy`` max_prdn: every non-trigger channel's PRDN, recomputed, at or below it."""
    if "max_prdn" not in arc.lossy_attrs:
        return True, []
    target = float(arc.lossy_attrs["max_prdn"])
    if not 0 < target < 100:
        raise CorruptArchiveError(f"{arc.path}: /lossy max_prdn is {target}")
    prdn = meter.result()["per_channel"]["prdn"]
    judged = [(p, name) for p, name, kind in zip(prdn, arc.ch_names, meter.ch_types) if p is not None and kind != "stim"]
    if not judged:
        return True, [f"PRDN target {target:g} %: no channel to measure"]
    worst, name = max(judged)
    if worst > target * (1 + FIGURE_REL_TOLERANCE):
        return False, [f"PRDN target {target:g} % EXCEEDED: {name} {worst:.3f} %"]
    return True, [f"PRDN target: every channel within {target:g} % (worst {name} {worst:.3f} %)"]


def _nominal_bound(arc) -> float | None:
    """The bound the archive states (``/lossy`` max_error_uv), in V (or the channel's unit × 1e-6)."""
    if "max_error_uv" not in arc.lossy_attrs:
        return None
    value = float(arc.lossy_attrs["max_error_uv"])
    if not np.isfinite(value) or value < 0:
        raise CorruptArchiveError(f"{arc.path}: /lossy max_error_uv is {value}")
    return value / TO_MICRO


def _compare_figures(arc, meter: FidelityMeter, slack: np.ndarray) -> tuple[bool, str]:
    """Recomputed PRDN, RMSE and max |error| against the stored ones, overall and per channel.

    Allowed difference: FIGURE_REL_TOLERANCE of the stored figure, plus what a move of one
    code (``slack``, near-lossless channels) on every sample can change.
    """
    stored = arc.fidelity
    if isinstance(stored, dict) and stored.get("measured") is False:  # a live stream's: no source then
        return True, "fidelity: no figures stored (recorded live, without a source to measure against)"
    if not stored or "overall" not in stored or "per_channel" not in stored:
        return False, "fidelity: no figures stored in the archive"
    now = meter.result()
    n = max(meter.n, 1)
    centred = np.maximum(meter.sum_x2 - meter.sum_x**2 / n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_slack = {"max_abs_error_uv": slack * TO_MICRO, "rmse_uv": slack * TO_MICRO,
                     "prdn": 100 * slack * np.sqrt(n / centred)}
        all_slack = {"max_abs_error_uv": float(slack.max(initial=0.0)) * TO_MICRO,
                     "rmse_uv": float(np.sqrt(np.mean(slack**2))) * TO_MICRO if slack.size else 0.0,
                     "prdn": float(100 * np.sqrt(n * np.sum(slack**2) / centred.sum()))}
    problems = []
    for key in FIGURES:
        if not _agree(stored["overall"].get(key), now["overall"][key], all_slack[key]):
            problems.append(f"overall {key} stored {stored['overall'].get(key)}, recomputed {now['overall'][key]}")
        got = stored["per_channel"].get(key)
        if not isinstance(got, list) or len(got) != arc.n_channels:
            problems.append(f"per-channel {key} missing")
            continue
        for c, (a, b) in enumerate(zip(got, now["per_channel"][key])):
            if not _agree(a, b, per_slack[key][c]):
                problems.append(f"{key} of {arc.ch_names[c]} stored {a}, recomputed {b}")
                break
    problems += _compare_headline(stored, now, per_slack["prdn"])
    o = now["overall"]
    if problems:
        return False, f"fidelity: stored figures DISAGREE with the source: {'; '.join(problems[:3])}"
    return True, (f"fidelity: stored figures agree with the source (PRDN {o['prdn']:.3f} %, RMSE "
                  f"{o['rmse_uv']:.4g} µV, max |error| {o['max_abs_error_uv']:.4g} µV; overall and per channel)")


def _compare_headline(stored: dict, now: dict, prdn_slack: np.ndarray) -> list[str]:
    """The headline's mean and worst PRDN (archives since the headline was added)."""
    head = stored.get("headline")
    if not isinstance(head, dict):
        return []
    finite = prdn_slack[np.isfinite(prdn_slack)]
    slack = float(finite.max()) if finite.size else 0.0
    return [f"headline {key} stored {head.get(key)}, recomputed {now['headline'][key]}"
            for key in ("prdn_mean", "prdn_worst") if not _agree(head.get(key), now["headline"][key], slack)]


def _agree(stored, recomputed, slack) -> bool:
    if stored is None or recomputed is None:
        return stored is None and recomputed is None
    if not isinstance(stored, (int, float)):
        return False
    slack = float(slack) if np.isfinite(slack) else 0.0
    return abs(float(stored) - float(recomputed)) <= FIGURE_REL_TOLERANCE * abs(float(stored)) + slack
