"""Which lanes each mode uses for a stream's channels."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..codecs.lossy.equalizer import WITH_GAINS, fit_gains
from ..errors import BadInputError
from ..io import scaling
from .lanes import ChainLane, CodesLane, Lane, NativeLane, StreamLane, TimesLane, group_runs

SKETCH_STEP_PER_DELTA = 20.0  # near-lossless: autoencoder step ≈ 20 error bounds / RMS (validation sweep)
# Lossy qualities reached with a bounded residual (integer-coded recordings): |error| ≤ this × the RMS
QUALITY_BOUND = {5: 0.026}
# grid-v1: a sketch twice as coarse as near-lossless takes, so that its own error exceeds the target on
# (nearly) every channel and each channel's bound sets its PRDN (1×: channels the sketch alone keeps
# within the target stay far under it; 4×: more bytes, on BrainVision and EEGLAB float recordings)
GRID_SKETCH_STEP_PER_BOUND = 2 * SKETCH_STEP_PER_DELTA


def lossless_lanes(kinds: np.ndarray, recipe: scaling.Recipe, block: int, group_channels: int,
                   native: dict[int, np.ndarray] | None = None, observe: Callable | None = None,
                   level: str = "default") -> list[Lane]:
    """The lanes of a lossless archive: runs of channels of one value kind, ``group_channels``
    at most (the cross-channel stage finds references within a lane); int-native channels
    (``native``: their codes, by channel) also by equal stored length. ``level``: the integer
    codec's effort (fast, default, max)."""
    native = native or {}
    lengths = [native[ch].size if ch in native else -1 for ch in range(len(kinds))]
    lanes: list[Lane] = []
    for a, b in group_runs(zip(np.asarray(kinds).tolist(), lengths), group_channels):
        if kinds[a] == scaling.NATIVE:
            lanes.append(NativeLane(a, b, np.stack([native[ch] for ch in range(a, b)]), block, level))
        else:
            lanes.append(CodesLane(a, b, int(kinds[a]), recipe, block, observe, level))
    return lanes


KEY_SECONDS = 4.0  # live lossless streams: a key block at least this often...
KEY_MIN_SAMPLES = 2048  # ...but no more often than every this many samples (slow streams)
UPDATE_SECONDS, UPDATE_MIN_SAMPLES = 1.0, 512  # parameter re-fits


def live_lossless_lanes(kinds: np.ndarray, recipe: scaling.Recipe, sfreq: float, block: int, group_channels: int,
                        key_seconds: float = KEY_SECONDS, key_min_samples: int = KEY_MIN_SAMPLES,
                        observe: Callable | None = None) -> list[Lane]:
    """The lanes of a live lossless stream flushed every ``block`` samples or sooner: runs of
    integer channels through ``lpc-s1`` chains (a key block every ``key_seconds``, but no more
    often than every ``key_min_samples`` samples: what a reader decodes to reach a block, and
    what a damaged block can take with it, against the cost of a key block); float channels
    through ``float-xor-zstd-v1`` at level 1 (on blocks of tens of samples it is smaller than
    ``float-lpc-v1`` and ~200× faster; finalizing codes the archive again as ``compress``
    would, container/recode.py)."""
    from ..codecs.lossless import FloatXorZstdCodec, LPCStreamCodec

    key = max(int(round(key_seconds * sfreq)), int(key_min_samples), 1)
    update = max(int(round(UPDATE_SECONDS * sfreq)), UPDATE_MIN_SAMPLES)
    lanes: list[Lane] = []
    for a, b in group_runs(np.asarray(kinds).tolist(), group_channels):
        if int(kinds[a]) == 0:
            codec = LPCStreamCodec(key_interval=key, update_interval=min(update, key))
            lanes.append(ChainLane(a, b, 0, recipe, block, codec, observe))
        else:
            width = 4 if int(kinds[a]) == 1 else 8  # value kind f32, else f64
            lanes.append(CodesLane(a, b, int(kinds[a]), recipe, block, observe, codec=FloatXorZstdCodec(width, level=1)))
    return lanes


def lossy_lanes(first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, units,
                quality: int | None, model_path, block: int, when_due: bool = False,
                steps: dict | None = None, gains: np.ndarray | None = None) -> tuple[list[Lane], np.ndarray]:
    """Autoencoder lanes over each run of non-trigger channels, fitted on ``first`` (the first
    block's values); trigger channels (``stim``) stay exact. Returns the lanes and the value
    kinds the archive records (``lossy`` where the autoencoder codes a channel). ``when_due``:
    the network runs once per block rather than once per chunk (live streams). ``steps``:
    (start, stop) of a run → its latent step (instead of ``quality``'s), or None: stored exactly.
    ``gains``: per channel, a factor on its scale in the autoencoder (a PRDN target's calibration)."""
    from ..codecs.lossy.ae_codec import AECodec  # torch: only for the lossy modes

    kinds = np.array(kinds)
    lanes: list[Lane] = []
    for a, b in group_runs(stim.tolist(), len(stim)):
        if stim[a]:  # event codes are not signals
            lanes.append(CodesLane(a, b, int(kinds[a:b].max()), recipe, block))
            continue
        step = steps.get((a, b)) if steps is not None else None
        if steps is not None and step is None:
            lanes += exact_lanes(kinds, recipe, block, a, b)
            continue
        ae = AECodec.for_stream(first[a:b], quality=quality, step=step, model_path=model_path,  # each channel its scale
                                gains=None if gains is None else gains[a:b])
        lanes.append(StreamLane(a, b, ae.get_config(), ae.stream(block, when_due)))
        kinds[a:b] = scaling.LOSSY
    return lanes, kinds


EXACT_GROUP_CHANNELS = 32  # as compress's lossless lanes


def exact_lanes(kinds: np.ndarray, recipe: scaling.Recipe, block: int, start: int, stop: int) -> list[Lane]:
    """Lossless lanes over channels ``[start, stop)`` of a lossy archive (``kinds``: every channel's)."""
    return [CodesLane(start + a, start + b, int(kinds[start + a]), recipe, block)
            for a, b in group_runs(np.asarray(kinds[start:stop]).tolist(), EXACT_GROUP_CHANNELS)]


def near_lossless_lane(first: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, units, max_error_uv: float,
                       model_id: str, block: int, to_codes: Callable,
                       deltas: np.ndarray | None = None) -> tuple[Lane, np.ndarray, float]:
    """One lane over every channel: an autoencoder sketch of the integer codes plus a bounded
    residual, every sample within ``max_error_uv`` (trigger channels exact). ``to_codes``
    maps a chunk's values to codes. Returns the lane, the bound per channel in codes, and the
    sketch's latent step. ``deltas``: each channel's bound in codes instead (``max_error_uv``
    then only sets the sketch's step)."""
    from ..codecs.lossy.near_lossless import NearLosslessCodec  # torch: only for the lossy modes

    n_ch = first.shape[0]
    per_code = scaling.value_per_code(recipe, n_ch)
    if deltas is None:
        deltas = np.floor(max_error_uv * 1e-6 / per_code + 1e-9).astype(np.int64)
    deltas = np.array(deltas, np.int64)
    deltas[stim] = 0
    values0 = scaling.to_codes(recipe, first, np.arange(n_ch), 0).astype(np.float64) * per_code[:, None]
    rms = max(float(np.sqrt(np.mean((values0 - np.median(values0, axis=1, keepdims=True)) ** 2))), 1e-30)
    step = float(np.clip(SKETCH_STEP_PER_DELTA * max_error_uv * 1e-6 / rms, 0.05, 64.0))
    codec = NearLosslessCodec(_sketch(values0, units, per_code, step, model_id), deltas.tolist())
    return StreamLane(0, n_ch, codec.get_config(), codec.stream(block), to_codes), deltas, step


def _sketch(values0: np.ndarray, units, per_code: np.ndarray, step: float, model_id: str) -> dict:
    """The autoencoder sketch of ``nl-v1`` on codes worth ``per_code`` each (``values0``: the
    first block in the channels' units)."""
    from ..codecs.lossy.ae_codec import AECodec
    from ..codecs.lossy.spatial import Spatial

    spatial = Spatial.fit(values0, units)
    spatial.offsets /= per_code  # the sketch runs on codes: fold each channel's unit into its scale
    spatial.scales /= per_code
    return {"id": AECodec.codec_id, "model": model_id, "step": step, "spatial": spatial.to_config()}


def grid_lanes(first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, units,
               aim: float, model_id: str, block: int,
               delta_scale: np.ndarray | None = None, memo: dict | None = None) -> tuple[list[Lane], np.ndarray]:
    """A PRDN target ``aim`` % for recordings whose samples are not integer codes: each run of
    non-trigger channels on a fine grid through ``grid-v1`` (``nl-v1`` with a bound per
    channel, refined on the first block as for integer codes), trigger channels exact.
    Returns the lanes and the value kinds the archive records. ``memo``: see :func:`target_plan`."""
    from ..codecs.lossy.grid import STEPS_PER_BOUND, GridCodec, grid_for
    from ..codecs.lossy.near_lossless import NearLosslessCodec
    from ..codecs.lossy.rate import refine_bounds

    def fitted(a: int, b: int):
        x = first[a:b]
        sigma = x.std(axis=1)
        live = sigma > 0
        if not live.any():  # constant on the first block: any grid step will do
            sigma[:] = np.maximum(np.abs(x).max(axis=1), 1e-30)
            live[:] = True
        bounds = math.sqrt(3) * aim / 100 * np.where(live, sigma, np.median(sigma[live]))
        grid, offsets = grid_for(x, bounds)
        codes = np.rint((x - offsets[:, None]) / grid[:, None]).astype(np.int64)
        deltas = np.where(live, STEPS_PER_BOUND, 0).astype(np.int64)
        step = float(np.clip(GRID_SKETCH_STEP_PER_BOUND * math.sqrt(3) * aim / 100, 0.05, 64.0))
        sketch = _sketch(codes * grid[:, None], units[a:b], grid, step, model_id)
        return grid, offsets, sketch, refine_bounds(lambda d: NearLosslessCodec(sketch, d.tolist()), codes, deltas, aim)

    def lane(a: int, b: int) -> Lane:
        grid, offsets, sketch, deltas = _memo(memo, ("grid-v1", a, b, aim), lambda: fitted(a, b))
        if delta_scale is not None:
            deltas = np.floor(deltas * delta_scale[a:b]).astype(np.int64)
        codec = GridCodec(grid, offsets, NearLosslessCodec(sketch, deltas.tolist()).get_config())
        return StreamLane(a, b, codec.get_config(), codec.stream(block), codec.to_codes)

    return _lossy_runs(kinds, recipe, stim, block, lane)


def _lossy_runs(kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, block: int,
                lane_for: Callable[[int, int], Lane]) -> tuple[list[Lane], np.ndarray]:
    """Trigger channels exact, every other run ``[a, b)`` through ``lane_for(a, b)``: the lanes,
    and the value kinds the archive records (``lossy`` for the runs ``lane_for`` codes)."""
    kinds = np.array(kinds)
    lanes: list[Lane] = []
    for a, b in group_runs(stim.tolist(), len(stim)):
        if stim[a]:
            lanes += exact_lanes(kinds, recipe, block, a, b)
        else:
            lanes.append(lane_for(a, b))
            kinds[a:b] = scaling.LOSSY
    return lanes, kinds


def _memo(memo: dict | None, key: tuple, compute: Callable):
    """``compute()``, kept in ``memo`` under ``key`` (None: not kept)."""
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def times_lane(block: int, sfreq: float | None = None) -> TimesLane:
    """The lane of a stream's per-sample timestamps: blocks of ``block`` samples, as the
    lossless lanes cut theirs (``sfreq``: the nominal rate, a predictor worth trying)."""
    return TimesLane(block, sfreq)


@dataclass
class LossyPlan:
    """The lanes of a lossy or near-lossless archive and what its ``/lossy`` group records."""

    lanes: list[Lane]
    kinds: np.ndarray  # the value kinds the archive records (``lossy`` where the autoencoder codes a channel)
    step: float
    max_error_uv: float | None
    deltas_si: np.ndarray | None  # near-lossless: each channel's bound in its unit (V, T…)
    ae_rival: bool = False  # a PRDN target's other coder won, the autoencoder within AE_RIVAL of its bytes


# a coder with band gains (fitted once the coder is calibrated): the family calibrated
FAMILIES = {gained: plain for plain, gained in WITH_GAINS.items()}
AE_RIVAL = 1.5  # the autoencoder's calibration (on the whole recording) gains up to about this much


def target_plan(first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, units,
                aim: float, model_path, model_id: str, block: int, to_codes: Callable,
                when_due: bool = False, delta_scale: np.ndarray | None = None,
                prefer_residual: bool = False, gains: np.ndarray | None = None,
                family: str | None = None, n_blocks: int | None = None, memo: dict | None = None,
                stretches=None, stretch_aim: float | None = None) -> LossyPlan:
    """Lanes that keep every non-trigger channel's PRDN at or below ``aim`` % on the first block
    (codecs.lossy.rate): per run of channels the autoencoder's largest step that does, or, for
    integer-coded recordings, a bounded residual per channel when that takes fewer bytes (or the
    autoencoder cannot reach ``aim``); runs out of the autoencoder's reach otherwise stored exactly.
    ``delta_scale``: per channel, a factor on the residual's bound (what the whole recording
    showed, where it differs from the first block). ``prefer_residual``: the bounded residual
    wherever it is possible, whatever its size (the autoencoder's step, fitted on the first
    block, missed the target on the whole recording). ``gains``: per channel, a factor on its
    scale in the autoencoder (calibrated on the whole recording, :func:`lossy_lanes`). The wavelet
    coders (``dwt-v2`` per channel, ``sdwt-v4`` over principal components) are candidates too:
    whichever takes the fewest bytes on the first block, its configuration's share of
    ``n_blocks`` blocks included. ``family``: only that coder (``nl-v1``, ``grid-v1``, ``dwt-v2``
    or ``sdwt-v4``: the one being calibrated). ``memo``: a dict kept between the plans of one
    recording (the same first block), where what depends only on the first block and ``aim`` is
    kept (each coder's fit to the aim; ``delta_scale`` and ``gains`` act on top of it).
    ``stretches``, ``stretch_aim``: where given, the wavelet coders are fitted to those stretches
    of the recording and that aim instead (:class:`~biocompress.codecs.lossy.rate.Stretches`)."""
    from ..codecs import get_codec
    from ..codecs.lossy.rate import ae_step_for, refine_bounds, residual_bounds

    family = FAMILIES.get(family, family)
    steps, ae_bytes = {}, 0
    for a, b in group_runs(stim.tolist(), len(stim)):
        if stim[a]:
            continue
        found = _memo(memo, ("ae-v1", a, b, aim), lambda: ae_step_for(first[a:b], np.ones(b - a, bool), aim,
                                                                        model_path))
        steps[(a, b)] = found[0] if found else None
        ae_bytes = ae_bytes + found[1] if found and ae_bytes is not None else None
    n_ch = first.shape[0]
    found = [s for s in steps.values() if s is not None]
    ae_step = min(found) if found else 0.0
    candidates = []  # (bytes of the first block, the plan) of each coder with a bound or step per channel
    if (kinds == 0).all() and (~stim).any() and family in (None, "nl-v1"):
        codes = scaling.to_codes(recipe, first, np.arange(n_ch), 0)
        deltas = residual_bounds(codes, stim, aim)
        per_code = scaling.value_per_code(recipe, n_ch)
        typical_uv = float(np.median((deltas * per_code)[~stim])) * 1e6

        def refined(deltas=deltas):
            lane, _, _ = near_lossless_lane(first, recipe, stim, units, max(typical_uv, 1e-12), model_id, block,
                                            to_codes, deltas=deltas)
            return refine_bounds(lambda d: get_codec({**lane.config, "deltas": d.tolist()}), codes, deltas, aim)
        deltas = _memo(memo, ("nl-v1", aim), refined)
        if delta_scale is not None:  # the sketch's step follows the bounds (else the sketch's own error caps PRDN)
            deltas = np.floor(deltas * delta_scale).astype(np.int64)
            typical_uv = float(np.median((deltas * per_code)[~stim])) * 1e6
        lane, deltas, step = near_lossless_lane(first, recipe, stim, units, max(typical_uv, 1e-12), model_id, block,
                                                to_codes, deltas=deltas)
        plan = LossyPlan([lane], kinds, step, None, deltas * per_code)
        candidates.append((len(get_codec(lane.config).encode(codes)) + _config_share([lane], n_blocks), plan))
    elif (~stim).any() and family in (None, "grid-v1"):  # samples that are not integer codes: a grid gives them some
        lanes, grid_kinds = grid_lanes(first, kinds, recipe, stim, units, aim, model_id, block, delta_scale, memo)
        candidates.append((_first_block_bytes(lanes, first, n_blocks), LossyPlan(lanes, grid_kinds, ae_step, None, None)))
    if (~stim).any() and family in (None, "dwt-v2"):
        lanes, dwt_kinds = dwt_lanes(first, kinds, recipe, stim, aim, block, delta_scale, memo, stretches,
                                     stretch_aim)
        candidates.append((_first_block_bytes(lanes, first, n_blocks), LossyPlan(lanes, dwt_kinds, ae_step, None, None)))
    if (~stim).sum() > 1 and family in (None, "sdwt-v4"):
        lanes, sdwt_kinds = sdwt_lanes(first, kinds, recipe, stim, aim, block, delta_scale, memo, stretches,
                                       stretch_aim)
        candidates.append((_first_block_bytes(lanes, first, n_blocks), LossyPlan(lanes, sdwt_kinds, ae_step, None, None)))
    lanes, ae_kinds = lossy_lanes(first, kinds, recipe, stim, units, None, model_path, block, when_due, steps=steps,
                                  gains=gains)
    plan = LossyPlan(lanes, ae_kinds, ae_step, None, None)
    if candidates:
        size, best = min(candidates, key=lambda c: c[0])
        ae_size = None if ae_bytes is None else ae_bytes + _config_share(lanes, n_blocks)
        if ae_size is None or size < ae_size or prefer_residual or family is not None:
            best.ae_rival = ae_size is not None and ae_size < AE_RIVAL * size
            plan = best
    if stretches is not None:  # the chosen coder's decodings with band gains
        aims = {"ae-v1": aim, "dwt-v2": stretch_aim, "sdwt-v4": stretch_aim}
        plan.lanes = _with_gains(plan.lanes, stretches, aims, block, when_due, memo)
    return plan


def _with_gains(lanes: list[Lane], stretches, aims: dict, block: int, when_due: bool,
                memo: dict | None = None) -> list[Lane]:
    """``lanes`` whose ``ae-v1``, ``dwt-v2`` and ``sdwt-v4`` codecs decode with band gains fitted on
    ``stretches`` (:func:`~biocompress.codecs.lossy.equalizer.fit_gains`; each within ``aims[id]``),
    where any gain moves. ``memo``: see :func:`target_plan` (a coding tried again keeps its gains)."""
    from ..codecs import get_codec

    out = []
    for lane in lanes:
        kind = lane.config.get("id") if isinstance(lane, StreamLane) else None
        if kind not in aims:
            out.append(lane)
            continue
        codec = get_codec(lane.config)
        key = ("gains", json.dumps(lane.config, sort_keys=True), lane.start, lane.stop, aims[kind])
        fitted = _memo(memo, key, lambda: fit_gains(codec, stretches, lane.start, lane.stop, aims[kind]))
        if fitted.codec_id == kind:  # no gain moved
            out.append(lane)
        else:
            stream = fitted.stream(block, when_due) if kind == "ae-v1" else fitted.stream(block)
            out.append(StreamLane(lane.start, lane.stop, fitted.get_config(), stream))
    return out


def _first_block_bytes(lanes: list[Lane], first: np.ndarray, n_blocks: int | None = None) -> int:
    """The lanes' bytes on the first block, plus their configurations' (LZMA-packed, as the
    archive stores them) shared among ``n_blocks`` blocks (None: a live stream, no end known)."""
    from ..codecs import get_codec

    size = sum(len(get_codec(ln.config).encode(first[ln.start : ln.stop])) for ln in lanes if isinstance(ln, StreamLane))
    return size + _config_share(lanes, n_blocks)


def _config_share(lanes: list[Lane], n_blocks: int | None) -> int:
    """A block's share of the lanes' codec configurations, LZMA-packed as the archive stores
    them, over ``n_blocks`` blocks (None: a live stream, whose end is not known: nothing)."""
    from ..container.packed import packed_cost

    if not n_blocks:
        return 0
    return sum(packed_cost(json.dumps(ln.config).encode()) for ln in lanes if isinstance(ln, StreamLane)) // n_blocks


def _calibration(first: np.ndarray, aim: float, stretches, stretch_aim: float | None):
    """What a wavelet coder is fitted on, and to which aim: ``stretches`` of the recording where
    given, else the first block alone (a live stream)."""
    from ..codecs.lossy.rate import Stretches

    return (Stretches([first], False), aim) if stretches is None else (stretches, stretch_aim)


DWT_LEVELS = 8  # as sdwt-v4 (fewer in short blocks): on the 125 Hz OpenBCI recording 5-6 % smaller than 5 levels
DWT_ROUNDS = 8  # codings while each channel's step is searched (rate.largest_steps)


def dwt_lanes(first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, aim: float, block: int,
              delta_scale: np.ndarray | None = None, memo: dict | None = None,
              stretches=None, stretch_aim: float | None = None) -> tuple[list[Lane], np.ndarray]:
    """A PRDN target ``aim`` % through the wavelet coder (``dwt-v2``): each run of non-trigger
    channels with a step per channel, the largest tried whose PRDN on the first block stays
    within ``aim`` (on ``stretches`` within ``stretch_aim``, where given: see
    :class:`~biocompress.codecs.lossy.rate.Stretches`); trigger channels exact. ``delta_scale``:
    per channel, a factor on the step (what the whole recording showed). Returns the lanes and
    the value kinds the archive records. ``memo``: see :func:`target_plan`."""
    from ..codecs.lossy.rate import largest_steps
    from ..codecs.lossy.wavelet import ContextWaveletCodec, steps_for

    calib, goal = _calibration(first, aim, stretches, stretch_aim)

    def fitted(a: int, b: int):
        means = first[a:b].mean(axis=1)
        best = largest_steps(lambda steps: calib.prdn(ContextWaveletCodec(DWT_LEVELS, steps, means), a, b)[0],
                             steps_for(first[a:b], goal, calib.spread[a:b]), goal, DWT_ROUNDS)
        return best, means

    def lane(a: int, b: int) -> Lane:
        best, means = _memo(memo, ("dwt-v2", a, b, goal), lambda: fitted(a, b))
        if delta_scale is not None:
            best = best * delta_scale[a:b]
        codec = ContextWaveletCodec(DWT_LEVELS, _rounded(best), _rounded(means))
        return StreamLane(a, b, codec.get_config(), codec.stream(block))

    return _lossy_runs(kinds, recipe, stim, block, lane)


CONFIG_DIGITS = 6  # significant digits of dwt-v2's steps and means: their JSON text is about half as long


def _rounded(values: np.ndarray) -> list[float]:
    """``values`` to CONFIG_DIGITS significant digits (a step moves by at most 5e-6 of itself)."""
    return [float(f"{v:.{CONFIG_DIGITS}g}") for v in np.asarray(values, np.float64).tolist()]


SDWT_LEVELS = 8  # wavelet levels of sdwt-v4 (fewer in short blocks): never worse than 5 on any kind measured
SDWT_ROUNDS = 8  # codings of the first block while calibrating sdwt-v4's step and channel gains
SDWT_STRETCH_ROUNDS = 24  # codings of a recording's stretches (cheap: each coder codes a block in ~0.1 s):
SDWT_WHOLE_ROUNDS = 3  # the first ones move the step alone, the others each channel's gain too
SDWT_AIM = 0.98  # each channel aimed this far under the aim (the rotation couples their errors)
SDWT_GAIN_RANGE = 5.0  # gains within 1/5…5 of their median
SDWT_LOW_MEAN = 0.82  # of the codings within the aim, the smallest whose mean PRDN is at least this × the aim, if any
SDWT_STEP_ROUNDS = 5  # codings of the recording's stretches that then move the best coding's step alone


def sdwt_lanes(first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, aim: float, block: int,
               delta_scale: np.ndarray | None = None, memo: dict | None = None,
               stretches=None, stretch_aim: float | None = None) -> tuple[list[Lane], np.ndarray]:
    """A PRDN target ``aim`` % through the spatial wavelet coder (``sdwt-v4``): each run of
    non-trigger channels standardized, rotated into principal components and wavelet-coded at
    one step. On the first block, the step is moved until the worst channel meets the aim (the
    PRDN's growth with the step measured as it goes), then each channel's gain too, by how far
    its PRDN fell under the aim (damped: through the rotation, every channel's error moves the
    others'); the coding that kept every channel within the aim in the fewest bytes is kept.
    ``stretches``, ``stretch_aim``: the PRDN measured on those stretches instead, against that
    aim; where they are the whole recording, the components that round to zero on every block
    are left out, their configuration's bytes weighed with the payload's.
    ``delta_scale``: per channel, a factor on its gain (what the whole recording showed).
    Returns the lanes and the value kinds the archive records. ``memo``: see :func:`target_plan`."""
    from ..codecs.lossy.rate import NEAR_AIM
    from ..codecs.lossy.spatial_wavelet import EnergySpatialWaveletCodec, PrunedSpatialWaveletCodec
    from ..container.packed import packed_cost

    calib, aim = _calibration(first, aim, stretches, stretch_aim)
    prune = stretches is not None and stretches.whole  # every block known: components none of them needs go

    def coder(a: int, b: int, step: float, gains: np.ndarray):
        codec = EnergySpatialWaveletCodec.fit(first[a:b], step, SDWT_LEVELS, gains, calib.spread[a:b])
        return PrunedSpatialWaveletCodec.pruned(codec, [x[a:b] for x in calib.blocks] if prune else None)

    def judged(a: int, b: int, step: float, gains: np.ndarray):
        """Each channel's PRDN, the worst, and the rank of the coding (a low mean last, then bytes)."""
        codec = coder(a, b, step, gains)
        p, size = calib.prdn(codec, a, b)
        if prune:  # the columns kept, fewer at coarser steps
            size += packed_cost(json.dumps(codec.get_config()).encode())
        worst = float(np.nanmax(p)) if np.isfinite(p).any() else 0.0
        return p, worst, (float(np.nanmean(p)) < SDWT_LOW_MEAN * aim if np.isfinite(p).any() else False, size)

    def fitted(a: int, b: int):
        effective = np.full(b - a, math.sqrt(12) * aim / 100)  # uniform error at the aim, in units of each spread
        best, best_rank, best_worst, worst, slope, last = None, None, 0.0, np.inf, 1.0, None
        for round_ in range(SDWT_ROUNDS if stretches is None else SDWT_STRETCH_ROUNDS):
            step = float(np.median(effective))
            tried = (step, effective / step)
            p, worst, rank = judged(a, b, *tried)
            if worst <= aim and (best is None or rank < best_rank):
                best, best_rank, best_worst = tried, rank, worst
            if worst <= 0:
                break
            if last is not None and abs(math.log(step / last[0])) > 1e-3 and last[1] > 0:
                # PRDN grows slower than the step where coarse steps zero whole components
                slope = float(np.clip(math.log(worst / last[1]) / math.log(step / last[0]), 0.3, 1.5))
            last = (step, worst)
            whole = SDWT_AIM * aim / worst  # the worst channel to the aim, every channel moved alike...
            with np.errstate(divide="ignore", invalid="ignore"):  # ... then each by how far it fell under
                ratio = np.where(np.isfinite(p) & (p > 0), SDWT_AIM * aim / p, whole) / whole
            if round_ < SDWT_WHOLE_ROUNDS:
                ratio = 1.0
            effective = effective * whole ** (1 / slope) * np.clip(ratio, 0.5, 2.0) ** 0.5  # damped: errors couple
            middle = float(np.median(effective))
            effective = middle * np.clip(effective / middle, 1 / SDWT_GAIN_RANGE, SDWT_GAIN_RANGE)
        if best is None:  # the channels' errors move one another: the last gains, the step scaled under the aim
            return tried[0] * min(1.0, SDWT_AIM * aim / max(worst, 1e-12)), tried[1]
        if stretches is None:
            return best
        # the best coding's step alone, its gains (and so its rotation) kept: the worst channel up to the aim
        lo, p_lo, hi, p_hi, gains = best[0], best_worst, None, None, best[1]
        for _ in range(SDWT_STEP_ROUNDS):
            if p_lo >= NEAR_AIM * aim or p_lo <= 0:
                break
            if hi is None:
                step = lo * float(np.clip((NEAR_AIM * aim / p_lo) ** (1 / slope), 1.0, 2.0))
            else:
                t = float(np.clip((math.log(NEAR_AIM * aim / p_lo)) / math.log(p_hi / p_lo), 0.1, 0.9))
                step = math.exp(math.log(lo) + t * math.log(hi / lo))
            _, worst, rank = judged(a, b, step, gains)
            if worst <= aim:
                lo, p_lo = step, worst
                if rank < best_rank:
                    best, best_rank = (step, gains), rank
            else:
                hi, p_hi = step, worst
        return best

    def lane(a: int, b: int) -> Lane:
        step, gains = _memo(memo, ("sdwt-v4", a, b, aim), lambda: fitted(a, b))
        if delta_scale is not None:
            gains = gains * delta_scale[a:b]
        codec = coder(a, b, step, gains)
        return StreamLane(a, b, codec.get_config(), codec.stream(block))

    return _lossy_runs(kinds, recipe, stim, block, lane)


def lossy_plan(mode: str, first: np.ndarray, kinds: np.ndarray, recipe: scaling.Recipe, stim: np.ndarray, units,
               ch_names, *, quality: int | None, max_error_uv: float | None, model_path, model_id: str, block: int,
               to_codes: Callable, where=None, when_due: bool = False, aim_prdn: float | None = None,
               delta_scale: np.ndarray | None = None, prefer_residual: bool = False,
               gains: np.ndarray | None = None, aim_bits: float | None = None, family: str | None = None,
               n_blocks: int | None = None, memo: dict | None = None, stretches=None,
               stretch_aim: float | None = None) -> LossyPlan:
    """Lanes for ``mode`` "lossy" (the autoencoder at ``quality``; quality 5 of integer-coded
    channels: a bounded residual of 2.6 % of the RMS) or "near-lossless" (every sample within
    ``max_error_uv``; integer-coded channels only: BadInputError naming ``where`` otherwise).
    ``first``: the stream's first block of values, which the codecs are fitted to; ``when_due``:
    see :func:`lossy_lanes`. ``aim_prdn``: a PRDN target instead of a quality (:func:`target_plan`);
    ``aim_bits``: bits per sample instead (the autoencoder's finest step within them on the first
    block, one step for every run of non-trigger channels). ``stretches``, ``stretch_aim``: see
    :func:`target_plan`."""
    from ..codecs.lossy.qualities import QUALITY_STEPS

    if mode == "lossy" and aim_bits is not None:
        from ..codecs.lossy.rate import ae_step_for_bits

        step = ae_step_for_bits(first[~stim], aim_bits, model_path) if (~stim).any() else 1.0
        runs = [(a, b) for a, b in group_runs(stim.tolist(), len(stim)) if not stim[a]]
        lanes, kinds = lossy_lanes(first, kinds, recipe, stim, units, None, model_path, block, when_due,
                                   steps={run: step for run in runs})
        return LossyPlan(lanes, kinds, step, None, None)
    if mode == "lossy" and aim_prdn is not None:
        return target_plan(first, kinds, recipe, stim, units, aim_prdn, model_path, model_id, block, to_codes, when_due,
                           delta_scale, prefer_residual, gains, family, n_blocks, memo, stretches, stretch_aim)
    if mode == "lossy" and quality in QUALITY_BOUND and (kinds == 0).all():
        # the top quality is beyond the autoencoder alone: a bounded residual on the integer codes
        centred = first - np.median(first, axis=1, keepdims=True)
        max_error_uv = QUALITY_BOUND[quality] * float(np.sqrt(np.mean(centred**2))) * 1e6
    if mode == "lossy" and quality not in QUALITY_BOUND or mode == "lossy" and (kinds[~stim] != 0).any():
        lanes, kinds = lossy_lanes(first, kinds, recipe, stim, units, quality, model_path, block, when_due)
        return LossyPlan(lanes, kinds, QUALITY_STEPS[quality], max_error_uv, None)
    if (kinds != 0).any():
        bad = [ch_names[i] for i in np.flatnonzero(kinds != 0)[:3]]
        raise BadInputError(where, f"near-lossless needs integer-coded samples; {int((kinds != 0).sum())} "
                            f"channel(s) are not (e.g. {bad}); use --mode lossless or lossy")
    lane, deltas, step = near_lossless_lane(first, recipe, stim, units, max_error_uv, model_id, block, to_codes)
    return LossyPlan([lane], kinds, step, max_error_uv, deltas * scaling.value_per_code(recipe, first.shape[0]))
